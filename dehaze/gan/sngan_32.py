"""SNGAN ResNet generator and discriminator for 32×32 images (CIFAR; Mimicry's ``sngan_32``).

G: z (128) → linear → 4×4×ngf → 3 up-GBlocks (ngf) → BN → ReLU → conv3×3 → tanh.
D: DBlockOptimized(3→ndf) → DBlock(down) → DBlock → DBlock → ReLU → global sum pool → SNLinear.
Paper sizes: ngf=256, ndf=128.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.gan.base import Discriminator, Generator
from dehaze.gan.resblocks import DBlock, DBlockOptimized, GBlock, SNLinear


class SNGANGenerator32(Generator):
    """Example:
        >>> G = SNGANGenerator32(nz=16, ngf=8)
        >>> G(torch.randn(2, 16)).shape
        torch.Size([2, 3, 32, 32])
    """

    arch = "sngan"

    def __init__(self, nz: int = 128, ngf: int = 256, bottom_width: int = 4):
        super().__init__()
        self._remember(resolution=32, nz=nz, ngf=ngf, bottom_width=bottom_width)
        self.nz, self.ngf, self.bottom_width, self.resolution = nz, ngf, bottom_width, bottom_width * 8
        self.l1 = nn.Linear(nz, bottom_width ** 2 * ngf)
        self.block2 = GBlock(ngf, ngf, upsample=True)
        self.block3 = GBlock(ngf, ngf, upsample=True)
        self.block4 = GBlock(ngf, ngf, upsample=True)
        self.b5 = nn.BatchNorm2d(ngf)
        self.c5 = nn.Conv2d(ngf, 3, 3, 1, 1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0)
        nn.init.xavier_uniform_(self.c5.weight, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self._check_z(z)
        h = self.l1(z).view(z.shape[0], self.ngf, self.bottom_width, self.bottom_width)
        h = self.block4(self.block3(self.block2(h)))
        return torch.tanh(self.c5(F.relu(self.b5(h))))


class SNGANDiscriminator32(Discriminator):
    """Example:
        >>> D = SNGANDiscriminator32(ndf=8)
        >>> D(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 1])
    """

    arch = "sngan"

    def __init__(self, ndf: int = 128):
        super().__init__()
        self._remember(resolution=32, ndf=ndf)
        self.resolution = 32
        self.block1 = DBlockOptimized(3, ndf)
        self.block2 = DBlock(ndf, ndf, downsample=True)
        self.block3 = DBlock(ndf, ndf, downsample=False)
        self.block4 = DBlock(ndf, ndf, downsample=False)
        self.l5 = SNLinear(ndf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        h = self.block4(self.block3(self.block2(self.block1(x))))
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling
        return self.l5(h)
