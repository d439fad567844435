"""Devices, seeds, the step-indexed batch sampler and (optional) multi-process training with
torchrun + DistributedDataParallel.

``torchrun --nproc_per_node=N training/train_dehaze.py ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; :func:`setup` reads them, picks NCCL on CUDA and Gloo on the CPU, and binds
each process to its GPU. Without torchrun everything is a single process.

:class:`StepBatchSampler` makes the batch of step ``s`` a pure function of ``(seed, s)``, so a
resumed run sees exactly the batches the uninterrupted run would have seen (both trainers).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader, Dataset, Sampler

from dehaze.errors import ConfigError


@dataclass
class DistEnv:
    """Where this process runs and who it is."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when usable, else CPU; ``cpu``, ``cuda``, ``cuda:1`` as given (checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but no CUDA device is usable here")
    return dev


def setup(device: str = "auto") -> DistEnv:
    """Initialise the process group when launched by torchrun; otherwise a single-process env."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if not tdist.is_initialized():
            tdist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev, world > 1)


def cleanup() -> None:
    """Tear down the process group if one was created."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        tdist.barrier()


def seed_all(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch; each rank gets its own stream (``seed + rank``)."""
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def wrap_ddp(module: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when distributed (BatchNorm made synchronous)."""
    if not env.distributed:
        return module
    module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module) if env.device.type == "cuda" else module
    ids = [env.device.index] if env.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


def all_reduce_mean(values: dict[str, float], env: DistEnv) -> dict[str, float]:
    """Average scalar stats over ranks (for logging)."""
    if not env.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device=env.device if env.device.type == "cuda" else "cpu")
    tdist.all_reduce(t)
    t /= env.world_size
    return dict(zip(keys, t.tolist()))


class StepBatchSampler(Sampler):
    """Index lists per training step; the batch of step ``s`` depends only on ``(seed, s)``.

    Each epoch is a fresh permutation (seeded by ``seed`` and the epoch); the last partial
    global batch of an epoch is dropped. With several processes, step ``s``'s global batch of
    ``batch·world`` indices is split into ``world`` consecutive slices. With ``with_epoch`` the
    sampler yields ``(index, epoch)`` keys instead of indices, for data sets whose random draws
    (crops, haze) depend on the epoch (:mod:`dehaze.data`): the items are then a pure function
    of the step as well, in DataLoader workers too.

    Example:
        >>> s = StepBatchSampler(10, batch=4, seed=0, start_step=1, steps=2)
        >>> [len(b) for b in s]
        [4, 4]
        >>> list(StepBatchSampler(10, 4, 0, start_step=1, steps=1)) == [list(s)[0]]
        True
        >>> StepBatchSampler(10, 4, 0, start_step=2, steps=1, with_epoch=True).indices(2)[0][1]  # 2 steps per epoch
        1
    """

    def __init__(self, n: int, batch: int, seed: int = 0, start_step: int = 0, steps: int | None = None,
                 rank: int = 0, world: int = 1, with_epoch: bool = False):
        self.global_batch = batch * world
        if n < self.global_batch:
            raise ConfigError(f"the data set has {n} samples, fewer than one batch ({batch} x {world} processes)")
        self.n, self.batch, self.seed, self.rank = n, batch, int(seed), rank
        self.start, self.steps, self.with_epoch = int(start_step), steps, with_epoch
        self.per_epoch = n // self.global_batch
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def indices(self, step: int) -> list:
        """This process's indices (or ``(index, epoch)`` keys) for ``step``."""
        epoch, k = divmod(step, self.per_epoch)
        lo = k * self.global_batch + self.rank * self.batch
        idx = self._permutation(epoch)[lo:lo + self.batch].tolist()
        return [(i, epoch) for i in idx] if self.with_epoch else idx

    def __iter__(self):
        s = self.start
        while self.steps is None or s < self.start + self.steps:
            yield self.indices(s)
            s += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return self.steps


def step_batches(dataset: Dataset, batch: int, env: DistEnv, seed: int, start_step: int = 0, workers: int = 0,
                 rng: dict[str, Any] | None = None, with_epoch: bool = False) -> Iterator:
    """Endless batches from step ``start_step`` on (:class:`StepBatchSampler`), and the random stream
    of the training steps: seeded per rank and per (re)start, or, for a single process resuming,
    ``rng`` (a checkpoint's :func:`~dehaze.train.checkpoint.rng_state`) restored, so the run continues
    exactly as the uninterrupted one would have.
    """
    from dehaze.train.checkpoint import set_rng_state

    seed_all(int(seed) * 1000 + int(start_step), env.rank)
    sampler = StepBatchSampler(len(dataset), batch, seed, start_step, None, env.rank, env.world_size, with_epoch)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=env.device.type == "cuda")
    batches = iter(loader)  # (draws the workers' base seed from the stream just seeded)
    if rng is not None and env.world_size == 1:
        set_rng_state(rng)
    return batches
