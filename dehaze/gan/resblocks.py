"""Residual blocks of the SNGAN ResNet generators and discriminators (as in the Mimicry library).

The generator block is BN → ReLU → (bilinear ×2) → conv3×3 → BN → ReLU → conv3×3, plus a
shortcut that is upsampled and 1×1-convolved when the shape changes. The discriminator
block is ReLU → conv3×3 → ReLU → conv3×3 → (avg-pool ×½), plus a 1×1 shortcut; its first
block ("optimized") skips the leading ReLU and pools the shortcut before the 1×1 conv.
Discriminator convolutions are spectrally normalised (Miyato et al. 2018). Initialisation
follows Mimicry: Xavier-uniform with gain √2 on 3×3 convolutions, 1 on shortcuts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as _spectral_norm

__all__ = ["sn", "upsample2x", "GBlock", "DBlock", "DBlockOptimized", "SNLinear"]


def sn(module: nn.Module, on: bool = True) -> nn.Module:
    """Spectral normalisation (one power iteration per step) when ``on``."""
    return _spectral_norm(module) if on else module


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear ×2 upsampling (``align_corners=False``, as Mimicry's GBlock)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _conv(cin: int, cout: int, k: int, gain: float, spectral: bool) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, 1, k // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    return sn(conv, spectral)


def SNLinear(cin: int, cout: int) -> nn.Module:  # noqa: N802 (a layer factory, named like a layer)
    """Spectrally normalised linear layer with Xavier-uniform init (the SNGAN output layer)."""
    lin = nn.Linear(cin, cout)
    nn.init.xavier_uniform_(lin.weight, 1.0)
    return sn(lin)


class GBlock(nn.Module):
    """Generator residual block.

    Example:
        >>> GBlock(8, 4, upsample=True)(torch.zeros(2, 8, 4, 4)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None,
                 upsample: bool = False):
        super().__init__()
        hidden = hidden_channels or out_channels
        self.upsample = upsample
        self.b1 = nn.BatchNorm2d(in_channels)
        self.c1 = _conv(in_channels, hidden, 3, math.sqrt(2), False)
        self.b2 = nn.BatchNorm2d(hidden)
        self.c2 = _conv(hidden, out_channels, 3, math.sqrt(2), False)
        self.c_sc = _conv(in_channels, out_channels, 1, 1.0, False) if (in_channels != out_channels or upsample) \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(x))
        h = upsample2x(h) if self.upsample else h
        h = self.c2(F.relu(self.b2(self.c1(h))))
        sc = upsample2x(x) if self.upsample else x
        sc = self.c_sc(sc) if self.c_sc is not None else sc
        return h + sc


class DBlock(nn.Module):
    """Discriminator residual block (spectrally normalised by default).

    Example:
        >>> DBlock(4, 8, downsample=True)(torch.zeros(2, 4, 8, 8)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None,
                 downsample: bool = False, spectral_norm: bool = True):
        super().__init__()
        hidden = hidden_channels or in_channels
        self.downsample = downsample
        self.c1 = _conv(in_channels, hidden, 3, math.sqrt(2), spectral_norm)
        self.c2 = _conv(hidden, out_channels, 3, math.sqrt(2), spectral_norm)
        self.c_sc = _conv(in_channels, out_channels, 1, 1.0, spectral_norm) \
            if (in_channels != out_channels or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(F.relu(x))))
        h = F.avg_pool2d(h, 2) if self.downsample else h
        sc = self.c_sc(x) if self.c_sc is not None else x
        sc = F.avg_pool2d(sc, 2) if self.downsample else sc
        return h + sc


class DBlockOptimized(nn.Module):
    """First discriminator block: conv → ReLU → conv → avg-pool, shortcut avg-pool → 1×1 conv.

    Example:
        >>> DBlockOptimized(3, 8)(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, spectral_norm: bool = True):
        super().__init__()
        self.c1 = _conv(in_channels, out_channels, 3, math.sqrt(2), spectral_norm)
        self.c2 = _conv(out_channels, out_channels, 3, math.sqrt(2), spectral_norm)
        self.c_sc = _conv(in_channels, out_channels, 1, 1.0, spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
        return h + self.c_sc(F.avg_pool2d(x, 2))
