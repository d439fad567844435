"""Networks: U-Net generator, PatchGAN, spectral classifiers, SSD discriminator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dehaze.errors import CheckpointError
from dehaze.nets.patchgan import PatchDiscriminator
from dehaze.nets.spectral_classifier import PhaseSpectrumClassifier, SpectralClassifier, SpectrumMapClassifier
from dehaze.nets.ssd import SSDDiscriminator, SSDOutput, build_spectral_classifier, ssd_combine
from dehaze.nets.unet import GuidedUpsample, UNetGenerator, guided_upsample

__all__ = [
    "UNetGenerator", "GuidedUpsample", "guided_upsample", "PatchDiscriminator", "SpectralClassifier", "PhaseSpectrumClassifier",
    "SpectrumMapClassifier", "SSDDiscriminator", "SSDOutput", "ssd_combine", "build_spectral_classifier",
    "build_generator", "load_generator", "average_generators", "count_parameters", "weight_layout",
    "weightless_settings", "WEIGHTLESS_KEYS",
]

# Settings older generator configs may hold that change no weights: the guided filter on t, which ran
# inside UNetGenerator.forward and is now GuidedUpsample, composed by export (dehaze.export).
WEIGHTLESS_KEYS = ("t_refine", "t_refine_eps")


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def weight_layout(cfg: dict) -> dict:
    """A generator config without its weightless settings: two generators whose layouts are equal
    can load each other's weights (an older config may carry ``t_refine``, see :data:`WEIGHTLESS_KEYS`).

    Example:
        >>> weight_layout({"width": 32, "t_refine": 8, "t_refine_eps": 1.0})
        {'width': 32}
    """
    return {k: v for k, v in (cfg or {}).items() if k not in WEIGHTLESS_KEYS}


def weightless_settings(cfg: dict) -> dict:
    """The weightless settings (:data:`WEIGHTLESS_KEYS`) an older generator config holds, set aside by
    :func:`build_generator`; export uses them as the default guided filter on t.

    Example:
        >>> weightless_settings({"width": 32, "t_refine": 24, "t_refine_eps": 0.01})
        {'t_refine': 24, 't_refine_eps': 0.01}
    """
    return {k: v for k, v in (cfg or {}).items() if k in WEIGHTLESS_KEYS}


def build_generator(cfg: dict) -> UNetGenerator:
    """A :class:`UNetGenerator` from a dict of its keyword arguments (unknown keys are an error).

    ``airlight_head: mean``, the only airlight head, is accepted from older configs; the ``prior`` head
    was removed (docs/ablation.md, "Removed experiments"). The weightless ``t_refine`` /
    ``t_refine_eps`` of older configs are set aside (:func:`weightless_settings` reads them).
    """
    cfg = weight_layout(cfg)
    head = cfg.pop("airlight_head", "mean")
    if head != "mean":
        raise CheckpointError(f"airlight_head: {head} was an experiment that has been removed "
                              "(docs/ablation.md, 'Removed experiments'); only the mean head exists")
    try:
        return UNetGenerator(**cfg)
    except TypeError as exc:
        raise CheckpointError(f"generator settings do not fit UNetGenerator: {exc}") from None


def load_generator(path: str | Path, prefer_ema: bool = True, map_location: str = "cpu",
                   build: Callable[[dict], torch.nn.Module] = build_generator):
    """Load a generator from a training checkpoint of either trainer (the one generator loader).

    Args:
        path: checkpoint written by a trainer (keys ``G``, optional ``G_ema``, ``G_config``).
        prefer_ema: use the EMA weights when the checkpoint has them.
        build: rebuilds the generator from ``G_config``: :func:`build_generator` (the dehazing U-Net),
            or :func:`dehaze.gan.build_generator` for the unconditional GANs.

    Returns:
        ``(G, meta)``: the generator in eval mode and the checkpoint's other entries
        (``config``, ``step``, ``metrics``, ``G_config`` as stored, ``weights`` = "G_ema" or "G",
        ``weightless`` = the settings :func:`build_generator` set aside, e.g. ``{"t_refine": 24,
        "t_refine_eps": 0.01}``, empty for newer checkpoints).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt or not a torch file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or "G" not in ckpt or "G_config" not in ckpt:
        raise CheckpointError(f"{path} is not a generator checkpoint (needs 'G' and 'G_config' entries)")
    G = build(ckpt["G_config"])
    key = "G_ema" if prefer_ema and ckpt.get("G_ema") is not None else "G"
    try:
        G.load_state_dict(ckpt[key])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match G_config: {str(exc).splitlines()[0]}") from None
    G.eval()
    meta = {k: ckpt.get(k) for k in ("config", "step", "metrics", "G_config")}
    meta["weights"] = key
    meta["weightless"] = weightless_settings(ckpt["G_config"])
    return G, meta


def average_generators(paths, prefer_ema: bool = True):
    """Load several checkpoints of one run and average their generator weights (stochastic weight
    averaging over snapshots, Izmailov et al. 2018): steadier than any single snapshot when the
    validation score swings between neighbouring checkpoints.

    Floating-point tensors (weights, BatchNorm running statistics) are averaged; integer buffers
    come from the last checkpoint. All checkpoints must share ``G_config``.

    Args:
        paths: checkpoint files, in training order (the last one supplies ``config`` and ``step``).
        prefer_ema: average the EMA weights of checkpoints that have them.

    Returns:
        ``(G, meta)`` as :func:`load_generator`, with ``meta["averaged"]`` the number of checkpoints
        and ``meta["steps"]`` their steps.

    Example:
        >>> average_generators([])
        Traceback (most recent call last):
        ...
        dehaze.errors.CheckpointError: no checkpoints to average
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise CheckpointError("no checkpoints to average")
    loaded = [load_generator(p, prefer_ema=prefer_ema) for p in paths]
    G, meta = loaded[-1]
    for p, (_, m) in zip(paths, loaded):
        if m["G_config"] != meta["G_config"]:
            raise CheckpointError(f"{p} has another generator ({m['G_config']}) than {paths[-1]}; average one run only")
    states = [g.state_dict() for g, _ in loaded]
    avg = {
        k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
        for k, v in states[-1].items()
    }
    G.load_state_dict(avg)
    meta = {**meta, "averaged": len(paths), "steps": [m["step"] for _, m in loaded]}
    return G.eval(), meta
