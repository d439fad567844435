"""pix2pix U-Net generator (Isola et al. 2017) for image-to-image restoration."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from kornia.filters import box_blur

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("deconv", "bilinear")
HEADS = ("image", "asm")


def guided_upsample(t: torch.Tensor, image: torch.Tensor, guide: torch.Tensor, radius: int, eps: float = 1.0,
                    t_min: float = 0.0) -> torch.Tensor:
    """The fast guided filter (He and Sun 2015): t at ``guide``'s size, its edges following the guide's.

    The guided filter's linear coefficients ``a, b`` of t against ``image``'s grey level (channel
    mean) are computed at ``image``'s size (box filters with replicated borders), upsampled
    bilinearly and applied to ``guide``'s grey level: ``t = a·grey(guide) + b``. At equal sizes this
    is the guided filter itself. NumPy twin for inference: :func:`dehaze.twoscale.fit_haze` and
    :func:`dehaze.twoscale.apply_haze` (tested equal).

    Args:
        t: (B, 1, h, w) transmission at the working size.
        image: (B, 3, h, w) the working copy in [0, 1].
        guide: (B, 3, H, W) the full-size image in [0, 1] (H >= h, W >= w).
        radius: window radius at the working size (>= 1); 0: plain bilinear upsampling of t.
        eps: regulariser in squared grey levels.
        t_min: lower bound of the result.

    Example:
        >>> img = torch.rand(1, 3, 16, 16)
        >>> guided_upsample(torch.full((1, 1, 8, 8), 0.6), img[..., ::2, ::2], img, 2).sub(0.6).abs().max() < 1e-4
        tensor(True)
    """
    if image.dim() != 4 or image.shape[1] != 3 or guide.dim() != 4 or guide.shape[1] != 3:
        raise ValueError(f"image and guide: expected (B, 3, H, W), got {tuple(image.shape)} and {tuple(guide.shape)}")
    if t.dim() != 4 or t.shape[1] != 1 or t.shape[2:] != image.shape[2:] or t.shape[0] != image.shape[0]:
        raise ValueError(f"t: expected (B, 1, H, W) matching the image {tuple(image.shape)}, got {tuple(t.shape)}")
    if radius < 0 or eps <= 0:
        raise ValueError(f"radius must be >= 0 and eps > 0, got {radius} and {eps}")
    if radius:
        k = 2 * radius + 1

        def box(x: torch.Tensor) -> torch.Tensor:
            return box_blur(x, (k, k), border_type="replicate", separable=True)

        g = image.mean(dim=1, keepdim=True)
        mean_g, mean_t = box(g), box(t)
        a = (box(g * t) - mean_g * mean_t) / (box(g * g) - mean_g * mean_g + eps)
        a, b = box(a), box(mean_t - a * mean_g)
    else:
        a, b = torch.zeros_like(t), t
    size = guide.shape[-2:]
    if size != t.shape[-2:]:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    return (a * guide.mean(dim=1, keepdim=True) + b).clamp(t_min, 1.0)


class GuidedUpsample(nn.Module):
    """:func:`guided_upsample` as a module: the guided filter that brings an ``asm`` head's raw t
    (:meth:`UNetGenerator.haze`) to the guide's size, edges following the guide's. It has no weights;
    two-scale inference runs its NumPy twin outside the exported graph (:mod:`dehaze.twoscale`).

    Args:
        radius: window radius at the working size (>= 0; 0: plain bilinear upsampling of t).
        eps: regulariser in squared grey levels (> 0).
        t_min: lower bound of the result.

    Example:
        >>> G = UNetGenerator(width=4, depth=3, head="asm").eval()
        >>> x = torch.rand(1, 3, 32, 48) * 2 - 1
        >>> t, A = G.haze(x)
        >>> image = (x + 1) / 2
        >>> t = GuidedUpsample(radius=4, eps=0.01, t_min=G.t_min)(t, image, image)
        >>> invert_scattering(image, t, A).shape
        torch.Size([1, 3, 32, 48])
    """

    def __init__(self, radius: int, eps: float = 1.0, t_min: float = 0.0):
        super().__init__()
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"radius must be a whole number of pixels >= 0, got {radius!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.radius, self.eps, self.t_min = radius, float(eps), float(t_min)

    def forward(self, t: torch.Tensor, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return guided_upsample(t, image, guide, self.radius, self.eps, self.t_min)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, eps={self.eps:g}, t_min={self.t_min:g}"


def invert_scattering(image: torch.Tensor, t: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The clear image J = (I − A)/t + A in [0, 1], inverting I = J·t + A·(1 − t) for ``image`` I
    (B, 3, H, W) in [0, 1], transmission t (B, 1, H, W) and airlight A (B, 3, 1, 1)."""
    return ((image - A) / t + A).clamp(0, 1)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch`` | ``instance`` | ``none`` normalisation for ``channels`` feature maps."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad ``x (B, C, H, W)`` on the bottom/right to multiples of ``multiple``.

    Returns:
        The padded tensor and the original ``H``, ``W`` (to crop back).

    Example:
        >>> y, h, w = pad_to_multiple(torch.zeros(1, 3, 30, 17), 16)
        >>> tuple(y.shape), h, w
        ((1, 3, 32, 32), 30, 17)
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, mode: str):
        super().__init__()
        if mode == "deconv":
            self.op = nn.ConvTranspose2d(cin, cout, 4, 2, 1)
        elif mode == "bilinear":
            # resize-convolution: avoids the checkerboard artefacts of transposed convolutions
            self.op = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(cin, cout, 3, 1, 1))
        else:
            raise ValueError(f"unknown upsample {mode!r}; choose one of {UPSAMPLES}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``depth`` stride-2 4×4 convolutions down, mirrored up, skip connections.

    Any ``H × W`` is accepted: the input is replicate-padded to a multiple of
    ``2 ** depth`` and the output cropped back, so the output has the input's size.

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: output channels.
        width: channels after the first layer (pix2pix ``ngf``).
        depth: number of down-sampling levels; the input multiple is ``2 ** depth``.
        max_width: channel cap for the deeper levels (pix2pix: ``8 * ngf``).
        norm: ``batch`` (pix2pix), ``instance`` or ``none``.
        dropout: dropout in the three innermost decoder levels (pix2pix: 0.5).
        upsample: ``deconv`` (pix2pix transposed convolution) or ``bilinear`` (resize-conv).
        residual: predict a correction added to the input instead of the image itself.
        head: ``image`` (pix2pix: the clear image through tanh) or ``asm`` (atmospheric scattering
            model: the network predicts a transmission map t ∈ [t_min, 1] per pixel and a global
            airlight A ∈ [0.5, 1]³ from its bottleneck, and the output is J = (I − A)/t + A, the
            inverse of I = J·t + A·(1 − t)). Initialised near t = 0.9, i.e. almost identity.
        t_min: lower bound of the transmission for the ``asm`` head (limits noise amplification).

    Example:
        >>> G = UNetGenerator(width=8, depth=3)
        >>> G(torch.zeros(1, 3, 30, 45)).shape
        torch.Size([1, 3, 30, 45])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64, depth: int = 5,
                 max_width: int = 512, norm: str = "batch", dropout: float = 0.0,
                 upsample: str = "deconv", residual: bool = False, head: str = "image", t_min: float = 0.05):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
        if (residual or head == "asm") and in_channels != out_channels:
            raise ValueError("residual=True and head='asm' need in_channels == out_channels")
        if head == "asm" and residual:
            raise ValueError("head='asm' already predicts from the input; use residual=False")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=width, depth=depth,
                           max_width=max_width, norm=norm, dropout=dropout, upsample=upsample,
                           residual=residual, head=head, t_min=t_min)
        self.head = head
        self.multiple = 2 ** depth
        self.residual = residual
        self.t_min = float(t_min)
        ch = [min(width * 2 ** i, max_width) for i in range(depth)]  # channels after each down level

        self.down = nn.ModuleList()
        for i in range(depth):
            cin = in_channels if i == 0 else ch[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(cin, ch[i], 4, 2, 1, bias=(norm != "batch" or i in (0, depth - 1))))
            if 0 < i < depth - 1:  # pix2pix: no norm on the outermost and innermost layers
                layers.append(norm_layer(norm, ch[i]))
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            cin = ch[i] if i == depth - 1 else ch[i] * 2  # innermost has no skip yet
            cout = (1 if head == "asm" else out_channels) if i == 0 else ch[i - 1]
            layers = [nn.ReLU(), _Up(cin, cout, upsample)]
            if i > 0:
                layers.append(norm_layer(norm, cout))
                if dropout > 0 and i >= depth - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        if head == "asm":
            self.airlight = nn.Linear(ch[-1], out_channels)  # global A from the mean-pooled bottleneck
            nn.init.zeros_(self.airlight.weight)
            nn.init.constant_(self.airlight.bias, 1.1)  # A = 0.5 + 0.5·σ(1.1) ≈ 0.87
            last = self.up[-1][1]
            conv = last.op if isinstance(last.op, nn.Conv2d | nn.ConvTranspose2d) else last.op[1]
            nn.init.constant_(conv.bias, 2.2)  # σ(2.2) ≈ 0.9: start close to the identity

    def _asm(self, x: torch.Tensor, airlight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``asm`` head: (image in [0, 1], raw t, A (B, 3, 1, 1)) at the input's size."""
        xp, h, w = pad_to_multiple(x, self.multiple)
        y, bottleneck = self._unet(xp)
        t = self.t_min + (1 - self.t_min) * torch.sigmoid(y)
        A = 0.5 + 0.5 * torch.sigmoid(self.airlight(bottleneck.mean(dim=(2, 3))))[..., None, None]
        if airlight is not None:
            given = airlight.to(A.dtype).reshape(A.shape)
            A = torch.where(given >= 0, given, A)
        return (x + 1) / 2, t[..., :h, :w], A

    def _unet(self, xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder-decoder on a padded input: (last decoder output, bottleneck)."""
        skips = []
        y = xp
        for layer in self.down:
            y = layer(y)
            skips.append(y)
        skips.pop()  # the innermost output is the decoder's input, not a skip
        bottleneck = y
        for j, layer in enumerate(self.up):
            if j > 0:
                y = torch.cat([y, skips.pop()], dim=1)
            y = layer(y)
        return y, bottleneck

    def haze(self, x: torch.Tensor, airlight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``asm`` head: the network's raw transmission t (B, 1, H, W) and airlight A (B, 3, 1, 1) for ``x``
        in [-1, 1], before any guided filter (:class:`GuidedUpsample`): what two-scale inference runs
        on the working copy.

        Example:
            >>> G = UNetGenerator(width=8, depth=3, head="asm")
            >>> [tuple(v.shape) for v in G.haze(torch.zeros(1, 3, 20, 30))]
            [(1, 1, 20, 30), (1, 3, 1, 1)]
        """
        if self.head != "asm":
            raise ValueError("haze() needs head='asm'")
        self._check_input(x)
        _, t, A = self._asm(x, airlight)
        return t, A

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"expected (B, {self.config['in_channels']}, H, W), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, return_asm: bool = False, airlight: torch.Tensor | None = None):
        """The restored image in [-1, 1].

        ``asm`` head only: ``return_asm`` also returns ``t`` (B, 1, H, W) and ``A`` (B, 3, 1, 1), both
        in [0, 1] (for supervising the decomposition); ``airlight`` (B, 3) replaces the estimated A
        where it is >= 0. t is the network's raw t (no guided filter: :class:`GuidedUpsample` is
        composed outside, as two-scale inference does).
        """
        if (return_asm or airlight is not None) and self.head != "asm":
            raise ValueError("return_asm and airlight need head='asm'")
        self._check_input(x)
        if self.head == "asm":
            image, t, A = self._asm(x, airlight)
            y = invert_scattering(image, t, A) * 2 - 1
            return (y, t, A) if return_asm else y
        xp, h, w = pad_to_multiple(x, self.multiple)
        y, _ = self._unet(xp)
        y = (xp + y).clamp(-1, 1) if self.residual else torch.tanh(y)
        return y[..., :h, :w]

