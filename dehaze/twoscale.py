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

Where the photo is brighter than the estimated airlight (a sky) or darker than the haze allows, that
inversion leaves [0, 1]; :class:`Protection` (the model card's ``two_scale["protect"]``) raises t
there: Meng et al.'s boundary constraint from the working copy as a floor, and soft knees per pixel
towards black and white (docs/two-scale.md, "Clipping on real photos").

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
    "DEFAULT_PROTECTION",
    "DEFAULT_RADIUS",
    "DEFAULT_T_FLOOR",
    "DEFAULT_WORKING_SIZE",
    "MAX_STRENGTH",
    "NO_PROTECTION",
    "STRIP_ROWS",
    "Haze",
    "Protection",
    "apply_haze",
    "boundary_map",
    "boundary_transmission",
    "check_strength",
    "check_working_size",
    "filter_settings",
    "fit_haze",
    "grey",
    "protect_transmission",
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


@dataclass(frozen=True)
class Protection:
    """How the inversion keeps ``J`` within [0, 1] (docs/two-scale.md, "Clipping on real photos").

    The default, every part off, is the plain inversion ``J = (I − A) / max(t^strength, t_floor) + A``.

    Attributes:
        bound_radius: Meng et al.'s boundary constraint (ICCV 2013) on the working copy: the
            smallest t that keeps its ``J`` within ``bound_range`` (:func:`boundary_transmission`),
            closed (or dilated) over a ``2r + 1`` square (:func:`boundary_map`), upsampled
            bilinearly, is the least t at full size, after the guided filter and the strength. 0: off.
        bound_range: ``(C0, C1)`` of that constraint.
        bound_op: ``"close"`` (Meng's morphological closing: fills gaps, does not spread) or
            ``"dilate"`` (a max filter: spreads the constraint by ``bound_radius``).
        shadows: at full size, a soft knee of width ``shadows`` (in units of the airlight's distance
            to black) on the output's distance to black, applied through t, so dark detail is
            compressed towards black instead of cut at 0 (:func:`protect_transmission`); 0: off.
        highlights: the same towards white, in units of the airlight's distance to white; 0: off.

    Example:
        >>> Protection.from_settings({"protect": {"shadows": 0.1}}).shadows, Protection.from_settings({}).off
        (0.1, True)
    """

    bound_radius: int = 0
    bound_range: tuple[float, float] = (0.0, 1.0)
    bound_op: str = "close"
    shadows: float = 0.0
    highlights: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound_radius", int(self.bound_radius))
        object.__setattr__(self, "bound_range", (float(self.bound_range[0]), float(self.bound_range[1])))
        object.__setattr__(self, "shadows", float(self.shadows))
        object.__setattr__(self, "highlights", float(self.highlights))
        c0, c1 = self.bound_range
        if self.bound_radius < 0 or not 0.0 <= c0 < c1:
            raise ValueError(f"bound_radius must be >= 0 and 0 <= C0 < C1, got {self.bound_radius}, {self.bound_range}")
        if self.bound_op not in ("dilate", "close"):
            raise ValueError(f"bound_op must be 'dilate' or 'close', got {self.bound_op!r}")
        for name in ("shadows", "highlights"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def off(self) -> bool:
        """True: the plain inversion."""
        return not (self.bound_radius or self.shadows or self.highlights)

    @classmethod
    def from_settings(cls, two_scale: dict | None) -> Protection:
        """The ``protect`` entry of a card's ``two_scale`` settings; none (an older card): all off."""
        return cls(**((two_scale or {}).get("protect") or {}))

    def settings(self) -> dict:
        """The card's ``protect`` entry (JSON types)."""
        return {"bound_radius": self.bound_radius, "bound_range": list(self.bound_range),
                "bound_op": self.bound_op, "shadows": self.shadows, "highlights": self.highlights}


NO_PROTECTION = Protection()
# the measured setting (docs/two-scale.md, "Clipping on real photos"): the card's two_scale "protect"
DEFAULT_PROTECTION = Protection(bound_radius=3, bound_range=(0.0, 1.0), bound_op="close", shadows=0.05, highlights=0.3)


def _bound_terms(x: np.ndarray, A: np.ndarray, c0: float, c1: float) -> tuple[np.ndarray, np.ndarray]:
    """The two sides of :func:`boundary_transmission`, unclipped: towards C0 and towards C1."""
    lo = np.float32(1.0) / np.maximum(A - np.float32(c0), np.float32(1e-3))
    hi = np.float32(1.0) / np.maximum(np.float32(c1) - A, np.float32(1e-3))
    d = x - A
    return (d * -lo).max(axis=2), (d * hi).max(axis=2)


def boundary_transmission(image: np.ndarray, airlight, c0: float = 0.0, c1: float = 1.0) -> np.ndarray:
    """Meng et al.'s boundary constraint, per pixel: the smallest ``t`` in [0, 1] for which
    ``J = (I − A) / t + A`` stays within ``[C0, C1]`` in every channel,
    ``t_b = max_c max((A_c − I_c) / (A_c − C0), (I_c − A_c) / (C1 − A_c))``.

    Meng, Wang, Duan, Xiang, Pan, "Efficient image dehazing with boundary constraint and contextual
    regularization", ICCV 2013.

    Example:
        >>> boundary_transmission(np.array([[[0.9, 0.5, 0.45]]], np.float32), [0.8, 0.8, 0.9]).round(3).tolist()
        [[0.5]]
    """
    black, white = _bound_terms(to_float(image), np.asarray(airlight, np.float32).reshape(3), c0, c1)
    tb = np.maximum(black, white, out=black)
    return np.clip(tb, 0.0, 1.0, out=tb)


def boundary_map(small: np.ndarray, airlight, protect: Protection) -> np.ndarray | None:
    """:func:`boundary_transmission` of the working copy (``protect.bound_range``), closed (or dilated)
    over a ``2 · bound_radius + 1`` square: the floor of t; None when ``bound_radius`` is 0.

    Example:
        >>> small = np.full((8, 8, 3), 0.5, np.float32); small[4, 3] = small[4, 5] = 0.99
        >>> [round(float(v), 2) for v in boundary_map(small, [0.9] * 3, Protection(bound_radius=1))[4, 2:7]]
        [0.44, 0.9, 0.9, 0.9, 0.44]
        >>> [round(float(v), 2) for v in boundary_map(small, [0.9] * 3, Protection(bound_radius=1, bound_op="dilate"))[4, 1:8]]
        [0.44, 0.9, 0.9, 0.9, 0.9, 0.9, 0.44]
    """
    if not protect.bound_radius:
        return None
    tb = boundary_transmission(small, airlight, *protect.bound_range)
    side = 2 * protect.bound_radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    op = cv2.MORPH_CLOSE if protect.bound_op == "close" else cv2.MORPH_DILATE
    return cv2.morphologyEx(tb, op, kernel, borderType=cv2.BORDER_REPLICATE)


def _extreme(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, op) -> np.ndarray:
    """``op`` (np.minimum or np.maximum) over the channels of ``x_c · scale_c − shift_c``: (h, w) float32."""
    out = x[..., 0] * scale[0]
    out -= shift[0]
    for c in (1, 2):
        v = x[..., c] * scale[c]
        v -= shift[c]
        op(out, v, out=out)
    return out


def _knee(t: np.ndarray, tb: np.ndarray, mask: np.ndarray, width: float) -> None:
    """Raise ``t[mask]`` in place so that the output's distance to one boundary, ``q = 1 − t_b / t`` (in
    units of A's distance to it; < 0: beyond it), becomes ``g(q) = w² / (2w − q)``; ``mask`` holds
    the pixels with ``q < w`` and ``tb`` their ``t_b``."""
    w = np.float32(width)
    ts = t[mask]
    q = np.float32(1.0) - tb / ts
    g = (w * w) / (2 * w - q)
    raised = tb / (np.float32(1.0) - g)
    np.maximum(raised, ts, out=raised)
    t[mask] = np.minimum(raised, np.float32(1.0), out=raised)


def protect_transmission(x: np.ndarray, t: np.ndarray, A: np.ndarray, protect: Protection) -> np.ndarray:
    """The full-size part of :class:`Protection` on one strip: ``t`` (after strength and floor) raised in
    place where the output would come within a knee's width of black (``shadows``) or white
    (``highlights``), from the pixel ``x`` and ``t`` alone.

    With ``t_b`` the pixel's bound towards one boundary (:func:`boundary_transmission`, ``C0 = 0``,
    ``C1 = 1``), the inversion's output lies at ``q = 1 − t_b / t`` of A's distance from that boundary
    (``q < 0``: beyond it, clipped). Below the knee width w, t becomes ``t_b / (1 − g(q))`` with
    ``g(q) = w² / (2w − q)``: ``g = q`` with slope 1 at ``q = w``, ``g > 0`` for every q, so the output
    never reaches the boundary and keeps its order; t never falls (``g ≥ q``) and stays at most 1
    (where that would need more, the pixel is left as it is). The same t serves the three channels,
    so the output stays on the line from A through I (its hue from A's point of view).

    Example:
        >>> x = np.array([[[0.05, 0.3, 0.4]]], np.float32); A = np.full(3, 0.8, np.float32)
        >>> t = np.full((1, 1), 0.5, np.float32)
        >>> float(((x - A) / t + A).min()) < 0  # the plain inversion: below black
        True
        >>> t = protect_transmission(x, t, A, Protection(shadows=0.1))
        >>> 0 < float(((x - A) / t + A).min()) < 0.1 * 0.8
        True
    """
    one = np.float32(1.0)
    if protect.shadows:  # t_b = 1 − min_c I_c / A_c; q < w where t_b > (1 − w) t
        m = _extreme(x, one / np.maximum(A, np.float32(1e-3)), np.zeros(3, np.float32), np.minimum)
        mask = m < one - (one - np.float32(protect.shadows)) * t
        if mask.any():
            _knee(t, one - m[mask], mask, protect.shadows)
    if protect.highlights:  # t_b = max_c (I_c − A_c) / (1 − A_c)
        k = one / np.maximum(one - A, np.float32(1e-3))
        tb = _extreme(x, k, A * k, np.maximum)
        mask = tb > (one - np.float32(protect.highlights)) * t
        if mask.any():
            _knee(t, np.minimum(tb[mask], one), mask, protect.highlights)
    return t


def two_scale_settings(radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS, t_min: float = 0.05,
                       working_size: int = DEFAULT_WORKING_SIZE, t_floor: float = DEFAULT_T_FLOOR,
                       protect: Protection = DEFAULT_PROTECTION) -> dict:
    """A model card's ``two_scale`` entry: the working size and the guided filter (radius, eps in
    working-size pixels; ``t_min`` is the generator's), the inversion's floor, and the clipping
    protection (``protect``: :class:`Protection`; none when it is off).

    Example:
        >>> two_scale_settings(8, 1.0, t_min=0.05)["radius"], two_scale_settings()["protect"]["bound_radius"]
        (8, 3)
    """
    settings = {
        "working_size": int(working_size),
        "radius": int(radius),
        "eps": float(eps),
        "t_min": float(t_min),
        "t_floor": float(max(t_floor, t_min)),
        "about": "the network runs on the photo shrunk to working_size (long side); t comes to full "
        "size through a guided filter (radius in working-size pixels, eps) computed at the working "
        "size and applied at full size; J = (I - A) / max(t^strength, t_floor) + A",
    }
    if not protect.off:
        settings["protect"] = protect.settings()
        settings["about"] += (
            "; protect: at full size t is at least Meng et al.'s boundary constraint of the working "
            "copy (the least t keeping J within bound_range, bound_op over a 2 bound_radius + 1 square, "
            "upsampled), and soft knees of width shadows / highlights keep J off black / white: "
            "docs/two-scale.md"
        )
    return settings


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
        floor: None, or (h, w) float32 at the working size: the boundary constraint, the least t at
            full size (upsampled bilinearly: ``t = max((a·grey + b)^strength, floor)``).
    """

    a: np.ndarray
    b: np.ndarray
    airlight: np.ndarray
    size: tuple[int, int]
    t_min: float = 0.05
    floor: np.ndarray | None = None

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
    protect: Protection = NO_PROTECTION,
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
        protect: with a ``bound_radius``, Meng et al.'s boundary constraint (:func:`boundary_map`)
            becomes the haze's ``floor``, the least t at full size (after the filter: raising t
            before it would spread the constraint over the filter's windows); the default: none.
    """
    if small.ndim != 3 or t.shape != small.shape[:2]:
        raise ValueError(f"t {t.shape} must match the working copy {small.shape[:2]}")
    t = t.astype(np.float32, copy=False)
    A = np.asarray(airlight, np.float32).reshape(3)
    if radius:  # replicate borders: the same filter as dehaze.nets.unet.guided_upsample
        a, b = guided_coefficients(grey(small), t, radius, eps, border=cv2.BORDER_REPLICATE)
    else:
        a, b = np.zeros_like(t), t
    return Haze(a, b, A, (int(size[0]), int(size[1])), float(t_min), boundary_map(small, A, protect))


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
        maps = (haze.a, haze.b) if haze.floor is None else (haze.a, haze.b, haze.floor)
        self.maps = [m[:, c0] * (1 - cw) + m[:, c1] * cw for m in maps]
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


def transmission(haze: Haze, guide_rows: np.ndarray, y0: int, upsampler: _Upsampler | None = None,
                 strength: float = 1.0) -> np.ndarray:
    """t at full size for the rows ``y0 : y0 + len(guide_rows)``, from their grey level: ``a·grey + b``
    within ``[t_min, 1]``, to the power ``strength``, then at least the haze's ``floor`` (the
    boundary constraint holds for the t the inversion uses, whatever the strength).

    Example:
        >>> h = Haze(np.zeros((2, 2), np.float32), np.full((2, 2), 0.7, np.float32), np.ones(3, np.float32), (4, 4))
        >>> transmission(h, np.zeros((4, 4), np.float32), 0).tolist()[0]
        [0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071]
    """
    up = upsampler or _Upsampler(haze)
    a, b, *floor = up.rows(y0, y0 + guide_rows.shape[0])
    a *= guide_rows
    a += b
    np.clip(a, haze.t_min, 1.0, out=a)
    if strength != 1.0:
        cv2.pow(a, strength, dst=a)
    if floor:
        np.maximum(a, floor[0], out=a)
    return a


def apply_haze(
    image: np.ndarray,
    haze: Haze,
    strength: float = 1.0,
    t_floor: float | None = None,
    out: np.ndarray | None = None,
    rows: int = STRIP_ROWS,
    protect: Protection = NO_PROTECTION,
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
        protect: its ``shadows`` and ``highlights`` knees raise t per pixel where the output would
            come close to black or white (:func:`protect_transmission`); the default (and a haze
            without a ``floor``): the plain inversion.

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
    full_size = bool(protect.shadows or protect.highlights)
    for y0 in range(0, H, max(1, rows)):
        y1 = min(H, y0 + rows)
        x = to_float(image[y0:y1])
        if scale is None:
            x = x.copy()  # never change a float input in place
        t = transmission(haze, grey(x), y0, up, strength)
        np.maximum(t, floor, out=t)
        if full_size:
            protect_transmission(x, t, A, protect)
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
