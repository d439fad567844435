"""SNGAN ResNet generator and discriminator for 48×48 images (STL-10; Mimicry's ``sngan_48``).

G: z (128) → linear → 6×6×ngf → up-GBlocks ngf→ngf/2→ngf/4→ngf/8 → BN → ReLU → conv3×3 → tanh.
D: DBlockOptimized(3→ndf/16) → DBlock(down, →ndf/8) → DBlock(down, →ndf/4) → DBlock(down, →ndf/2)
→ DBlock(→ndf) → ReLU → global sum pool → SNLinear. Paper sizes: ngf=512, ndf=1024.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.gan.base import Discriminator, Generator
from dehaze.gan.resblocks import DBlock, DBlockOptimized, GBlock, SNLinear


class SNGANGenerator48(Generator):
    """Example:
        >>> G = SNGANGenerator48(nz=16, ngf=16)
        >>> G(torch.randn(2, 16)).shape
        torch.Size([2, 3, 48, 48])
    """

    arch = "sngan"

    def __init__(self, nz: int = 128, ngf: int = 512, bottom_width: int = 6):
        super().__init__()
        if ngf % 8:
            raise ValueError(f"ngf must be a multiple of 8 for the 48x48 SNGAN, got {ngf}")
        self._remember(resolution=48, nz=nz, ngf=ngf, bottom_width=bottom_width)
        self.nz, self.ngf, self.bottom_width, self.resolution = nz, ngf, bottom_width, bottom_width * 8
        self.l1 = nn.Linear(nz, bottom_width ** 2 * ngf)
        self.block2 = GBlock(ngf, ngf >> 1, upsample=True)
        self.block3 = GBlock(ngf >> 1, ngf >> 2, upsample=True)
        self.block4 = GBlock(ngf >> 2, ngf >> 3, upsample=True)
        self.b5 = nn.BatchNorm2d(ngf >> 3)
        self.c5 = nn.Conv2d(ngf >> 3, 3, 3, 1, 1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0)
        nn.init.xavier_uniform_(self.c5.weight, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self._check_z(z)
        h = self.l1(z).view(z.shape[0], self.ngf, self.bottom_width, self.bottom_width)
        h = self.block4(self.block3(self.block2(h)))
        return torch.tanh(self.c5(F.relu(self.b5(h))))


class SNGANDiscriminator48(Discriminator):
    """Example:
        >>> D = SNGANDiscriminator48(ndf=32)
        >>> D(torch.zeros(2, 3, 48, 48)).shape
        torch.Size([2, 1])
    """

    arch = "sngan"

    def __init__(self, ndf: int = 1024):
        super().__init__()
        if ndf % 16:
            raise ValueError(f"ndf must be a multiple of 16 for the 48x48 SNGAN, got {ndf}")
        self._remember(resolution=48, ndf=ndf)
        self.resolution = 48
        self.block1 = DBlockOptimized(3, ndf >> 4)
        self.block2 = DBlock(ndf >> 4, ndf >> 3, downsample=True)
        self.block3 = DBlock(ndf >> 3, ndf >> 2, downsample=True)
        self.block4 = DBlock(ndf >> 2, ndf >> 1, downsample=True)
        self.block5 = DBlock(ndf >> 1, ndf, downsample=False)
        self.l6 = SNLinear(ndf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        h = self.block5(self.block4(self.block3(self.block2(self.block1(x)))))
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling
        return self.l6(h)
