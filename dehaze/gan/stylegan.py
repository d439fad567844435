"""A StyleGAN for small images (fixed resolution; StyleGAN2-style modulated convolutions).

Generator: a mapping network (pixel norm, equalised-LR MLP with learning-rate multiplier
0.01) turns z into w; the synthesis network starts from a learned 4×4 constant and, per
resolution, applies two 3×3 convolutions whose weights are modulated by a per-layer affine
style of w and demodulated (StyleGAN2's replacement for AdaIN), each followed by per-pixel
noise with a learned strength, a bias and leaky ReLU; RGB outputs of every resolution are
summed through bilinear upsampling ("skip" generator). Style mixing and truncation are
supported. Output is linear (no tanh), as in StyleGAN; images are clamped when saved.

Discriminator: residual, equalised learning rate, activations blurred with a [1, 3, 3, 1]
filter before every downsampling (as in StyleGAN's discriminator), minibatch standard
deviation, then conv + two dense layers → ``(B, 1)`` logits.

The paper trains StyleGAN with the non-saturating loss and R1 regularisation (see
:mod:`dehaze.gan.training`); progressive growing is not implemented (fixed resolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.gan.base import Discriminator, Generator

__all__ = ["StyleGANGenerator", "StyleGANDiscriminator", "MappingNetwork", "ModulatedConv2d"]

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * _SQRT2  # gain keeps the activation variance


def _check_resolution(resolution: int) -> int:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"StyleGAN resolution must be a power of two >= 8, got {resolution}")
    return int(math.log2(resolution))


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(y) if self.act else y


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(cin * k * k), stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class Blur(nn.Module):
    """Depthwise [1, 3, 3, 1]⊗[1, 3, 3, 1] low-pass filter with explicit padding and stride."""

    def __init__(self, pad: int, stride: int = 1):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = k[:, None] * k[None, :]
        self.register_buffer("kernel", (k / k.sum())[None, None], persistent=False)
        self.pad, self.stride = pad, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad,) * 4)
        return F.conv2d(x, self.kernel.expand(c, 1, 4, 4), stride=self.stride, groups=c)


class MappingNetwork(nn.Module):
    """z → w: pixel normalisation and an MLP of equalised-LR layers (lr multiplier 0.01).

    Example:
        >>> MappingNetwork(16, 8, n_layers=2)(torch.randn(3, 16)).shape
        torch.Size([3, 8])
    """

    def __init__(self, z_dim: int, w_dim: int, n_layers: int = 4, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * n_layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims, dims[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
        return self.net(z)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by a style of w (and optionally demodulated).

    Example:
        >>> conv = ModulatedConv2d(4, 6, 3, w_dim=8, upsample=True)
        >>> conv(torch.randn(2, 4, 5, 5), torch.randn(2, 8)).shape
        torch.Size([2, 6, 10, 10])
    """

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)  # style; starts at identity scaling
        self.scale, self.k, self.demodulate, self.upsample = 1 / math.sqrt(cin * k * k), k, demodulate, upsample

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, cin, _, _ = x.shape
        style = self.affine(w)  # (B, cin)
        weight = self.scale * self.weight[None] * style[:, None, :, None, None]  # (B, cout, cin, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h, wd = x.shape[-2:]
        out = F.conv2d(x.reshape(1, b * cin, h, wd), weight.reshape(-1, cin, self.k, self.k),
                       padding=self.k // 2, groups=b)  # one grouped conv = a different kernel per sample
        return out.view(b, -1, h, wd)


class StyledLayer(nn.Module):
    """Modulated conv → per-pixel noise (learned strength) → bias → leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, w_dim, upsample=upsample)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + self.noise_strength * torch.randn(x.shape[0], 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1×1 modulated (not demodulated) convolution to RGB."""

    def __init__(self, cin: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class StyleGANGenerator(Generator):
    """Style-based generator at a fixed resolution.

    Args:
        resolution: output size (power of two >= 8).
        nz: latent size of z.
        w_dim: size of w (and of the styles' input).
        width: channels of every synthesis layer.
        mapping_layers: depth of the mapping MLP (StyleGAN: 8).
        w_avg_beta: decay of the running mean of w used for truncation.

    Example:
        >>> G = StyleGANGenerator(resolution=16, nz=8, w_dim=8, width=8, mapping_layers=2)
        >>> G(torch.randn(2, 8)).shape
        torch.Size([2, 3, 16, 16])
    """

    arch = "stylegan"

    def __init__(self, resolution: int = 32, nz: int = 128, w_dim: int = 256, width: int = 256,
                 mapping_layers: int = 4, w_avg_beta: float = 0.995):
        super().__init__()
        log_r = _check_resolution(resolution)
        self._remember(resolution=resolution, nz=nz, w_dim=w_dim, width=width, mapping_layers=mapping_layers,
                       w_avg_beta=w_avg_beta)
        self.nz, self.resolution, self.w_dim, self.w_avg_beta = nz, resolution, w_dim, w_avg_beta
        self.mapping = MappingNetwork(nz, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, width, 4, 4))
        self.layers = nn.ModuleList([StyledLayer(width, width, w_dim)])
        self.to_rgbs = nn.ModuleList([ToRGB(width, w_dim)])
        for _ in range(3, log_r + 1):  # 8×8 ... R×R
            self.layers.append(StyledLayer(width, width, w_dim, upsample=True))
            self.layers.append(StyledLayer(width, width, w_dim))
            self.to_rgbs.append(ToRGB(width, w_dim))
        self.num_ws = len(self.layers) + 1
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def ws(self, z: torch.Tensor, psi: float = 1.0, mixing: float = 0.0) -> torch.Tensor:
        """Per-layer w vectors ``(B, num_ws, w_dim)``: mapping, running mean, truncation, style mixing."""
        w = self.mapping(z)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().mean(0), 1 - self.w_avg_beta)
        if psi != 1.0:
            w = self.w_avg.lerp(w, psi)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if mixing > 0 and torch.rand(()) < mixing:  # second latent from a random layer on
            cut = int(torch.randint(1, self.num_ws, ()))
            ws[:, cut:] = self.mapping(torch.randn_like(z))[:, None]
        return ws

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[:, 0], noise_mode)
        rgb = self.to_rgbs[0](x, ws[:, 1])
        for i, to_rgb in enumerate(self.to_rgbs[1:]):
            a, b = 1 + 2 * i, 2 + 2 * i
            x = self.layers[a](x, ws[:, a], noise_mode)
            x = self.layers[b](x, ws[:, b], noise_mode)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x, ws[:, b + 1])
        return rgb

    def forward(self, z: torch.Tensor, psi: float = 1.0, mixing: float = 0.0,
                noise_mode: str = "random") -> torch.Tensor:
        self._check_z(z)
        if noise_mode not in ("random", "none"):
            raise ValueError(f"noise_mode must be 'random' or 'none', got {noise_mode!r}")
        return self.synthesis(self.ws(z, psi, mixing), noise_mode)


class _DBlock(nn.Module):
    """conv3×3 → lrelu → blur → conv3×3 stride 2 → lrelu, residual with a blurred 1×1 stride-2 skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualConv2d(cin, cin, 3, padding=1)
        self.blur = Blur(pad=2)
        self.conv2 = EqualConv2d(cin, cout, 3, stride=2)
        self.skip_blur = Blur(pad=1, stride=2)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _lrelu(self.conv2(self.blur(_lrelu(self.conv1(x)))))
        return (h + self.skip(self.skip_blur(x))) / _SQRT2


class StyleGANDiscriminator(Discriminator):
    """Residual discriminator with blurred downsampling and minibatch standard deviation.

    Example:
        >>> D = StyleGANDiscriminator(resolution=16, width=8)
        >>> D(torch.zeros(4, 3, 16, 16)).shape
        torch.Size([4, 1])
    """

    arch = "stylegan"

    def __init__(self, resolution: int = 32, width: int = 256, mbstd_group: int = 4):
        super().__init__()
        log_r = _check_resolution(resolution)
        self._remember(resolution=resolution, width=width, mbstd_group=mbstd_group)
        self.resolution, self.mbstd_group = resolution, mbstd_group
        self.from_rgb = EqualConv2d(3, width, 1)
        self.blocks = nn.Sequential(*[_DBlock(width, width) for _ in range(log_r - 2)])  # R → 4
        self.conv = EqualConv2d(width + 1, width, 3, padding=1)
        self.fc = EqualLinear(width * 16, width, act=True)
        self.out = EqualLinear(width, 1)

    def _mbstd(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = math.gcd(b, self.mbstd_group)  # group size must divide the batch
        y = x.reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        h = self.blocks(_lrelu(self.from_rgb(x)))
        h = _lrelu(self.conv(self._mbstd(h)))
        return self.out(self.fc(h.flatten(1)))
