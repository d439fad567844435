"""Evaluate an unconditional generator: spectral discrepancy (always), FID/KID (with weights), sample grid.

:func:`evaluate` writes into one folder

- ``samples.png``: a grid of generated images;
- ``power_spectrum.png``: mean power spectrum of real vs generated images (report Fig. 3);
- ``spectrum_difference.png``: |Δ mean log-magnitude spectrum| (paper Fig. 6);
- ``spectra.npz``: the arrays behind the plots (for aggregating runs);
- ``metrics.json``: the scalars.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from dehaze.gan.base import Generator
from dehaze.metrics.gan import extract_features, fid_from_features, kid_from_features
from dehaze.metrics.spectral import (
    mean_log_magnitude,
    mean_power_spectrum,
    plot_power_spectra,
    plot_spectrum_differences,
    save_image_grid,
    spectral_discrepancy,
)
from dehaze.train.checkpoint import atomic_write_bytes

__all__ = ["real_images", "standing_stats", "RealReference", "EvalResult", "evaluate"]


def real_images(dataset: Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images (or all) of ``dataset`` drawn without replacement, ``(n, 3, R, R)`` in ``[-1, 1]``."""
    m = len(dataset)
    idx = torch.randperm(m, generator=torch.Generator().manual_seed(seed))[:min(n, m)] if n and n < m \
        else torch.arange(m)
    data = getattr(dataset, "data", None)
    if isinstance(data, torch.Tensor) and data.dtype == torch.uint8:
        return data[idx].float() / 127.5 - 1
    return torch.stack([dataset[int(i)] for i in idx])


@torch.no_grad()
def standing_stats(G: nn.Module, n_batches: int = 16, batch: int = 64, seed: int = 0) -> None:
    """Re-estimate BatchNorm statistics of ``G`` (e.g. G_ema) as exact averages over generated batches.

    Does nothing for generators without BatchNorm. Leaves ``G`` in eval mode.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        G.eval()
        return
    device = next(G.parameters()).device
    old = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    G.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        G(torch.randn(batch, G.nz, generator=g).to(device))
    for m, mom in zip(bns, old):
        m.momentum = mom
    G.eval()


class RealReference:
    """Statistics of the real images, computed once per run: spectra and (optionally) Inception features
    and the features of the extra KID extractor (``kid_extractor``, e.g. :class:`~dehaze.metrics.gan.CifarFeatures`)."""

    def __init__(self, images: torch.Tensor, extractor: Callable | None = None, device: torch.device | str = "cpu",
                 kid_extractor: Callable | None = None):
        self.images = images
        self.size = int(min(images.shape[-2:]))
        self.power = mean_power_spectrum(images)
        self.logmag = mean_log_magnitude(images)
        self.features = extract_features(images, extractor, device=device) if extractor is not None else None
        self.kid_features = extract_features(images, kid_extractor, device=device) \
            if kid_extractor is not None else None


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        scalars: ``spec_hf``, ``spec_all``, ``n``; with an extractor ``fid``, ``kid``, ``kid_std``; with a
            ``kid_extractor`` ``kid_cifar``, ``kid_cifar_std`` (KID on its features, not comparable with
            Inception's).
        power: mean power spectrum of the generated images ``(R,)``.
        logmag: their mean log-magnitude spectrum ``(H, W)``.
        samples: the first generated images (for a grid), ``(k, 3, R, R)`` in ``[-1, 1]``.
    """

    scalars: dict
    power: np.ndarray
    logmag: np.ndarray
    samples: torch.Tensor = field(repr=False)


def evaluate(G: Generator, ref: RealReference, out_dir: str | Path | None, n: int = 5000, seed: int = 0,
             extractor: Callable | None = None, grid: int = 64, label: str = "generated",
             device: torch.device | str | None = None, kid_subsets: int = 100,
             kid_extractor: Callable | None = None) -> EvalResult:
    """Generate ``n`` images with ``G`` (as it is: call :func:`standing_stats` first for an EMA copy) and score them.

    The same ``seed`` gives the same latent vectors, so runs are compared on equal noise.
    ``extractor`` (Inception) gives FID and KID; ``kid_extractor`` an extra KID (``kid_cifar``) on its
    features, for machines without Inception weights.
    """
    was_training = G.training
    G.eval()
    fake = G.sample(n, device=device, generator=torch.Generator().manual_seed(seed))
    G.train(was_training)
    power = mean_power_spectrum(fake)
    logmag = mean_log_magnitude(fake)
    res = spectral_discrepancy(ref.power, power, nyquist=ref.size // 2)
    if extractor is not None and ref.features is not None:
        feats = extract_features(fake, extractor, device=device or "cpu")
        res["fid"] = fid_from_features(ref.features, feats)
        res["kid"], res["kid_std"] = kid_from_features(ref.features, feats, n_subsets=kid_subsets)
    if kid_extractor is not None and ref.kid_features is not None:
        feats = extract_features(fake, kid_extractor, device=device or "cpu")
        res["kid_cifar"], res["kid_cifar_std"] = kid_from_features(ref.kid_features, feats, n_subsets=kid_subsets)
    res["n"] = int(n)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if grid:
            save_image_grid(fake[:grid], out / "samples.png", nrow=int(np.ceil(np.sqrt(min(grid, len(fake))))))
        plot_power_spectra(ref.power, {label: power}, ref.size, out / "power_spectrum.png",
                           title=f"{label}: D_hf={res['spec_hf']:.3f}")
        plot_spectrum_differences({label: np.abs(ref.logmag - logmag)}, out / "spectrum_difference.png")

        def write_npz(f):
            np.savez(f, power_real=ref.power, power_fake=power, logmag_real=ref.logmag, logmag_fake=logmag)

        atomic_write_bytes(out / "spectra.npz", write_npz)
        atomic_write_bytes(out / "metrics.json", lambda f: f.write(json.dumps(res, indent=2).encode()))
    return EvalResult(res, power, logmag, fake[:grid])
