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
