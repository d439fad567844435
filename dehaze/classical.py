"""Dark channel prior dehazing (He, Sun and Tang, CVPR 2009 / TPAMI 2011) with guided-filter refinement.

The classical baseline every learned model here must beat. With the atmospheric scattering
model ``I = J * t + A * (1 - t)``: the dark channel of a haze-free outdoor photo is close to
zero, so ``t = 1 - omega * dark(I / A)``; ``A`` comes from the brightest dark-channel pixels;
``t`` is refined with the guided filter (He, Sun and Tang, ECCV 2010) on the grey image and
``J = (I - A) / max(t, t0) + A``. Everything is vectorised with OpenCV and NumPy.

Arrays are HxWx3 float32 RGB in [0, 1], as everywhere at the I/O boundary.

Example:
    >>> import numpy as np
    >>> hazy = np.random.default_rng(0).random((64, 80, 3), dtype=np.float32)
    >>> dehaze_dcp(hazy).shape
    (64, 80, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DarkChannelPrior",
    "dark_channel",
    "dehaze_dcp",
    "estimate_atmospheric_light",
    "estimate_transmission",
    "guided_coefficients",
    "guided_filter",
]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _check_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"{name} must be an HxWx3 array, got {shape}")
    return rgb.astype(np.float32, copy=False)


def dark_channel(rgb: np.ndarray, patch: int = 15) -> np.ndarray:
    """Dark channel: the minimum over colour channels and a ``patch`` x ``patch`` window.

    Args:
        rgb: HxWx3 float array.
        patch: window side in pixels (odd; 15 in the paper).

    Returns:
        HxW float32.

    Example:
        >>> dark_channel(np.ones((8, 8, 3), np.float32), patch=3).shape
        (8, 8)
    """
    rgb = _check_rgb(rgb)
    if patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    # erosion = minimum filter; the default border ignores pixels outside the image
    return cv2.erode(rgb.min(axis=2), kernel)


def estimate_atmospheric_light(rgb: np.ndarray, dark: np.ndarray, top: float = 0.001) -> np.ndarray:
    """Atmospheric light A: among the ``top`` fraction of pixels with the brightest dark channel,
    the colour of the one with the highest intensity in the input (as in the paper).

    Args:
        rgb: HxWx3 hazy image in [0, 1].
        dark: its HxW dark channel.
        top: fraction of pixels to consider (0.001 = the brightest 0.1%).

    Returns:
        A, float32 array of shape (3,).

    Example:
        >>> img = np.zeros((10, 10, 3), np.float32); img[0, 0] = 0.9
        >>> estimate_atmospheric_light(img, dark_channel(img, 1)).tolist()
        [0.8999999761581421, 0.8999999761581421, 0.8999999761581421]
    """
    rgb = _check_rgb(rgb)
    if dark.shape != rgb.shape[:2]:
        raise ValueError(f"dark must be HxW = {rgb.shape[:2]}, got {dark.shape}")
    flat = rgb.reshape(-1, 3)
    n = max(1, int(round(dark.size * top)))
    idx = np.argpartition(dark.ravel(), -n)[-n:]  # the n brightest dark-channel pixels
    best = idx[np.argmax(flat[idx].sum(axis=1))]
    return flat[best].astype(np.float32)


def estimate_transmission(rgb: np.ndarray, A: np.ndarray, patch: int = 15, omega: float = 0.95) -> np.ndarray:
    """Coarse transmission ``t = 1 - omega * dark(I / A)`` (HxW float32).

    Example:
        >>> estimate_transmission(np.full((4, 4, 3), 0.5, np.float32), np.ones(3, np.float32), 3)[0, 0]
        np.float32(0.525)
    """
    rgb = _check_rgb(rgb)
    A = np.maximum(np.asarray(A, np.float32).reshape(1, 1, 3), 1e-6)
    return 1.0 - omega * dark_channel(rgb / A, patch)


def guided_coefficients(
    guide: np.ndarray, src: np.ndarray, radius: int, eps: float, border: int = cv2.BORDER_REFLECT
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's smoothed linear coefficients: the filtered image is ``a * guide + b``.

    He, Sun and Tang (ECCV 2010), with a grey guide. Because ``a`` and ``b`` are smooth, they can be
    computed on a shrunken copy and upsampled, then applied to the full-size guide: the "fast guided
    filter" (He and Sun 2015) that :mod:`dehaze.twoscale` uses to bring t to full size.

    Args:
        guide: HxW guide image in [0, 1].
        src: HxW or HxWxC image to filter.
        radius: window radius r (window side 2r + 1).
        eps: regularisation; larger smooths more across edges.
        border: OpenCV border mode of the box filters.

    Returns:
        ``(a, b)``, float32 arrays the shape of ``src``.

    Example:
        >>> g = np.random.default_rng(0).random((16, 16), dtype=np.float32)
        >>> a, b = guided_coefficients(g, g, radius=2, eps=1e-6)
        >>> bool(np.abs(a * g + b - g).max() < 0.05)  # the guide filtered by itself stays itself
        True
    """
    if guide.ndim != 2:
        raise ValueError(f"guide must be an HxW grey image, got shape {guide.shape}")
    if src.shape[:2] != guide.shape:
        raise ValueError(f"src must have the guide's size {guide.shape}, got {src.shape}")
    if radius < 1 or not eps > 0:
        raise ValueError(f"radius must be >= 1 and eps > 0, got {radius} and {eps}")
    g = guide.astype(np.float32, copy=False)
    p = src.astype(np.float32, copy=False)
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:  # mean over the window
        return cv2.boxFilter(x, -1, ksize, normalize=True, borderType=border)

    mean_g = box(g)
    var_g = box(g * g) - mean_g * mean_g
    if p.ndim == 3:  # one grey guide for every channel of src
        g, mean_g, var_g = g[..., None], mean_g[..., None], var_g[..., None]
    mean_p = box(p)
    a = (box(g * p) - mean_g * mean_p) / (var_g + np.float32(eps))
    b = mean_p - a * mean_g
    return box(a), box(b)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = 60, eps: float = 1e-3) -> np.ndarray:
    """Edge-preserving guided filter (He, Sun and Tang, ECCV 2010) with a grey guide, O(1) per pixel.

    Args:
        guide: HxW guide image (e.g. the grey hazy image) in [0, 1].
        src: HxW or HxWxC image to filter.
        radius: window radius r (window side 2r + 1).
        eps: regularisation; larger smooths more across edges.

    Returns:
        float32 array the shape of ``src``.

    Example:
        >>> g = np.random.default_rng(0).random((32, 32), dtype=np.float32)
        >>> guided_filter(g, g, radius=4, eps=1e-6).shape
        (32, 32)
    """
    a, b = guided_coefficients(guide, src, radius, eps)
    g = guide.astype(np.float32, copy=False)
    return a * (g[..., None] if a.ndim == 3 else g) + b


def dehaze_dcp(
    rgb: np.ndarray,
    patch: int = 15,
    omega: float = 0.95,
    t0: float = 0.1,
    top: float = 0.001,
    radius: int = 60,
    eps: float = 1e-3,
) -> np.ndarray:
    """Dehaze one image with the dark channel prior and guided-filter refinement.

    Args:
        rgb: HxWx3 float32 RGB in [0, 1].
        patch: dark-channel window (15).
        omega: fraction of haze removed (0.95 keeps a little for depth perception).
        t0: lower bound of the transmission (0.1).
        top: fraction of brightest dark-channel pixels searched for A (0.1%).
        radius: guided-filter radius (60).
        eps: guided-filter regularisation (1e-3).

    Returns:
        HxWx3 float32 in [0, 1].

    Example:
        >>> out = dehaze_dcp(np.full((32, 32, 3), 0.6, np.float32), patch=5, radius=8)
        >>> out.shape, out.dtype
        ((32, 32, 3), dtype('float32'))
    """
    rgb = _check_rgb(rgb)
    dark = dark_channel(rgb, patch)
    A = estimate_atmospheric_light(rgb, dark, top)
    t = estimate_transmission(rgb, A, patch, omega)
    t = guided_filter(rgb @ _LUMA, t, radius, eps)
    t = np.maximum(t, t0)[..., None]
    out = (rgb - A) / t + A
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


@dataclass
class DarkChannelPrior:
    """:func:`dehaze_dcp` with fixed parameters, callable like a model (``"dcp"`` in the CLI).

    Example:
        >>> DarkChannelPrior(patch=5, radius=8)(np.full((16, 16, 3), 0.7, np.float32)).shape
        (16, 16, 3)
    """

    patch: int = 15
    omega: float = 0.95
    t0: float = 0.1
    top: float = 0.001
    radius: int = 60
    eps: float = 1e-3
    name: str = "dcp"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return dehaze_dcp(rgb, self.patch, self.omega, self.t0, self.top, self.radius, self.eps)
