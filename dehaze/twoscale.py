"""Two-scale dehazing: estimate the haze on the whole scene at a working size, apply it at full size.

Haze belongs to the scene, not to the pixels: the transmission t varies with depth and the
atmospheric light A is one colour, both smooth. So the network runs once on a copy of the photo
shrunk to a working size (a long side of 384 px by default: :data:`DEFAULT_WORKING_SIZE`), and predicts
t and A there. t reaches full size through the fast guided filter (He and Sun 2015; the idea of
Wu et al.'s Deep Guided Filter, CVPR 2018): the guided filter's linear coefficients ``a, b`` are
computed at the working size with the working copy's grey level as the guide, upsampled
bilinearly, and applied to the full-size grey level, ``t = a·grey + b``; t's edges then follow the
photo's edges at full resolution. The scattering model is inverted at full size,
``J = (I − A) / max(t^strength, t_floor) + A``.

The full-size part is per-pixel work only (the box filters run at the working size), so it runs in
horizontal strips: peak memory is the photo plus one strip, whatever the photo's size, and strips
give exactly the result of one pass. Integer images (uint8, uint16) are read and written strip by
strip without a float copy of the whole photo.

Example:
    >>> rng = np.random.default_rng(0)
    >>> photo = rng.random((300, 400, 3), dtype=np.float32)
    >>> small = shrink_to_fit(photo, 100)
    >>> haze = fit_haze(small, np.full(small.shape[:2], 0.5, np.float32), [0.9, 0.9, 0.9], photo.shape[:2], radius=4)
    >>> out = apply_haze(photo, haze)
    >>> bool(np.allclose(out, np.clip((photo - 0.9) / 0.5 + 0.9, 0, 1), atol=1e-4))
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dehaze.classical import guided_coefficients
from dehaze.io import PIXEL_SCALE, shrink_to_fit, to_float

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_RADIUS",
    "DEFAULT_T_FLOOR",
    "DEFAULT_WORKING_SIZE",
    "MAX_STRENGTH",
    "STRIP_ROWS",
    "Haze",
    "apply_haze",
    "check_strength",
    "check_working_size",
    "filter_settings",
    "fit_haze",
    "grey",
    "transmission",
    "two_scale_settings",
    "working_copy",
]

MAX_STRENGTH = 1.5
STRIP_ROWS = 256  # rows per strip at full size: ~25 MB of float work for a 12000-px-wide photo
# the measured defaults (docs/two-scale.md; benchmarks/bench_two_scale.py, bench_real_photos.py)
DEFAULT_WORKING_SIZE = 384  # long side of the copy the network sees
DEFAULT_RADIUS = 24  # guided filter on t: radius in working-size pixels
DEFAULT_EPS = 0.01  # and its regulariser in squared grey levels
DEFAULT_T_FLOOR = 0.1  # lower bound of t^strength in the inversion
WORKING_SIZES = (32, 4096)  # the range a working size may take


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1.5], else a ValueError that names the range.

    Example:
        >>> check_strength(0.5)
        0.5
    """
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a number in [0, {MAX_STRENGTH}], got {strength!r}") from None
    if not 0.0 <= s <= MAX_STRENGTH:  # also refuses nan
        raise ValueError(f"strength must be in [0, {MAX_STRENGTH}], got {strength!r}")
    return s


def check_working_size(side: int) -> int:
    """``side`` as an int in :data:`WORKING_SIZES`, else a ValueError that names the range.

    Example:
        >>> check_working_size(384)
        384
    """
    lo, hi = WORKING_SIZES
    if isinstance(side, bool) or not isinstance(side, int | np.integer) or not lo <= side <= hi:
        raise ValueError(f"working size must be in {lo}..{hi} pixels, got {side!r}")
    return int(side)


def filter_settings(weightless: dict | None = None, t_refine: int | None = None,
                    t_refine_eps: float | None = None) -> tuple[int, float]:
    """The guided filter on t, ``(radius, eps)``: ``t_refine`` / ``t_refine_eps`` when given, else an
    older checkpoint's (``meta["weightless"]`` of :func:`dehaze.nets.load_generator`), else the
    measured defaults :data:`DEFAULT_RADIUS`, :data:`DEFAULT_EPS`.

    Example:
        >>> filter_settings({"t_refine": 8, "t_refine_eps": 1.0}), filter_settings({}, t_refine=0)
        ((8, 1.0), (0, 0.01))
    """
    weightless = weightless or {}
    radius = t_refine if t_refine is not None else weightless.get("t_refine", DEFAULT_RADIUS)
    eps = t_refine_eps if t_refine_eps is not None else weightless.get("t_refine_eps", DEFAULT_EPS)
    return radius, eps


def two_scale_settings(radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS, t_min: float = 0.05,
                       working_size: int = DEFAULT_WORKING_SIZE, t_floor: float = DEFAULT_T_FLOOR) -> dict:
    """A model card's ``two_scale`` entry: the working size and the guided filter (radius, eps in
    working-size pixels; ``t_min`` is the generator's).

    Example:
        >>> two_scale_settings(8, 1.0, t_min=0.05)["radius"]
        8
    """
    return {
        "working_size": int(working_size),
        "radius": int(radius),
        "eps": float(eps),
        "t_min": float(t_min),
        "t_floor": float(max(t_floor, t_min)),
        "about": "the network runs on the photo shrunk to working_size (long side); t comes to full "
        "size through a guided filter (radius in working-size pixels, eps) computed at the working "
        "size and applied at full size; J = (I - A) / max(t^strength, t_floor) + A",
    }


def grey(image: np.ndarray) -> np.ndarray:
    """The guide: the mean of the RGB channels (HxWx3 -> HxW float32), as the network's filter uses.

    Example:
        >>> grey(np.ones((2, 2, 3), np.uint8) * 255).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    x = to_float(image)
    return (x[..., 0] + x[..., 1] + x[..., 2]) * np.float32(1.0 / 3.0)


def working_copy(image: np.ndarray, side: int) -> np.ndarray:
    """The photo shrunk (area averaging) so its long side is at most ``side``, as float32 in [0, 1].

    Example:
        >>> working_copy(np.zeros((1000, 2000, 3), np.uint8), 512).shape
        (256, 512, 3)
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    return to_float(shrink_to_fit(image, side))


@dataclass
class Haze:
    """The haze of one photo, estimated at the working size, ready to apply at full size.

    Attributes:
        a, b: (h, w) float32 guided-filter coefficients at the working size: ``t = a·grey + b``.
        airlight: (3,) float32 RGB atmospheric light in [0, 1].
        size: (H, W) of the full-size photo it applies to.
        t_min: lower bound of t (the network's), before ``strength``.
    """

    a: np.ndarray
    b: np.ndarray
    airlight: np.ndarray
    size: tuple[int, int]
    t_min: float = 0.05

    @property
    def working_size(self) -> tuple[int, int]:
        return self.a.shape[0], self.a.shape[1]


def fit_haze(
    small: np.ndarray,
    t: np.ndarray,
    airlight,
    size: tuple[int, int],
    radius: int = 8,
    eps: float = 1.0,
    t_min: float = 0.05,
) -> Haze:
    """The guided filter's coefficients of ``t`` at the working size, guided by the working copy.

    Args:
        small: (h, w, 3) working copy in [0, 1] (the network's input).
        t: (h, w) transmission the network predicted on it.
        airlight: (3,) atmospheric light.
        size: (H, W) of the full-size photo.
        radius: guided filter radius at the working size; 0: no filter, t is upsampled bilinearly.
        eps: the filter's regulariser in squared grey levels (1: close to a plain smoothing of t).
        t_min: lower bound of t.
    """
    if small.ndim != 3 or t.shape != small.shape[:2]:
        raise ValueError(f"t {t.shape} must match the working copy {small.shape[:2]}")
    t = t.astype(np.float32, copy=False)
    if radius:  # replicate borders: the same filter as dehaze.nets.unet.guided_upsample
        a, b = guided_coefficients(grey(small), t, radius, eps, border=cv2.BORDER_REPLICATE)
    else:
        a, b = np.zeros_like(t), t
    A = np.asarray(airlight, np.float32).reshape(3)
    return Haze(a, b, A, (int(size[0]), int(size[1])), float(t_min))


def _interp(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling of ``n_in`` samples to ``n_out`` (pixel centres aligned, borders clamped,
    as OpenCV's INTER_LINEAR and torch's ``align_corners=False``): indices i0, i1 and weight of i1."""
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = np.clip(s, 0.0, n_in - 1)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (s - i0).astype(np.float32)


class _Upsampler:
    """Bilinear upsampling of the coefficient maps to full size, one band of rows at a time."""

    def __init__(self, haze: Haze):
        H, W = haze.size
        h, w = haze.working_size
        c0, c1, cw = _interp(W, w)
        # columns first, once, at the working height: (h, W) per map
        self.maps = [m[:, c0] * (1 - cw) + m[:, c1] * cw for m in (haze.a, haze.b)]
        self.r0, self.r1, self.rw = _interp(H, h)

    def rows(self, y0: int, y1: int) -> list[np.ndarray]:
        w = self.rw[y0:y1, None]
        out = []
        for m in self.maps:
            band = m[self.r0[y0:y1]]
            band *= 1 - w
            band += m[self.r1[y0:y1]] * w
            out.append(band)
        return out


def transmission(haze: Haze, guide_rows: np.ndarray, y0: int, upsampler: _Upsampler | None = None) -> np.ndarray:
    """t at full size for the rows ``y0 : y0 + len(guide_rows)``, from their grey level.

    Example:
        >>> h = Haze(np.zeros((2, 2), np.float32), np.full((2, 2), 0.7, np.float32), np.ones(3, np.float32), (4, 4))
        >>> transmission(h, np.zeros((4, 4), np.float32), 0).tolist()[0]
        [0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071]
    """
    up = upsampler or _Upsampler(haze)
    a, b = up.rows(y0, y0 + guide_rows.shape[0])
    a *= guide_rows
    a += b
    return np.clip(a, haze.t_min, 1.0, out=a)


def apply_haze(
    image: np.ndarray,
    haze: Haze,
    strength: float = 1.0,
    t_floor: float | None = None,
    out: np.ndarray | None = None,
    rows: int = STRIP_ROWS,
) -> np.ndarray:
    """Remove ``haze`` from the full-size ``image``: ``J = (I − A) / max(t^strength, t_floor) + A``.

    Args:
        image: (H, W, 3) float32 in [0, 1], or uint8/uint16 (then ``out`` has that type too).
        haze: from :func:`fit_haze`, for this photo's size.
        strength: in [0, 1.5]: 0 returns the photo, 1 removes the estimated haze, more removes more.
        t_floor: lower bound of t in the inversion (limits how much noise is amplified);
            None -> ``haze.t_min``.
        out: where to write (may be ``image`` itself: the work is done strip by strip).
        rows: rows per strip.

    Returns:
        ``out``: the restored photo, clipped to the valid range.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    H, W = image.shape[:2]
    if (H, W) != haze.size:
        raise ValueError(f"the haze was estimated for a {haze.size[1]}x{haze.size[0]} photo, not {W}x{H}")
    strength = check_strength(strength)
    if out is None:
        out = np.empty_like(image)
    elif out.shape != image.shape or out.dtype != image.dtype:
        raise ValueError(f"out must be {image.shape} {image.dtype}, got {out.shape} {out.dtype}")
    if strength == 0.0:  # exactly the photo (also for integer pixels)
        if out is not image:
            out[...] = image
        return out
    floor = np.float32(haze.t_min if t_floor is None else t_floor)
    A = haze.airlight.astype(np.float32)
    scale = PIXEL_SCALE.get(image.dtype)
    up = _Upsampler(haze)
    for y0 in range(0, H, max(1, rows)):
        y1 = min(H, y0 + rows)
        x = to_float(image[y0:y1])
        if scale is None:
            x = x.copy()  # never change a float input in place
        t = transmission(haze, grey(x), y0, up)
        if strength != 1.0:
            cv2.pow(t, strength, dst=t)
        np.maximum(t, floor, out=t)
        np.reciprocal(t, out=t)
        x -= A
        x *= t[..., None]
        x += A
        np.clip(x, 0.0, 1.0, out=x)
        if scale is None:
            out[y0:y1] = x
        else:
            x *= np.float32(scale)
            x += np.float32(0.5)
            out[y0:y1] = x.astype(out.dtype)
    return out
