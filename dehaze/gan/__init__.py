"""Unconditional GANs for reproducing SSD-GAN: SNGAN (32/48/128 px) and a small StyleGAN.

One file per architecture and resolution (torch-mimicry style); :func:`build_nets` picks the
pair for an architecture and resolution, :func:`build_generator` rebuilds a generator from
the ``G_config`` saved in checkpoints and :func:`load_gan_generator` loads one for sampling
(:func:`dehaze.nets.load_generator`, the loader of both trainers' checkpoints).
The SSD variants wrap the discriminator in :class:`dehaze.nets.SSDDiscriminator`.
"""

from __future__ import annotations

from pathlib import Path

from dehaze.errors import CheckpointError, ConfigError
from dehaze.gan.base import Discriminator, Generator
from dehaze.gan.sngan_32 import SNGANDiscriminator32, SNGANGenerator32
from dehaze.gan.sngan_48 import SNGANDiscriminator48, SNGANGenerator48
from dehaze.gan.sngan_128 import SNGANDiscriminator128, SNGANGenerator128
from dehaze.gan.stylegan import StyleGANDiscriminator, StyleGANGenerator

__all__ = [
    "Generator", "Discriminator", "SNGANGenerator32", "SNGANDiscriminator32", "SNGANGenerator48",
    "SNGANDiscriminator48", "SNGANGenerator128", "SNGANDiscriminator128", "StyleGANGenerator",
    "StyleGANDiscriminator", "SNGAN_RESOLUTIONS", "build_nets", "build_generator", "load_gan_generator",
]

# resolution -> (G class, D class, paper's default ngf, ndf)
SNGAN_RESOLUTIONS = {
    32: (SNGANGenerator32, SNGANDiscriminator32, 256, 128),
    48: (SNGANGenerator48, SNGANDiscriminator48, 512, 1024),
    128: (SNGANGenerator128, SNGANDiscriminator128, 1024, 1024),
}


def build_nets(arch: str, resolution: int, nz: int = 128, ngf: int | None = None, ndf: int | None = None,
               **stylegan_kwargs) -> tuple[Generator, Discriminator]:
    """A generator/discriminator pair.

    Args:
        arch: ``sngan`` or ``stylegan``.
        resolution: 32, 48 or 128 for SNGAN; a power of two >= 8 for StyleGAN.
        nz: latent size.
        ngf, ndf: widths of G and D (``None``: the paper's sizes; StyleGAN default 256).
        stylegan_kwargs: ``w_dim``, ``mapping_layers`` for StyleGAN.

    Example:
        >>> import torch
        >>> G, D = build_nets("sngan", 32, ngf=8, ndf=8)
        >>> D(G(torch.randn(2, 128))).shape
        torch.Size([2, 1])
    """
    if arch == "sngan":
        if resolution not in SNGAN_RESOLUTIONS:
            raise ConfigError(f"SNGAN exists for resolutions {sorted(SNGAN_RESOLUTIONS)}, not {resolution}")
        g_cls, d_cls, g_w, d_w = SNGAN_RESOLUTIONS[resolution]
        return g_cls(nz=nz, ngf=ngf or g_w), d_cls(ndf=ndf or d_w)
    if arch == "stylegan":
        if resolution < 8 or resolution & (resolution - 1):
            raise ConfigError(f"StyleGAN needs a power-of-two resolution >= 8, not {resolution}")
        w_dim = stylegan_kwargs.get("w_dim") or (ngf or 256)
        G = StyleGANGenerator(resolution, nz=nz, w_dim=w_dim, width=ngf or 256,
                              mapping_layers=stylegan_kwargs.get("mapping_layers", 4))
        return G, StyleGANDiscriminator(resolution, width=ndf or 256)
    raise ConfigError(f"unknown architecture {arch!r}; choose sngan or stylegan")


def build_generator(config: dict) -> Generator:
    """Rebuild a generator from its ``config`` (as saved under ``G_config`` in checkpoints)."""
    cfg = dict(config)
    arch, res = cfg.pop("arch", None), cfg.get("resolution")
    try:
        if arch == "sngan" and res in SNGAN_RESOLUTIONS:
            cfg.pop("resolution")
            return SNGAN_RESOLUTIONS[res][0](**cfg)
        if arch == "stylegan":
            return StyleGANGenerator(**cfg)
    except TypeError as exc:
        raise CheckpointError(f"generator settings {config} do not fit {arch}: {exc}") from None
    raise CheckpointError(f"unknown generator {config}")


def load_gan_generator(path: str | Path, prefer_ema: bool = True) -> tuple[Generator, dict]:
    """Load an unconditional generator from a training checkpoint: :func:`dehaze.nets.load_generator`
    (the one generator loader) with this package's :func:`build_generator`.

    Returns:
        ``(G, meta)`` with G in eval mode and ``meta`` holding ``config``, ``step``, ``metrics``,
        ``G_config``, ``weights`` ("G_ema" or "G").
    """
    from dehaze.nets import load_generator

    return load_generator(path, prefer_ema, build=build_generator)
