"""What every unconditional generator and discriminator here shares: config, sampling, input checks."""

from __future__ import annotations

import torch
import torch.nn as nn


class Generator(nn.Module):
    """Base of the unconditional generators: ``G(z) -> (B, 3, R, R)`` images in about ``[-1, 1]``.

    Subclasses set ``self.nz`` (latent size), ``self.resolution`` and ``self.config`` (the
    keyword arguments that rebuild them, plus ``arch``), so checkpoints can rebuild ``G``.
    """

    arch = "?"
    nz: int
    resolution: int

    def _remember(self, **kwargs) -> None:
        self.config = {"arch": self.arch, **kwargs}

    def _check_z(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(f"{type(self).__name__} expects noise of shape (B, {self.nz}), got {tuple(z.shape)}")

    def noise(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        """``n`` standard normal latent vectors ``(n, nz)``."""
        return torch.randn(n, self.nz, device=device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, batch: int = 256, device: torch.device | str | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images clamped to ``[-1, 1]`` on the CPU, generated in batches (no gradient)."""
        device = device or next(self.parameters()).device
        out = []
        for i in range(0, n, batch):
            z = self.noise(min(batch, n - i), "cpu", generator).to(device)
            out.append(self(z).float().clamp(-1, 1).cpu())
        return torch.cat(out) if out else torch.empty(0, 3, self.resolution, self.resolution)


class Discriminator(nn.Module):
    """Base of the unconditional discriminators: ``D(x) -> (B, 1)`` logits."""

    arch = "?"
    resolution: int

    def _remember(self, **kwargs) -> None:
        self.config = {"arch": self.arch, **kwargs}

    def _check_x(self, x: torch.Tensor) -> None:
        r = self.resolution
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (r, r):
            raise ValueError(f"{type(self).__name__} expects images of shape (B, 3, {r}, {r}), "
                             f"got {tuple(x.shape)}")
