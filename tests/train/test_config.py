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
    with pytest.raises(ConfigError, match=r"unknown config key 'train.step'; did you mean train.steps"):
        apply_overrides(DEFAULTS, ["train.step=3"])
    (tmp_path / "typo.yaml").write_text("train:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match="train.lrr"):
        load_config(tmp_path / "typo.yaml", defaults=DEFAULTS)


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
