"""No-reference scores of a restored photo: fog density (FADE), newly clipped pixels, brightness, noise.

For real hazy photos, which have no ground truth (``dehaze eval`` on a plain folder of photos,
:func:`dehaze.evaluation.evaluate_noref`). NumPy and OpenCV only (no torch, no scipy), so they run in
the base install. Every function takes HxWx3 RGB as float in ``[0, 1]`` (values outside are clipped)
or as uint8 / uint16 pixels, so a 20-megapixel photo is never held as floats whole.

- :func:`fade`: the Fog Aware Density Evaluator of Choi, You and Bovik, "Referenceless Prediction of
  Perceptual Fog Density and Perceptual Image Defogging", IEEE TIP 24(11), 2015 (lower = less fog).
  Twelve fog-aware features per 8x8 patch (:data:`FADE_FEATURES`), a multivariate Gaussian (MVG)
  fitted to the photo's patches, its Mahalanobis-like distances ``Df`` to a fog-free MVG and ``Dff``
  to a foggy MVG, and ``D = Df / (Dff + 1)``. The two model MVGs are **fitted here**
  (``training/fit_fade.py``: the training clean photos, and dense synthetic haze on them) and
  shipped in ``fade_model.json`` beside this file: the original MATLAB release's statistics (fitted on
  500 fog-free and 500 real foggy photos) are not used, so **absolute values differ from MATLAB
  FADE's**; compare methods with each other, on the same photos. FADE is computed on a copy whose
  long side is at most :data:`FADE_SIDE` pixels (the features are patch based, so they depend on
  the viewing scale: fixing it makes a 20 MP photo and its 1024-px copy score alike).
- :func:`newly_clipped`: the fraction of pixels clipped in the output but not in the input, to
  black (any channel <= 1/255) and to white (any channel >= 254/255).
- :func:`brightness_ratio`: mean luma (BT.601) of the output over that of the input.
- :func:`noise_amplification`: Immerkær's fast noise estimate on the luma, over the pixels that
  are flat in the input (the :data:`FLAT_FRACTION` with the lowest smoothed gradient: sky, fog),
  output over input.

The last three run at full size, in strips of :data:`STRIP_ROWS` rows.

Example:
    >>> rng = np.random.default_rng(0)
    >>> clear = rng.random((96, 128, 3)).astype(np.float32)
    >>> fade(clear) < fade(0.3 * clear + 0.7 * 0.9)  # fog raises the density
    True
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dehaze.errors import InputError
from dehaze.io import PIXEL_SCALE, shrink_to_fit

__all__ = [
    "FADE_FEATURES",
    "FADE_MODEL_FILE",
    "FADE_PATCH",
    "FADE_SIDE",
    "FLAT_FRACTION",
    "STRIP_ROWS",
    "FadeModel",
    "brightness_ratio",
    "fade",
    "fade_details",
    "fade_features",
    "fade_working_copy",
    "fit_mvg",
    "load_fade_model",
    "mvg_distance",
    "newly_clipped",
    "noise_amplification",
]

FADE_SIDE = 1024  # long side (px) of the copy FADE is computed on; smaller photos are used as they are
FADE_PATCH = 8  # patch side (px), as the paper
FADE_MIN_SIDE = 32  # smallest working copy: 4x4 patches
FADE_MODEL_FILE = Path(__file__).with_name("fade_model.json")
# the 12 fog-aware features, in the MATLAB release's order (all as log(1 + f))
FADE_FEATURES = (
    "mscn_variance",  # f1: variance of the MSCN coefficients
    "mscn_vertical_positive_variance",  # f2: variance of the non-negative vertical MSCN products
    "mscn_vertical_negative_variance",  # f3: variance of the non-positive vertical MSCN products
    "sharpness",  # f4: mean local standard deviation sigma (7x7 Gaussian window, grey levels)
    "coefficient_of_variation",  # f5: mean sigma / mu (normalised dispersion)
    "contrast_energy_grey",  # f6: perceived contrast energy, grey
    "contrast_energy_yb",  # f7: ... yellow-blue
    "contrast_energy_rg",  # f8: ... red-green
    "entropy",  # f9: entropy (bits) of the 8-bit grey levels
    "dark_channel",  # f10: mean pixel-wise dark channel min(R, G, B) in [0, 1]
    "saturation",  # f11: mean HSV saturation
    "colourfulness",  # f12: Hasler and Süsstrunk's colourfulness of the rg / yb opponent channels
)
_GREY = (0.2989, 0.5870, 0.1140)  # MATLAB's rgb2gray, as the MATLAB FADE
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 (dehaze.io), for brightness and noise
# contrast energy (Groen et al.'s parameters, as the MATLAB release): LoG-like 1-D filter of sigma 3.25 px,
# semisaturation 0.1, noise thresholds per channel (grey, yb, rg) on the 0..255 scale
_CE_SIGMA = 3.25
_CE_SEMISATURATION = 0.1
_CE_THRESHOLDS = (9.225496406318721e-4 * 255, 8.969246659629488e-4 * 255, 2.069284034165411e-4 * 255)

BLACK = 1 / 255  # a channel at or below this is clipped to black
WHITE = 254 / 255  # a channel at or above this is clipped to white
FLAT_FRACTION = 0.3  # the share of pixels, least textured in the input, that the noise is measured on
STRIP_ROWS = 256  # rows per strip of the full-size scores
NOISE_FLOOR = 0.1 / 255  # smallest noise level (luma, [0, 1]) divided by: 0.1 grey level
_FLAT_SIGMA = 2.0  # Gaussian blur (px) before the gradient that decides flatness
_HALO = 16  # rows above and below a strip for the blur, gradient and noise kernels
_GRAD_BINS = 65536  # histogram of gradient magnitudes: the flat threshold's resolution
_GRAD_MAX = 8.0  # Sobel magnitude of a [0, 1] image is below 4 * sqrt(2)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_FLOAT_EPS = 1e-6  # float outputs: a value within this of a clipping level counts as clipped


# ----------------------------------------------------------------------------- pixels


def _check_rgb(rgb: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB {what}, got {getattr(rgb, 'shape', type(rgb).__name__)}")
    return rgb


def _check_pair(inp: np.ndarray, out: np.ndarray) -> None:
    _check_rgb(inp, "input")
    _check_rgb(out, "output")
    if inp.shape != out.shape:
        raise ValueError(f"input {inp.shape} and output {out.shape} differ in size")


def _float01(rgb: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: integers scaled by their white, floats clipped (a view is never modified)."""
    scale = PIXEL_SCALE.get(rgb.dtype)
    if scale is not None:
        return rgb.astype(np.float32) / np.float32(scale)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)


def _strips(h: int, rows: int, halo: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """``(a, b, lo, hi)`` per strip: core rows ``[a, b)``, read with a halo as rows ``[lo, hi)``.

    Example:
        >>> list(_strips(5, 2, halo=1))
        [(0, 2, 0, 3), (2, 4, 1, 5), (4, 5, 3, 5)]
    """
    if rows < 1:
        raise ValueError(f"strip rows must be positive, got {rows}")
    for a in range(0, h, rows):
        b = min(a + rows, h)
        yield a, b, max(0, a - halo), min(h, b + halo)


# ----------------------------------------------------------------------------- FADE: features


def fade_working_copy(rgb: np.ndarray, side: int = FADE_SIDE) -> np.ndarray:
    """The copy FADE looks at: long side at most ``side`` (area averaging), cropped to whole 8x8 patches,
    float64 on the 0..255 scale (the MATLAB release's).

    Raises:
        InputError: the copy is smaller than 32x32 pixels.

    Example:
        >>> fade_working_copy(np.zeros((3000, 2000, 3), np.uint8)).shape
        (1024, 680, 3)
    """
    _check_rgb(rgb)
    small = shrink_to_fit(rgb, side)
    h, w = (s - s % FADE_PATCH for s in small.shape[:2])
    if min(h, w) < FADE_MIN_SIDE:
        raise InputError(
            f"a {rgb.shape[1]}x{rgb.shape[0]} image is too small for FADE "
            f"(it needs at least {FADE_MIN_SIDE}x{FADE_MIN_SIDE} pixels)"
        )
    return _float01(small[:h, :w]).astype(np.float64) * 255.0


def _patches(x: np.ndarray) -> np.ndarray:
    """HxW map -> (H/8 * W/8, 64): the pixels of every 8x8 patch, row by row."""
    h, w = x.shape
    p = FADE_PATCH
    return x.reshape(h // p, p, w // p, p).transpose(0, 2, 1, 3).reshape(-1, p * p)


def _side_variance(v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per row: sample variance of the kept values (0 with fewer than two)."""
    n = keep.sum(1)
    s = np.where(keep, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = ((s * s).sum(1) - s.sum(1) ** 2 / np.maximum(n, 1)) / (n - 1)
    return np.where(n >= 2, np.maximum(var, 0.0), 0.0)


@functools.lru_cache(maxsize=1)
def _ce_filter() -> np.ndarray:
    """The contrast-energy filter: a zero-sum second derivative of a Gaussian (sigma 3.25), 21 taps.

    The MATLAB release's 1-D filter (``x = -3 sigma .. 3 sigma``), on integer taps -10..10 so it is
    centred; normalised as there (``sum(0.5 x^2 g) = 1``).
    """
    s = _CE_SIGMA
    x = np.arange(-math.ceil(3 * s), math.ceil(3 * s) + 1, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2 * s * s))
    gauss /= gauss.sum()
    g = (x**2 / s**4 - 1 / s**2) * gauss
    g -= g.mean()
    return g / np.sum(0.5 * x * x * g)


def _contrast_energy(channel: np.ndarray, threshold: float) -> np.ndarray:
    """Perceived contrast energy of one channel (0..255 scale): the filter's response magnitude,
    divisively normalised by the channel's largest response (semisaturation 0.1), minus a noise threshold."""
    g = _ce_filter()
    one = np.ones(1)
    cx = cv2.sepFilter2D(channel, cv2.CV_64F, g, one, borderType=cv2.BORDER_REFLECT)
    cy = cv2.sepFilter2D(channel, cv2.CV_64F, one, g, borderType=cv2.BORDER_REFLECT)
    c = np.sqrt(cx * cx + cy * cy)
    top = float(c.max())
    if top <= 0:
        return np.zeros_like(c)
    r = c * top / (c + top * _CE_SEMISATURATION)
    return np.maximum(r - threshold, 0.0)


def fade_features(rgb: np.ndarray, side: int = FADE_SIDE) -> np.ndarray:
    """The 12 fog-aware features (:data:`FADE_FEATURES`, as ``log(1 + f)``) of every 8x8 patch: (N, 12).

    Computed on :func:`fade_working_copy` (0..255 scale), following the paper and its MATLAB release:
    MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian window (sigma 7/6, replicated
    borders); the vertical products ``MSCN(i, j) * MSCN(i - 1, j)`` (wrapping at the top, as MATLAB's
    ``circshift``), their non-negative and non-positive parts' sample variances (0 for fewer than two
    values); sharpness = mean sigma; the coefficient of variation ``sigma / max(mu, 1)`` (so black areas
    give 0, not NaN); contrast energies; the entropy of the 8-bit grey levels; the pixel-wise dark
    channel; HSV saturation; colourfulness ``sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``.

    Raises:
        InputError: an image smaller than 32x32 pixels, or a flat one (a single grey level: no
            texture, so no statistics to compare).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> fade_features(rng.random((40, 64, 3))).shape
        (40, 12)
        >>> fade_features(np.full((64, 64, 3), 0.5))
        Traceback (most recent call last):
        ...
        dehaze.errors.InputError: a flat image (one grey level everywhere) has no fog statistics: FADE is undefined
    """
    img = fade_working_copy(rgb, side)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    grey = _GREY[0] * r + _GREY[1] * g + _GREY[2] * b
    if float(grey.max() - grey.min()) < 1e-6:
        raise InputError("a flat image (one grey level everywhere) has no fog statistics: FADE is undefined")
    # MSCN
    mu = cv2.GaussianBlur(grey, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(grey * grey, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu))
    mscn = (grey - mu) / (sigma + 1.0)
    pair = _patches(mscn * np.roll(mscn, 1, axis=0))
    cv = sigma / np.maximum(mu, 1.0)
    # colour
    rg, yb = r - g, 0.5 * (r + g) - b
    top = img.max(axis=2)
    sat = np.where(top > 0, (top - img.min(axis=2)) / np.maximum(top, 1e-12), 0.0)
    grey8 = np.clip(np.rint(grey), 0, 255).astype(np.int64)
    # per patch
    n = FADE_PATCH * FADE_PATCH
    counts = np.bincount((np.arange(grey8.size // n)[:, None] * 256 + _patches(grey8)).ravel(),
                         minlength=grey8.size // n * 256).reshape(-1, 256) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(counts > 0, counts * np.log2(counts), 0.0), axis=1)
    rg_p, yb_p = _patches(rg), _patches(yb)
    colourfulness = np.sqrt(rg_p.var(1, ddof=1) + yb_p.var(1, ddof=1)) + 0.3 * np.sqrt(
        rg_p.mean(1) ** 2 + yb_p.mean(1) ** 2
    )
    feats = [
        _patches(mscn).var(1, ddof=1),
        _side_variance(pair, pair >= 0),
        _side_variance(pair, pair <= 0),
        _patches(sigma).mean(1),
        _patches(cv).mean(1),
        *(_patches(_contrast_energy(ch, t)).mean(1) for ch, t in zip((grey, yb, rg), _CE_THRESHOLDS)),
        entropy,
        _patches(img.min(axis=2) / 255.0).mean(1),
        _patches(sat).mean(1),
        colourfulness,
    ]
    return np.log1p(np.stack(feats, axis=1))


# ----------------------------------------------------------------------------- FADE: models and distance


def fit_mvg(features: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Mean (12,) and covariance (12, 12) of patch features pooled over images, each image weighing the same.

    The covariance of the equal-weight mixture of the images' patches (``mean_i E[f f^T] - m m^T``),
    so a 1024-px photo counts as much as a 481-px one. Returns ``(mean, cov, images, patches)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, cov, n_img, n_patch = fit_mvg([rng.normal(0, 1, (500, 12)), rng.normal(2, 1, (100, 12))])
        >>> round(float(mean[0]), 1), cov.shape, n_img, n_patch
        (1.0, (12, 12), 2, 600)
    """
    sums, seconds, images, patches = None, None, 0, 0
    for f in features:
        f = np.asarray(f, np.float64)
        if f.ndim != 2 or f.shape[0] < 1:
            raise ValueError(f"expected an (N, K) feature array per image, got shape {f.shape}")
        m, s = f.mean(0), f.T @ f / len(f)
        sums = m if sums is None else sums + m
        seconds = s if seconds is None else seconds + s
        images, patches = images + 1, patches + len(f)
    if not images:
        raise ValueError("fit_mvg needs the features of at least one image")
    mean = sums / images
    cov = seconds / images - np.outer(mean, mean)
    return mean, (cov + cov.T) / 2, images, patches


def mvg_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``sqrt((a - b)^T ((cov_a + cov_b) / 2)^+ (a - b))``: the paper's Mahalanobis-like distance of two MVGs
    (pseudo-inverse, as the MATLAB release).

    Example:
        >>> I = np.eye(2)
        >>> mvg_distance(np.zeros(2), I, np.array([3.0, 4.0]), I)
        5.0
    """
    d = np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)
    m = d @ np.linalg.pinv((np.asarray(cov_a, np.float64) + np.asarray(cov_b, np.float64)) / 2) @ d
    return float(math.sqrt(max(float(m), 0.0)))


@dataclass(frozen=True)
class FadeModel:
    """The fog-free and foggy MVGs FADE measures distances to, and the working size they were fitted at.

    Attributes:
        fog_free_mean, fog_free_cov: MVG of the fog-free photos' patch features.
        foggy_mean, foggy_cov: MVG of the foggy photos' patch features.
        side: long side of the working copy the features were computed on (:data:`FADE_SIDE`).
        about: how the model was fitted (data, haze, command), for the record.
    """

    fog_free_mean: np.ndarray
    fog_free_cov: np.ndarray
    foggy_mean: np.ndarray
    foggy_cov: np.ndarray
    side: int = FADE_SIDE
    about: dict | None = None

    def __post_init__(self) -> None:
        k = len(FADE_FEATURES)
        for name in ("fog_free_mean", "foggy_mean", "fog_free_cov", "foggy_cov"):
            shape = (k,) if name.endswith("mean") else (k, k)
            value = np.asarray(getattr(self, name), np.float64)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"FADE model {name} must be a finite array of shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """The JSON form (the layout of ``fade_model.json``)."""
        return {
            "features": list(FADE_FEATURES),
            "side": self.side,
            "patch": FADE_PATCH,
            "fog_free": {"mean": self.fog_free_mean.tolist(), "cov": self.fog_free_cov.tolist()},
            "foggy": {"mean": self.foggy_mean.tolist(), "cov": self.foggy_cov.tolist()},
            "about": self.about or {},
        }

    @classmethod
    def from_dict(cls, d: dict) -> FadeModel:
        if list(d.get("features", [])) != list(FADE_FEATURES) or d.get("patch") != FADE_PATCH:
            raise ValueError("a FADE model of other features or another patch size than this code's")
        return cls(d["fog_free"]["mean"], d["fog_free"]["cov"], d["foggy"]["mean"], d["foggy"]["cov"],
                   int(d["side"]), d.get("about"))


@functools.lru_cache(maxsize=4)
def load_fade_model(path: str | Path | None = None) -> FadeModel:
    """The FADE model of ``path`` (a JSON file of :meth:`FadeModel.to_dict`); None -> the shipped one.

    Example:
        >>> load_fade_model().side
        1024
    """
    path = Path(path) if path is not None else FADE_MODEL_FILE
    try:
        return FadeModel.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError(f"FADE model not found: {path} (make one with training/fit_fade.py)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"FADE model {path} cannot be used: {exc}") from None


def fade_details(rgb: np.ndarray, model: FadeModel | None = None) -> dict[str, float]:
    """FADE's fog density ``D = Df / (Dff + 1)`` with its two distances, ``{"fade", "df", "dff"}``.

    The photo's patch features (:func:`fade_features`, at the model's working size) are fitted with
    one MVG (mean, sample covariance); ``Df`` is its :func:`mvg_distance` to the fog-free MVG and
    ``Dff`` to the foggy MVG. (The MATLAB release averages per-patch distances instead; the paper's
    image-level definition is used here.)

    Example:
        >>> d = fade_details(np.random.default_rng(0).random((64, 64, 3)))
        >>> sorted(d), d["fade"] == d["df"] / (d["dff"] + 1)
        (['df', 'dff', 'fade'], True)
    """
    model = model or load_fade_model()
    f = fade_features(rgb, model.side)
    mean, cov = f.mean(0), np.cov(f, rowvar=False)
    df = mvg_distance(mean, cov, model.fog_free_mean, model.fog_free_cov)
    dff = mvg_distance(mean, cov, model.foggy_mean, model.foggy_cov)
    return {"fade": df / (dff + 1.0), "df": df, "dff": dff}


def fade(rgb: np.ndarray, model: FadeModel | None = None) -> float:
    """Perceptual fog density of one photo (FADE, lower = less fog); see :func:`fade_details`.

    Absolute values are those of the model fitted here (``fade_model.json``), not MATLAB FADE's.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> clear = rng.random((128, 128, 3))
        >>> [fade(clear * t + 0.9 * (1 - t)) > fade(clear) for t in (0.6, 0.3)]
        [True, True]
    """
    return fade_details(rgb, model)["fade"]


# ----------------------------------------------------------------------------- clipping, brightness, noise


def _clipped(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(black, white) HxW masks of a strip: any channel at or below 1/255, at or above 254/255."""
    scale = PIXEL_SCALE.get(x.dtype)
    if scale is not None:  # integers: exact levels (1 and 254 of 255, 257 and 65278 of 65535)
        lo, hi = round(BLACK * scale), round(WHITE * scale)
    else:
        lo, hi = BLACK + _FLOAT_EPS, WHITE - _FLOAT_EPS
    return (x <= lo).any(axis=2), (x >= hi).any(axis=2)


def newly_clipped(inp: np.ndarray, out: np.ndarray, strip_rows: int = STRIP_ROWS) -> dict[str, float]:
    """Fractions of the pixels clipped in ``out`` but not in ``inp``: ``{"black", "white", "any"}``.

    A pixel is clipped to black when any channel is at or below 1/255, to white when any channel is
    at or above 254/255 (255-level terms: 1 and 254); "newly" when the input pixel is not clipped
    the same way; ``any`` counts a pixel newly clipped either way once.

    Example:
        >>> x = np.full((4, 4, 3), 0.5, np.float32)
        >>> y = x.copy(); y[0, :2] = 1.0; y[1, 0, 2] = 0.0
        >>> newly_clipped(x, y)
        {'black': 0.0625, 'white': 0.125, 'any': 0.1875}
    """
    _check_pair(inp, out)
    h, w = inp.shape[:2]
    black = white = either = 0
    for a, b, _, _ in _strips(h, strip_rows):
        ib, iw = _clipped(inp[a:b])
        ob, ow = _clipped(out[a:b])
        nb, nw = ob & ~ib, ow & ~iw
        black, white, either = black + int(nb.sum()), white + int(nw.sum()), either + int((nb | nw).sum())
    n = h * w
    return {"black": black / n, "white": white / n, "any": either / n}


def _luma(x: np.ndarray) -> np.ndarray:
    """HxW BT.601 luma in [0, 1] (float32) of a strip."""
    return _float01(x) @ np.asarray(_LUMA, np.float32)


def brightness_ratio(inp: np.ndarray, out: np.ndarray, strip_rows: int = STRIP_ROWS) -> float:
    """Mean luma (BT.601) of ``out`` over that of ``inp`` (1 = as bright; < 1 darker).

    Raises:
        InputError: the input is black (mean luma 0).

    Example:
        >>> x = np.full((8, 8, 3), 0.5, np.float32)
        >>> brightness_ratio(x, x * 0.5)
        0.5
    """
    _check_pair(inp, out)
    si = so = 0.0
    for a, b, _, _ in _strips(inp.shape[0], strip_rows):
        si += float(_luma(inp[a:b]).sum(dtype=np.float64))
        so += float(_luma(out[a:b]).sum(dtype=np.float64))
    if si <= 0:
        raise InputError("the input is black: no brightness ratio")
    return so / si


def _gradient(luma: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luma smoothed by a Gaussian of 2 px: what decides flatness."""
    g = cv2.GaussianBlur(luma, (0, 0), _FLAT_SIGMA, borderType=cv2.BORDER_REFLECT)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _flat_threshold(inp: np.ndarray, fraction: float, strip_rows: int) -> float:
    """The gradient magnitude below which ``fraction`` of the input's pixels lie (a histogram's bin edge)."""
    hist = np.zeros(_GRAD_BINS, np.int64)
    for a, b, lo, hi in _strips(inp.shape[0], strip_rows, _HALO):
        grad = _gradient(_luma(inp[lo:hi]))[a - lo : b - lo]
        hist += np.histogram(grad, bins=_GRAD_BINS, range=(0.0, _GRAD_MAX))[0]
    k = int(np.searchsorted(np.cumsum(hist), fraction * hist.sum()))
    return (k + 1) * _GRAD_MAX / _GRAD_BINS


def noise_amplification(
    inp: np.ndarray, out: np.ndarray, flat_fraction: float = FLAT_FRACTION, strip_rows: int = STRIP_ROWS
) -> dict[str, float]:
    """How much ``out`` amplifies the noise of ``inp`` in flat areas: ``{"input", "output", "ratio"}``.

    The noise level is Immerkær's fast estimate ("Fast Noise Variance Estimation", CVIU 1996),
    ``sigma = sqrt(pi / 2) / 6 * mean |N * Y|`` with ``N = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` and
    ``Y`` the BT.601 luma, averaged over the pixels that are flat in the *input*: the ``flat_fraction``
    of pixels with the lowest gradient magnitude (Sobel, after a Gaussian blur of 2 px), mostly sky
    and fog, where what the kernel sees is noise and JPEG artefacts rather than texture. ``input``
    and ``output`` are in grey levels (0..255); ``ratio = output / input``, each floored at 0.1 grey
    level (a perfectly smooth synthetic image has 0; an 8-bit photo's quantisation alone gives 0.29).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.clip(0.5 + rng.normal(0, 0.01, (64, 64, 1)), 0, 1).repeat(3, 2)
        >>> round(noise_amplification(x, 0.5 + 2 * (x - 0.5))["ratio"], 3)
        2.0
    """
    _check_pair(inp, out)
    if not 0 < flat_fraction <= 1:
        raise ValueError(f"flat_fraction must be in (0, 1], got {flat_fraction}")
    thr = _flat_threshold(inp, flat_fraction, strip_rows)
    si = so = 0.0
    count = 0
    for a, b, lo, hi in _strips(inp.shape[0], strip_rows, _HALO):
        yi = _luma(inp[lo:hi])
        flat = (_gradient(yi) <= thr)[a - lo : b - lo]
        ri = np.abs(cv2.filter2D(yi, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))[a - lo : b - lo]
        ro = np.abs(cv2.filter2D(_luma(out[lo:hi]), cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
        si += float(ri[flat].sum(dtype=np.float64))
        so += float(ro[a - lo : b - lo][flat].sum(dtype=np.float64))
        count += int(flat.sum())
    k = math.sqrt(math.pi / 2) / 6 / max(count, 1)
    ni, no = max(si * k, NOISE_FLOOR), max(so * k, NOISE_FLOOR)
    return {"input": ni * 255, "output": no * 255, "ratio": no / ni}
