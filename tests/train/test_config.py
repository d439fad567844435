import pytest

from dehaze.errors import ConfigError
from dehaze.train.config import apply_overrides, load_config, save_config

DEFAULTS = {"mode": "l1", "train": {"steps": 100, "lr": 2e-4, "crop": [128, 128]}, "seed": 0}


def test_yaml_with_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("mode: pix2pix\ntrain:\n  steps: 50\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain:\n  lr: 1.0e-3\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.steps=7", "mode=ssd", "train.crop=[64, 32]"], DEFAULTS)
    assert cfg == {"mode": "ssd", "train": {"steps": 7, "lr": 1e-3, "crop": [64, 32]}, "seed": 0}
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml", defaults=DEFAULTS) == cfg


def test_unknown_keys_are_named_with_suggestions(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.step' \(did you mean train.steps"):
        apply_overrides(DEFAULTS, ["train.step=3"])
    (tmp_path / "typo.yaml").write_text("train:\n  lrr: 1\n  stepz: 3\nmood: ssd\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "typo.yaml", defaults=DEFAULTS)
    msg = str(err.value)  # one error naming every misspelt key
    assert msg.startswith("unknown config keys ") and "\n" not in msg
    assert all(k in msg for k in ("'train.lrr'", "'train.stepz' (did you mean train.steps", "'mood' (did you mean mode?)"))
    with pytest.raises(ConfigError, match="keys 'a', 'train.c'"):
        apply_overrides(DEFAULTS, ["a.b=1", "seed=2", "train.c=3"])


def test_removed_settings_load_at_their_old_default_only(tmp_path):
    retired = {"loss.freq_l1": 0.0, "model.G.airlight_head": "mean"}
    (tmp_path / "old.yaml").write_text("mode: ssd\nloss: {freq_l1: 0.0}\nmodel: {G: {airlight_head: mean}}\n")
    assert load_config(tmp_path / "old.yaml", defaults=DEFAULTS, retired=retired) == {**DEFAULTS, "mode": "ssd"}
    (tmp_path / "used.yaml").write_text("loss: {freq_l1: 2.0}\n")
    with pytest.raises(ConfigError, match="loss.freq_l1 was removed"):
        load_config(tmp_path / "used.yaml", defaults=DEFAULTS, retired=retired)
    with pytest.raises(ConfigError, match="unknown config keys 'loss'"):  # without the retired list: unknown
        load_config(tmp_path / "old.yaml", defaults=DEFAULTS)


def test_bad_files_and_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(DEFAULTS, ["mode"])


def test_numbers_in_exponent_notation_and_non_numbers(tmp_path):
    # YAML 1.1 reads 1e-4 (no dot) as a string: a number setting takes it as the number meant
    cfg = load_config(None, ["train.lr=1e-4", "train.steps=2e3"], DEFAULTS)
    assert cfg["train"]["lr"] == 1e-4 and cfg["train"]["steps"] == 2000 and isinstance(cfg["train"]["steps"], int)
    (tmp_path / "c.yaml").write_text("train:\n  lr: 3e-4\n")
    assert load_config(tmp_path / "c.yaml", defaults=DEFAULTS)["train"]["lr"] == 3e-4
    for bad in ("train.lr=fast", "train.steps=true", "train.steps=[1, 2]"):
        with pytest.raises(ConfigError, match=f"{bad.split('=')[0]} must be a number"):
            load_config(None, [bad], DEFAULTS)
