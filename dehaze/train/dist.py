"""Devices, seeds and (optional) multi-process training with torchrun + DistributedDataParallel.

``torchrun --nproc_per_node=N training/train_dehaze.py ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; :func:`setup` reads them, picks NCCL on CUDA and Gloo on the CPU, and binds
each process to its GPU. Without torchrun everything is a single process.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

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


def make_loader(dataset: Dataset, batch_size: int, env: DistEnv, workers: int = 2, seed: int = 0,
                drop_last: bool = True) -> DataLoader:
    """A shuffling loader: a DistributedSampler across ranks, a seeded RandomSampler otherwise.

    ``batch_size`` is per process. Worker processes are kept alive between epochs.
    """
    if len(dataset) < batch_size * env.world_size and drop_last:
        raise ConfigError(f"the data set has {len(dataset)} samples, fewer than one batch "
                          f"({batch_size} x {env.world_size} processes)")
    if env.distributed:
        sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                     seed=seed, drop_last=drop_last)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, pin_memory=env.device.type == "cuda",
                      persistent_workers=workers > 0)


def infinite(loader: DataLoader, start_epoch: int = 0) -> Iterator:
    """Yield batches forever, telling a DistributedSampler which epoch it is."""
    epoch = start_epoch
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1
