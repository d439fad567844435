"""SNGAN ResNet generator and discriminator for 128×128 images (LSUN; Mimicry's ``sngan_128``).

G: z (128) → linear → 4×4×ngf → 5 up-GBlocks ngf→ngf→ngf/2→ngf/4→ngf/8→ngf/16 → BN → ReLU
→ conv3×3 → tanh.
D: DBlockOptimized(3→ndf/16) → DBlock(down) ×4 (→ndf/8, ndf/4, ndf/2, ndf) → DBlock(ndf) → ReLU
→ global sum pool → SNLinear. Paper sizes: ngf=ndf=1024.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.gan.base import Discriminator, Generator
from dehaze.gan.resblocks import DBlock, DBlockOptimized, GBlock, SNLinear


class SNGANGenerator128(Generator):
    """Example:
        >>> G = SNGANGenerator128(nz=16, ngf=16)
        >>> G(torch.randn(1, 16)).shape
        torch.Size([1, 3, 128, 128])
    """

    arch = "sngan"

    def __init__(self, nz: int = 128, ngf: int = 1024, bottom_width: int = 4):
        super().__init__()
        if ngf % 16:
            raise ValueError(f"ngf must be a multiple of 16 for the 128x128 SNGAN, got {ngf}")
        self._remember(resolution=128, nz=nz, ngf=ngf, bottom_width=bottom_width)
        self.nz, self.ngf, self.bottom_width, self.resolution = nz, ngf, bottom_width, bottom_width * 32
        self.l1 = nn.Linear(nz, bottom_width ** 2 * ngf)
        self.block2 = GBlock(ngf, ngf, upsample=True)
        self.block3 = GBlock(ngf, ngf >> 1, upsample=True)
        self.block4 = GBlock(ngf >> 1, ngf >> 2, upsample=True)
        self.block5 = GBlock(ngf >> 2, ngf >> 3, upsample=True)
        self.block6 = GBlock(ngf >> 3, ngf >> 4, upsample=True)
        self.b7 = nn.BatchNorm2d(ngf >> 4)
        self.c7 = nn.Conv2d(ngf >> 4, 3, 3, 1, 1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0)
        nn.init.xavier_uniform_(self.c7.weight, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self._check_z(z)
        h = self.l1(z).view(z.shape[0], self.ngf, self.bottom_width, self.bottom_width)
        h = self.block6(self.block5(self.block4(self.block3(self.block2(h)))))
        return torch.tanh(self.c7(F.relu(self.b7(h))))


class SNGANDiscriminator128(Discriminator):
    """Example:
        >>> D = SNGANDiscriminator128(ndf=32)
        >>> D(torch.zeros(1, 3, 128, 128)).shape
        torch.Size([1, 1])
    """

    arch = "sngan"

    def __init__(self, ndf: int = 1024):
        super().__init__()
        if ndf % 16:
            raise ValueError(f"ndf must be a multiple of 16 for the 128x128 SNGAN, got {ndf}")
        self._remember(resolution=128, ndf=ndf)
        self.resolution = 128
        self.block1 = DBlockOptimized(3, ndf >> 4)
        self.block2 = DBlock(ndf >> 4, ndf >> 3, downsample=True)
        self.block3 = DBlock(ndf >> 3, ndf >> 2, downsample=True)
        self.block4 = DBlock(ndf >> 2, ndf >> 1, downsample=True)
        self.block5 = DBlock(ndf >> 1, ndf, downsample=True)
        self.block6 = DBlock(ndf, ndf, downsample=False)
        self.l7 = SNLinear(ndf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        h = self.block6(self.block5(self.block4(self.block3(self.block2(self.block1(x))))))
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling
        return self.l7(h)
