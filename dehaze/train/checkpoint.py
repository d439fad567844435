"""Crash-safe checkpoints and RNG state.

A checkpoint is written to a temporary file in the same folder, flushed to disk and
renamed over the old one, so a run killed at any moment leaves the previous checkpoint
intact and never a half-written file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dehaze.errors import CheckpointError
from dehaze.io import atomic_file


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call ``write(file_object)`` on a temp file next to ``path``, then put it in place atomically
    (:func:`dehaze.io.atomic_file`: fsync, rename, no temp file left when ``write`` fails)."""
    with atomic_file(path) as f:
        write(f)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` atomically."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict; CheckpointError (one line) if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.__class__.__name__}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a training checkpoint")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) random states, for exact resumption."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_state_dict_checked(module: torch.nn.Module, state: dict, what: str, path: str | Path) -> None:
    """``module.load_state_dict`` with a one-line CheckpointError when shapes or keys don't fit."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: the saved {what} does not fit this config ({first})") from None
