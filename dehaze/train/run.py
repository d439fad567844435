"""The pieces of a training loop that both trainers (dehazing and unconditional) share.

:class:`Run` owns a run's folder: it saves the config, opens the logger, finds the
checkpoint to resume from, writes ``last.pt`` (and ``best.pt``) atomically, and turns
SIGINT/SIGTERM into a clean "save and stop" at the next step boundary. :class:`Models` holds
what a GAN trainer trains and checkpoints (G, its :class:`EMA`, D, the optimisers, the AMP
scaler); :class:`Meter` averages the logged scalars between log steps. Also here: mixed
precision helpers and the learning-rate schedule.
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dehaze.errors import CheckpointError
from dehaze.train.checkpoint import load_checkpoint, load_state_dict_checked, rng_state, save_checkpoint
from dehaze.train.config import save_config
from dehaze.train.dist import DistEnv, all_reduce_mean
from dehaze.train.logger import RunLogger


class Run:
    """Bookkeeping of one training run.

    Args:
        cfg: the full config (saved as ``config.yaml``; on resume as ``config-resume.yaml``).
        run_dir: output folder.
        env: from :func:`dehaze.train.dist.setup`.
        resume: ``False``; ``True`` to continue from ``run_dir/last.pt``; or a checkpoint path.
    """

    def __init__(self, cfg: dict, run_dir: str | Path, env: DistEnv, resume: bool | str | Path = False):
        self.cfg, self.dir, self.env = cfg, Path(run_dir), env
        self.resume_path: Path | None = None
        if resume:
            self.resume_path = self.dir / "last.pt" if resume is True else Path(resume)
            if not self.resume_path.is_file():
                raise CheckpointError(f"nothing to resume: {self.resume_path} does not exist")
        if env.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.dir / ("config-resume.yaml" if resume else "config.yaml"))
        self.logger = RunLogger(self.dir, enabled=env.is_main)
        self.stop_requested = False
        self._old_handlers: dict[int, Any] = {}

    # -- checkpoints -------------------------------------------------------------------------
    def load(self) -> dict | None:
        """The state to resume from (``None`` for a fresh run)."""
        if self.resume_path is None:
            return None
        return load_checkpoint(self.resume_path, map_location=self.env.device)

    def save(self, state: dict, best: bool = False, snapshot: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt`` / ``snapshot-<step>.pt``) on the main process."""
        if not self.env.is_main:
            return
        save_checkpoint(self.dir / "last.pt", state)
        if best:
            save_checkpoint(self.dir / "best.pt", state)
        if snapshot:
            save_checkpoint(self.dir / f"snapshot-{int(state.get('step', 0)):07d}.pt", state)

    def end_step(self, step: int, total: int, every: int, make_state, best: bool = False,
                 snapshot_every: int = 0, say=print) -> bool:
        """Checkpoint after ``step`` when due (every ``every`` steps, at the end, on a new best, on a
        stop request) and tell the loop whether to stop. ``make_state()`` builds the state only then."""
        stopping = self.stop_requested or step >= total
        if stopping or best or step % every == 0:
            snap = bool(snapshot_every) and step % snapshot_every == 0
            self.save(make_state(), best=best, snapshot=snap)
        if self.stop_requested:
            say(f"stopped at step {step}; resume with --resume")
        return stopping

    def log(self, step: int, row: dict[str, float], bar=None) -> dict[str, float]:
        """Average ``row`` over processes, write it to TensorBoard and stats.jsonl, show the losses."""
        row = all_reduce_mean(row, self.env)
        self.logger.scalars(step, row)
        if bar is not None:
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in row.items() if k.startswith("loss/")})
        return row

    # -- stopping ----------------------------------------------------------------------------
    def __enter__(self) -> Run:
        def request_stop(signum, frame):  # finish the step, checkpoint, exit cleanly
            self.stop_requested = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, request_stop)
            except ValueError:  # not in the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self.logger.close()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema ← decay·ema + (1−decay)·model`` for parameters; buffers (BN statistics) are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def make_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``model`` for the exponential moving average."""
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


class EMA:
    """G_ema: a frozen copy of a model, averaged after every optimiser step by :func:`ema_update`.

    ``decay(step)`` is the schedule, ``step`` the 0-based index of the step just taken: the
    dehazing trainer's :func:`constant_decay` (``train.ema`` after ``train.ema_start``) or
    StyleGAN2-ADA's :func:`half_life_decay` (the unconditional trainer's ``train.ema_kimg``).

    Example:
        >>> m = torch.nn.Linear(2, 2)
        >>> ema = EMA(m, constant_decay(0.9, start=1))
        >>> ema.update(m, 0)  # before ``start``: a copy
        >>> torch.equal(ema.module.weight, m.weight)
        True
    """

    def __init__(self, model: torch.nn.Module, decay: Callable[[int], float]):
        self.module, self.decay = make_ema(model), decay

    def update(self, model: torch.nn.Module, step: int) -> None:
        ema_update(self.module, model, self.decay(step))

    def reset(self, model: torch.nn.Module) -> None:
        """Start over from ``model``'s weights."""
        self.module.load_state_dict(model.state_dict())


def constant_decay(decay: float, start: int = 0) -> Callable[[int], float]:
    """``decay`` from step ``start`` on; before it the average copies the model (decay 0)."""
    return lambda step: decay if step >= start else 0.0


def half_life_decay(kimg: float, rampup: float, images_per_step: int) -> Callable[[int], float]:
    """StyleGAN2-ADA's decay: a half-life of ``kimg`` thousand images, at most ``rampup`` times the
    images seen so far (0: no ramp-up).

    Example:
        >>> round(half_life_decay(10.0, 0.0, 10_000)(5), 3)  # one half-life per step
        0.5
    """
    def decay(step: int) -> float:
        nimg = kimg * 1000
        if rampup:
            nimg = min(nimg, (step + 1) * images_per_step * rampup)
        return 0.5 ** (images_per_step / max(nimg, 1e-8))

    return decay


@dataclass
class Models:
    """What a GAN trainer trains and checkpoints: G (with a ``config`` that rebuilds it), its EMA,
    D (None: no adversary), their optimisers and the mixed-precision scaler (None: none)."""

    G: torch.nn.Module
    D: torch.nn.Module | None
    ema: EMA
    optG: torch.optim.Optimizer
    optD: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler | None = None

    def state(self, cfg: dict, step: int, **extra) -> dict:
        """A checkpoint: weights, optimisers, RNG state, the config and the step (+ ``extra``)."""
        opt = lambda o: o.state_dict() if o is not None else None  # noqa: E731
        return {"step": step, "config": cfg, "G_config": self.G.config, "G": self.G.state_dict(),
                "G_ema": self.ema.module.state_dict(), "D": opt(self.D), "optG": self.optG.state_dict(),
                "optD": opt(self.optD), "scaler": opt(self.scaler), "rng": rng_state(), **extra}

    def load(self, state: dict, path) -> None:
        """Take weights and optimiser states from a checkpoint of the same setup (one-line errors)."""
        if state.get("G_config") != self.G.config:
            raise CheckpointError(f"{path}: the checkpoint's generator ({state.get('G_config')}) differs from "
                                  f"the config's ({self.G.config})")
        if (state.get("D") is None) != (self.D is None):
            raise CheckpointError(f"{path}: the checkpoint was trained with{'out' if self.D is not None else ''} "
                                  "a discriminator, this config is not")
        load_state_dict_checked(self.G, state["G"], "generator", path)
        load_state_dict_checked(self.ema.module, state["G_ema"], "EMA generator", path)
        if self.D is not None:
            load_state_dict_checked(self.D, state["D"], "discriminator", path)
            self.optD.load_state_dict(state["optD"])
        self.optG.load_state_dict(state["optG"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])

    def set_lr(self, lr_G: float, lr_D: float) -> None:
        for opt, lr in ((self.optG, lr_G), (self.optD, lr_D)):
            for group in (opt.param_groups if opt is not None else ()):
                group["lr"] = lr


class Meter:
    """Means of the scalars added since the last :meth:`pop`, and the time per step.

    Example:
        >>> m = Meter(); m.add({"loss": 1.0}); m.add({"loss": 3.0}); m.step()
        >>> m.pop()["loss"]
        2.0
    """

    def __init__(self):
        self._sums: dict[str, tuple[float, int]] = {}
        self._steps, self._t0 = 0, time.perf_counter()

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            s, c = self._sums.get(k, (0.0, 0))
            self._sums[k] = (s + float(v), c + 1)

    def step(self) -> None:
        self._steps += 1

    def pop(self) -> dict[str, float]:
        now = time.perf_counter()
        row = {k: s / c for k, (s, c) in self._sums.items()}
        row["time/step_s"] = (now - self._t0) / max(self._steps, 1)
        self._sums, self._steps, self._t0 = {}, 0, now
        return row


def autocast(device: torch.device, enabled: bool):
    """Mixed precision (float16) on CUDA when enabled; a no-op context on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler that is active only for CUDA mixed precision."""
    return torch.amp.GradScaler("cuda", enabled=enabled and device.type == "cuda")


def linear_decay(step: int, total: int, start: int = 0) -> float:
    """LR factor: 1 until ``start``, then linearly to 0 at ``total`` (SNGAN's linear decay)."""
    if step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))
