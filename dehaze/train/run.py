"""The pieces of a training loop that every trainer shares.

:class:`Run` owns a run's folder: it saves the config, opens the logger, finds the
checkpoint to resume from, writes ``last.pt`` (and ``best.pt``) atomically, and turns
SIGINT/SIGTERM into a clean "save and stop" at the next step boundary. Also here: EMA of
weights, mixed precision helpers and a learning-rate schedule.
"""

from __future__ import annotations

import copy
import signal
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from dehaze.errors import CheckpointError
from dehaze.train.checkpoint import load_checkpoint, save_checkpoint
from dehaze.train.config import save_config
from dehaze.train.dist import DistEnv
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
