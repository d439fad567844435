"""Conditional PatchGAN discriminator (pix2pix's 70×70 ``NLayerDiscriminator``)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import spectral_norm as _sn

from dehaze.nets.unet import norm_layer


class PatchDiscriminator(nn.Module):
    """Patch-wise real/fake logits; conditional when ``cond`` (the hazy input) is given.

    Args:
        in_channels: channels of ``cat([cond, x])`` (6 for conditional RGB, 3 unconditional).
        width: channels of the first layer (pix2pix ``ndf``).
        n_layers: stride-2 layers; 3 gives 70×70 receptive fields.
        norm: ``batch`` | ``instance`` | ``none`` (use ``none`` with spectral norm).
        spectral_norm: wrap every convolution in spectral normalisation (Miyato et al.).

    Example:
        >>> D = PatchDiscriminator(width=8)
        >>> D(torch.zeros(2, 3, 64, 64), cond=torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1, 6, 6])
    """

    def __init__(self, in_channels: int = 6, width: int = 64, n_layers: int = 3, norm: str = "batch",
                 spectral_norm: bool = False):
        super().__init__()
        self.config = dict(in_channels=in_channels, width=width, n_layers=n_layers, norm=norm,
                           spectral_norm=spectral_norm)
        sn = _sn if spectral_norm else (lambda m: m)
        bias = norm != "batch"
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, n_layers + 1):
            cout = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [sn(nn.Conv2d(c, cout, 4, stride, 1, bias=bias)), norm_layer(norm, cout), nn.LeakyReLU(0.2)]
            c = cout
        layers.append(sn(nn.Conv2d(c, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            if cond.shape[0] != x.shape[0] or cond.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"cond {tuple(cond.shape)} does not match x {tuple(x.shape)}")
            x = torch.cat([cond, x], dim=1)
        if x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"expected {self.config['in_channels']} input channels, got {x.shape[1]}")
        return self.net(x)
