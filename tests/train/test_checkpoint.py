import random

import numpy as np
import pytest
import torch

from dehaze.errors import CheckpointError
from dehaze.train import (
    EMA,
    Meter,
    Run,
    constant_decay,
    ema_update,
    half_life_decay,
    linear_decay,
    make_ema,
    rng_state,
    set_rng_state,
    setup,
)
from dehaze.train.checkpoint import load_checkpoint, save_checkpoint


def test_atomic_save_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"step": 2, "bad": Boom()})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")


def test_rng_state_round_trip():
    s = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(s)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_run_saves_config_last_best_and_resumes(tmp_path):
    env = setup("cpu")
    with Run({"a": 1}, tmp_path / "run", env) as run:
        run.save({"step": 3}, best=True)
        run.logger.scalars(3, {"loss": 0.5})
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert (tmp_path / "run" / "stats.jsonl").read_text().count("loss") == 1
    with Run({"a": 1}, tmp_path / "run", env, resume=True) as run:
        assert run.load()["step"] == 3
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Run({"a": 1}, tmp_path / "other", env, resume=True)


def test_ema_and_schedule():
    m = torch.nn.Linear(2, 2)
    e = make_ema(m)
    with torch.no_grad():
        m.weight.add_(1.0)
    before = e.weight.clone()
    ema_update(e, m, decay=0.9)
    assert torch.allclose(e.weight, before + 0.1, atol=1e-6)
    assert linear_decay(0, 100) == 1.0 and linear_decay(50, 100) == 0.5 and linear_decay(100, 100) == 0.0


def test_one_ema_with_either_trainer_schedule():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, constant_decay(0.5, start=2))
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    for step in range(2):  # before start: a copy
        with torch.no_grad():
            m.weight.add_(1.0)
        ema.update(m, step)
        assert torch.equal(ema.module.weight, m.weight)
    before = ema.module.weight.clone()
    with torch.no_grad():
        m.weight.add_(2.0)
    ema.update(m, 2)
    assert torch.allclose(ema.module.weight, before + 1.0)  # halfway
    # StyleGAN2-ADA: half-life in images, ramped up over the first images seen
    decay = half_life_decay(kimg=1.0, rampup=0.0, images_per_step=1000)
    assert decay(0) == pytest.approx(0.5) and decay(99) == pytest.approx(0.5)
    ramped = half_life_decay(kimg=10.0, rampup=0.1, images_per_step=100)
    assert ramped(0) == pytest.approx(0.5 ** (100 / 10)) and ramped(9999) == pytest.approx(0.5 ** (100 / 10_000))
    ema.reset(m)
    assert torch.equal(ema.module.weight, m.weight)


def test_meter_averages_between_pops():
    meter = Meter()
    meter.add({"loss/D": 1.0, "loss/G": 4.0})
    meter.add({"loss/D": 3.0})
    meter.step()
    meter.step()
    row = meter.pop()
    assert row["loss/D"] == 2.0 and row["loss/G"] == 4.0 and row["time/step_s"] >= 0
    assert set(meter.pop()) == {"time/step_s"}
