"""The training-loop skeleton shared by the dehazing and the unconditional GAN trainers.

- :mod:`~dehaze.train.config`: YAML configs with ``_base_`` and ``key=value`` overrides.
- :mod:`~dehaze.train.dist`: device choice, seeds, torchrun/DDP, the step-indexed resumable sampler.
- :mod:`~dehaze.train.checkpoint`: atomic checkpoints and RNG state.
- :mod:`~dehaze.train.logger`: TensorBoard + ``stats.jsonl`` + images, progress bar.
- :mod:`~dehaze.train.run`: a run's folder, resume, last/best checkpoints, clean stop on
  SIGTERM, the models and their checkpoint state, EMA, logged means, mixed precision, LR schedule.
"""

from dehaze.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dehaze.train.config import load_config, save_config
from dehaze.train.dist import (
    DistEnv,
    StepBatchSampler,
    cleanup,
    seed_all,
    setup,
    step_batches,
    unwrap,
    wrap_ddp,
)
from dehaze.train.logger import RunLogger, progress
from dehaze.train.run import (
    EMA,
    Meter,
    Models,
    Run,
    autocast,
    constant_decay,
    ema_update,
    grad_scaler,
    half_life_decay,
    linear_decay,
    make_ema,
)

__all__ = [
    "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state", "load_config", "save_config",
    "DistEnv", "StepBatchSampler", "cleanup", "seed_all", "setup", "step_batches", "unwrap", "wrap_ddp",
    "RunLogger", "progress", "Run", "Models", "EMA", "Meter", "autocast", "constant_decay", "ema_update",
    "grad_scaler", "half_life_decay", "linear_decay", "make_ema",
]
