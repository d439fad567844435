"""Haze synthesis with the atmospheric scattering model, so any clean photo becomes a training pair.

The model (Koschmieder; used by RESIDE) is

    I = J * t + A * (1 - t),    t = exp(-beta * d)

with J the clean image, A the atmospheric light, beta the scattering coefficient and d the scene
depth. It is applied to the sRGB values directly, as RESIDE did, so the synthetic pairs match the
RESIDE test sets. No depth maps exist for arbitrary photos, so :func:`synthesize_haze` draws a
relative depth map (0 = nearest, 1 = farthest) from one of four priors:

- :func:`smooth_noise_depth`: multi-octave low-frequency value noise (no scene layout at all);
- :func:`ramp_depth`: a ground plane seen in perspective, distance growing upwards to a random,
  tilted horizon, sky at the horizon distance;
- :func:`planes_depth`: a few slanted planes (Voronoi cells) with softened borders;
- :func:`color_attenuation_depth`: the colour-attenuation prior of Zhu et al. (2015),
  ``d = theta0 + theta1 * value + theta2 * saturation``, min-filtered and guided-filtered.

The relative depth is mapped to ``[depth_near, depth_far]`` and multiplied by beta. What decides
how hazy a pair looks is the optical depth ``beta * d``: 0.05 is a thin veil (t = 0.95), 3.5 is
dense fog (t = 0.03). Depth units are relative, chosen per preset so that the presets' beta ranges
(which contain RESIDE's) give optical depths from thin to dense; see :data:`PRESETS`.

Real haze is not RESIDE's. Each of these is a :class:`HazeSynthesizer` setting, off by default, so
its effect can be measured on its own (docs/real-world-haze.md):

- patchy, non-homogeneous haze as in NH-HAZE: ``nonuniform_prob``, ``nonuniform_strength``, ``nonuniform_cells``;
- coloured haze, A off grey: yellow sand, brown smog, bluish mist (``cast_prob``, ``cast_strength``, ``casts``);
- dense haze beyond RESIDE's ranges: the ``"dense"`` preset, a mixture member at a low weight;
- haze added in linear light, before the camera's tone curve (``linear_prob``);
- the camera after the haze: sensor noise and JPEG compression of the hazy photo only
  (``noise_prob``, ``noise``, ``jpeg_prob``, ``jpeg_quality``), so a model learns not to amplify them.

Example:
    >>> import numpy as np
    >>> clear = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    >>> hazy, meta = synthesize_haze(clear, np.random.default_rng(1), HazeSynthesizer.preset("indoor"))
    >>> hazy.shape, hazy.dtype, sorted(meta)[:3]
    ((64, 96, 3), dtype('float32'), ['A', 'beta', 'beta_variation'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

import cv2
import numpy as np
import torch

from dehaze.classical import guided_filter  # re-exported: depth maps follow image edges with it
from dehaze.errors import ConfigError, InputError

__all__ = [
    "DEPTH_PRIORS",
    "PRESETS",
    "HazeMixture",
    "HazeSynthesizer",
    "CASTS",
    "atmospheric_scattering",
    "camera",
    "linear_to_srgb",
    "color_attenuation_depth",
    "float01",
    "guided_filter",
    "haze_from_config",
    "haze_preset",
    "planes_depth",
    "ramp_depth",
    "smooth_noise_depth",
    "srgb_to_linear",
    "synthesize_haze",
    "synthesize_pair",
    "transmission",
]

Range = tuple[float, float]
# Zhu, Mai, Shao, "A Fast Single Image Haze Removal Algorithm Using Color Attenuation Prior", TIP 2015
CAP_THETA = (0.121779, 0.959710, -0.780245)
CAP_SIGMA = 0.041337
# Haze colours, RGB relative to the brightest channel, at full strength (``cast_strength`` = 1); an
# airlight's cast is ``grey * ((1 - s) + s * colour)``. Sand and dust (Middle East, Sahel), brown
# urban smog (NO2 and soot), bluish morning mist (Rayleigh scattering by small droplets).
CASTS: dict[str, tuple[float, float, float]] = {
    "sand": (1.0, 0.82, 0.55),
    "smog": (1.0, 0.9, 0.72),
    "mist": (0.82, 0.92, 1.0),
}


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _log_uniform(rng: np.random.Generator, r: Range) -> float:
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1])))) if r[1] > r[0] else float(r[0])


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"expected a (height, width) shape with positive sizes, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"expected {what} as an HxWx3 array, got {got}")
    return image


def _normalize(x: np.ndarray, lo_pct: float = 0.0, hi_pct: float = 100.0) -> np.ndarray:
    """Affinely map ``x`` to [0, 1] (percentile bounds, clipped); a constant map becomes zeros."""
    lo, hi = (
        (float(x.min()), float(x.max()))
        if (lo_pct, hi_pct) == (0.0, 100.0)
        else np.percentile(x, [lo_pct, hi_pct])
    )
    if hi - lo < 1e-8:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- depth priors
# Every prior returns an HxW float32 relative depth in [0, 1]: 0 at the nearest pixel, 1 at the farthest.


def smooth_noise_depth(
    shape: tuple[int, int],
    rng: np.random.Generator | int | None = None,
    octaves: int = 4,
    base_cells: float = 2.0,
    persistence: float = 0.55,
) -> np.ndarray:
    """Smooth random field: multi-octave value noise (random grids upsampled bicubically).

    Args:
        shape: (height, width).
        rng: NumPy generator or seed.
        octaves: number of octaves; each doubles the grid density (octaves with cells under 8 pixels
            are left out).
        base_cells: cells across the shorter side at the coarsest octave.
        persistence: amplitude factor from one octave to the next (lower is smoother).

    Example:
        >>> d = smooth_noise_depth((32, 48), rng=0)
        >>> d.shape, float(d.min()), float(d.max())
        ((32, 48), 0.0, 1.0)
    """
    h, w = _check_shape(shape)
    rng = _rng(rng)
    out = np.zeros((h, w), np.float32)
    scale = max(h, w) / min(h, w)
    for o in range(octaves):
        cells = base_cells * 2**o
        if o > 0 and min(h, w) / cells < 8:  # keep it low-frequency: no cell narrower than 8 pixels
            break
        gh = int(math.ceil(cells * (scale if h > w else 1.0))) + 2
        gw = int(math.ceil(cells * (scale if w >= h else 1.0))) + 2
        grid = rng.random((gh, gw), dtype=np.float32)
        # upsample the grid with a margin of one cell cropped away, so the borders look like the middle
        big = cv2.resize(
            grid, (w * gw // (gw - 2) + 1, h * gh // (gh - 2) + 1), interpolation=cv2.INTER_CUBIC
        )
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        out += persistence**o * big[y0 : y0 + h, x0 : x0 + w]
    return _normalize(out)


def ramp_depth(
    shape: tuple[int, int],
    rng: np.random.Generator | int | None = None,
    horizon: Range = (-0.1, 0.6),
    tilt: Range = (-0.25, 0.25),
    curvature: Range = (0.05, 1.0),
) -> np.ndarray:
    """Scene-layout ramp: a ground plane in perspective, distance growing upwards to the horizon.

    The horizon row (fraction of the height from the top; negative puts it above the image) and its
    tilt (change of that fraction across the width) are random. Below the horizon the depth follows
    the perspective law ``1 / (v + c)`` with ``v`` the normalised distance below the horizon; at and
    above the horizon (sky) the depth is 1. Small ``c`` makes the far field dominate. In every column
    the depth never decreases going up.

    Args:
        shape: (height, width).
        rng: NumPy generator or seed.
        horizon: range of the horizon position at the image centre.
        tilt: range of the horizon's slope (fraction of the height over the full width).
        curvature: range of ``c`` (ratio of near to far distance is about ``c / (1 + c)``).

    Example:
        >>> d = ramp_depth((40, 30), rng=0)
        >>> bool((np.diff(d, axis=0) <= 1e-6).all())  # deeper going up
        True
    """
    h, w = _check_shape(shape)
    rng = _rng(rng)
    y0, slope, c = _uniform(rng, horizon), _uniform(rng, tilt), _uniform(rng, curvature)
    ys = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    xs = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    yh = y0 + slope * (xs - 0.5)  # horizon row per column
    v = np.clip((ys - yh) / np.maximum(1.0 - yh, 1e-3), 0.0, 1.0)  # 0 at the horizon, 1 at the bottom
    inv_far, inv_near = 1.0 / c, 1.0 / (1.0 + c)
    d = (1.0 / (v + c) - inv_near) / (inv_far - inv_near)
    return np.clip(d, 0.0, 1.0).astype(np.float32)


def planes_depth(
    shape: tuple[int, int],
    rng: np.random.Generator | int | None = None,
    planes: tuple[int, int] = (2, 6),
    softness: float = 0.03,
) -> np.ndarray:
    """Piecewise planes: Voronoi cells, each a slanted plane, with borders softened by a Gaussian.

    Args:
        shape: (height, width).
        rng: NumPy generator or seed.
        planes: inclusive range of the number of cells.
        softness: Gaussian sigma of the borders as a fraction of the shorter side (0 keeps steps).

    Example:
        >>> d = planes_depth((32, 32), rng=0)
        >>> d.shape, float(d.min()) >= 0.0, float(d.max()) <= 1.0
        ((32, 32), True, True)
    """
    h, w = _check_shape(shape)
    rng = _rng(rng)
    n = int(rng.integers(planes[0], planes[1] + 1))
    ys = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    xs = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    seeds = rng.random((n, 2), dtype=np.float32)
    dist = (ys[None] - seeds[:, 0, None, None]) ** 2 + (xs[None] - seeds[:, 1, None, None]) ** 2
    cell = dist.argmin(0)
    offset = rng.random(n, dtype=np.float32)
    gy = rng.uniform(-1.0, 0.3, n).astype(np.float32)  # mostly farther upwards, as in most scenes
    gx = rng.uniform(-0.5, 0.5, n).astype(np.float32)
    d = offset[cell] + gy[cell] * (ys - seeds[cell, 0]) + gx[cell] * (xs - seeds[cell, 1])
    if softness > 0:
        d = cv2.GaussianBlur(d, (0, 0), sigmaX=softness * min(h, w), borderType=cv2.BORDER_REFLECT)
    return _normalize(d)


def color_attenuation_depth(
    image: np.ndarray,
    rng: np.random.Generator | int | None = None,
    radius: int | None = None,
    theta: tuple[float, float, float] = CAP_THETA,
    sigma: float = CAP_SIGMA,
) -> np.ndarray:
    """Colour-attenuation prior (Zhu et al., 2015): far pixels are bright and unsaturated.

    ``d = theta0 + theta1 * v + theta2 * s + N(0, sigma)`` from the HSV value and saturation, then a
    morphological opening (Zhu et al. use a minimum filter so that a small white object is not deeper
    than its surroundings; the opening does that without shifting the edges of large regions) and a
    guided filter with the image as guide, so depth edges follow image edges. Normalised to [0, 1]
    between the 1st and 99th percentiles.

    Args:
        image: HxWx3 float32 RGB in [0, 1].
        rng: NumPy generator or seed for the noise term (None draws fresh noise).
        radius: opening radius (the guided filter uses twice this); default ``max(2, min(h, w) // 40)``.
        theta: the linear model's coefficients (Zhu et al.'s learned values by default).
        sigma: standard deviation of the model's noise term.

    Example:
        >>> img = np.zeros((20, 20, 3), np.float32); img[:10] = 0.9  # bright grey top, black bottom
        >>> d = color_attenuation_depth(img, rng=0)
        >>> bool(d[:5].mean() > d[-5:].mean())
        True
    """
    image = _check_image(image).astype(np.float32, copy=False)
    h, w = image.shape[:2]
    r = radius if radius is not None else max(2, min(h, w) // 40)
    rgb = np.clip(image, 0.0, 1.0)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # float input: H in degrees, S and V in [0, 1]
    d = theta[0] + theta[1] * hsv[..., 2] + theta[2] * hsv[..., 1]
    if sigma > 0:
        d = d + _rng(rng).normal(0.0, sigma, (h, w)).astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    d = cv2.morphologyEx(d, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REFLECT)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    d = guided_filter(gray, d, 2 * r, eps=1e-3)
    return _normalize(d, 1.0, 99.0)


def _cap_prior(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return color_attenuation_depth(image, rng)


DEPTH_PRIORS = {
    "noise": lambda image, rng: smooth_noise_depth(image.shape[:2], rng),
    "ramp": lambda image, rng: ramp_depth(image.shape[:2], rng),
    "planes": lambda image, rng: planes_depth(image.shape[:2], rng),
    "cap": _cap_prior,
}
"""Name -> ``fn(image HxWx3, rng) -> HxW relative depth`` for every prior the synthesiser can draw."""


# ----------------------------------------------------------------------------- scattering model


def transmission(depth: np.ndarray, beta: float | np.ndarray) -> np.ndarray:
    """Transmission ``t = exp(-beta * d)`` (``beta`` a scalar or a map of ``depth``'s shape).

    Example:
        >>> [round(float(t), 3) for t in transmission(np.array([0.0, 1.0]), 2.0)]
        [1.0, 0.135]
    """
    return np.exp(-np.asarray(beta, np.float32) * np.asarray(depth, np.float32)).astype(np.float32)


def atmospheric_scattering(clear: np.ndarray, t: np.ndarray, A: np.ndarray | float) -> np.ndarray:
    """Hazy image ``I = J * t + A * (1 - t)``, clipped to [0, 1].

    Args:
        clear: HxWx3 float32 RGB in [0, 1].
        t: HxW (or HxWx1 / HxWx3) transmission in [0, 1].
        A: atmospheric light, scalar or per-channel (3,).

    Example:
        >>> J = np.zeros((2, 2, 3), np.float32)
        >>> atmospheric_scattering(J, np.full((2, 2), 0.25, np.float32), 0.8)[0, 0]
        array([0.6, 0.6, 0.6], dtype=float32)
    """
    clear = _check_image(clear, "clear")
    t = np.asarray(t, np.float32)
    if t.ndim == 2:
        t = t[..., None]
    if t.shape[:2] != clear.shape[:2]:
        raise ValueError(f"transmission {t.shape[:2]} does not match the image {clear.shape[:2]}")
    A = np.asarray(A, np.float32).reshape(-1)[None, None, :]
    return np.clip(clear * t + A * (1.0 - t), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- light and camera


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """The sRGB curve undone (IEC 61966-2-1): values in [0, 1] to linear light.

    Example:
        >>> [round(float(v), 4) for v in srgb_to_linear(np.array([0.0, 0.5, 1.0]))]
        [0.0, 0.214, 1.0]
    """
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB curve: linear light in [0, 1] to sRGB values (the inverse of :func:`srgb_to_linear`).

    Example:
        >>> round(float(linear_to_srgb(srgb_to_linear(np.array(0.3)))), 6)
        0.3
    """
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055).astype(np.float32)


def _linear_haze(image: np.ndarray, t: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scattering model in linear light, and the sRGB transmission that best explains it.

    The sRGB t is, per pixel, the least-squares ``t`` of ``I - A = t (J - A)`` over the channels;
    where ``J`` is too close to ``A`` to tell, the linear t.
    """
    lin = atmospheric_scattering(srgb_to_linear(image), t, srgb_to_linear(A))
    hazy = linear_to_srgb(lin)
    d = image - A[None, None, :]
    num = np.sum(d * (hazy - A[None, None, :]), axis=2)
    den = np.sum(d * d, axis=2)
    t_srgb = np.where(den > 1e-3, num / np.maximum(den, 1e-3), t)
    return hazy, np.clip(t_srgb, 0.0, 1.0).astype(np.float32)


def camera(
    hazy: np.ndarray,
    rng: np.random.Generator | int | None = None,
    noise: float = 0.0,
    jpeg_quality: int | None = None,
) -> np.ndarray:
    """The camera after the haze: sensor noise, then JPEG compression, on an sRGB photo in [0, 1].

    The noise is shot noise plus read noise in linear light (variance ``a·x + b`` with a and b set
    so the standard deviation is ``noise`` at mid grey, three quarters of its variance from shot
    noise), so a dark or flat sky gets it as a camera gives it; JPEG uses OpenCV's encoder
    (4:2:0 chroma, the camera's usual choice).

    Args:
        hazy: HxWx3 float32 in [0, 1].
        rng: NumPy generator or seed (for the noise).
        noise: standard deviation at mid grey, in sRGB units; 0 for none.
        jpeg_quality: 1..100, or None for no compression.

    Example:
        >>> I = np.full((32, 32, 3), 0.5, np.float32)
        >>> round(float(camera(I, 0, noise=0.02).std()), 2), camera(I, 0, jpeg_quality=50).dtype
        (0.02, dtype('float32'))
    """
    x = _check_image(np.asarray(hazy, np.float32), "hazy")
    if noise > 0:
        rng = _rng(rng)
        lin = srgb_to_linear(x)
        # sRGB slope at mid grey: d(srgb)/d(lin) at lin(0.5) = 0.214 -> noise in linear units there
        slope = 1.0 / 1.055 / 2.4 * 0.214 ** (1 / 2.4 - 1)
        var_mid = (noise / slope) ** 2
        a, b = 0.75 * var_mid / 0.214, 0.25 * var_mid
        lin = lin + rng.standard_normal(lin.shape, dtype=np.float32) * np.sqrt(a * lin + b).astype(np.float32)
        x = linear_to_srgb(lin)
    if jpeg_quality is not None:
        q = int(round(jpeg_quality))
        if not 1 <= q <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        u8 = cv2.cvtColor((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV encodes any 8-bit 3-channel array
            raise RuntimeError("JPEG encoding failed")
        x = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


def _camera_step(hazy: np.ndarray, rng: np.random.Generator, s: HazeSynthesizer) -> tuple[np.ndarray, float, int]:
    """:func:`camera` with the synthesiser's odds; no draws when both are off."""
    noise = _log_uniform(rng, s.noise) if s.noise_prob > 0 and rng.random() < s.noise_prob else 0.0
    quality = int(round(_uniform(rng, s.jpeg_quality))) if s.jpeg_prob > 0 and rng.random() < s.jpeg_prob else 0
    if noise > 0 or quality:
        hazy = camera(hazy, rng, noise, quality or None)
    return hazy, noise, quality


# ----------------------------------------------------------------------------- the sampler


@dataclass(frozen=True)
class HazeSynthesizer:
    """Ranges of the random haze parameters (one scene type). Call it like :func:`synthesize_haze`.

    The defaults are the ``"indoor"`` preset.

    Depth is in relative units: a prior's relative depth r in [0, 1] becomes
    ``d = far * (near + (1 - near) * r)`` with ``far`` log-uniform in ``depth_far`` and ``near`` (a
    fraction of ``far``) uniform in ``depth_near``; beta is uniform in ``beta`` and then lowered if
    needed so that ``beta * far <= max_optical_depth``.

    Attributes:
        A: range of the grey level of the atmospheric light.
        A_tint: largest relative per-channel deviation of A from grey (a slightly coloured haze).
        tint_prob: probability of a coloured A.
        beta: range of the scattering coefficient.
        depth_far: range of the depth of the farthest pixel.
        depth_near: range of the nearest pixel's depth as a fraction of the farthest.
        max_optical_depth: cap on ``beta * depth_far`` (3.5 gives t >= 0.03 for uniform haze).
        priors: relative weights of the depth priors in :data:`DEPTH_PRIORS`.
        noise_mix_prob: probability of blending a smooth random field into the chosen prior.
        noise_mix: range of the weight of that field.
        nonuniform_prob: probability of a non-uniform haze (beta varying smoothly in space).
        nonuniform_strength: range of ``s`` in ``beta(x) = beta * exp(s * n(x))``, n a field in [-1, 1].
        align_edges: refine the depth with a guided filter so depth edges follow image edges.
        nonuniform_cells: range of the non-uniform field's coarsest cells across the shorter side
            (1.5: a gentle gradient; 3 to 6: NH-HAZE's patches).
        exposure: range of a gain on the clean photo before the haze (log-uniform, clipped at
            white): scenes whose bright parts (sky, sunlit walls) are brighter than the airlight, as
            in real outdoor photos. It changes the ground truth too, so :func:`synthesize_pair`
            applies it, not :func:`synthesize_haze`.
        cast_prob: probability of a coloured airlight from :data:`CASTS` (beside ``A_tint``'s small jitter).
        cast_strength: range of how far A moves from grey toward the cast's colour (0 grey, 1 full).
        casts: relative weights of the casts in :data:`CASTS`.
        linear_prob: probability of adding the haze in linear light (the sRGB curve undone, the
            scattering model applied, the curve redone), as light mixes in a real scene. The
            returned transmission is then the sRGB one that best explains each pixel.
        noise_prob: probability of sensor noise on the hazy photo (shot and read noise, added in
            linear light, so dark pixels get relatively more).
        noise: range of the noise's standard deviation at mid grey, in sRGB units (log-uniform).
        jpeg_prob: probability of JPEG compression of the hazy photo (after the noise).
        jpeg_quality: range of the JPEG quality (uniform).
    """

    A: Range = (0.7, 1.0)
    A_tint: float = 0.06
    tint_prob: float = 0.5
    beta: Range = (0.6, 1.8)
    depth_far: Range = (0.2, 2.5)
    depth_near: Range = (0.0, 0.5)
    max_optical_depth: float = 3.5
    priors: Mapping[str, float] = field(
        default_factory=lambda: {"noise": 1.0, "ramp": 0.5, "planes": 1.5, "cap": 1.0}
    )
    noise_mix_prob: float = 0.5
    noise_mix: Range = (0.1, 0.4)
    nonuniform_prob: float = 0.3
    nonuniform_strength: Range = (0.1, 0.5)
    align_edges: bool = True
    exposure: Range = (1.0, 1.0)
    nonuniform_cells: Range = (1.5, 1.5)
    cast_prob: float = 0.0
    cast_strength: Range = (0.2, 0.8)
    casts: Mapping[str, float] = field(default_factory=lambda: {"sand": 1.0, "smog": 1.0, "mist": 1.0})
    linear_prob: float = 0.0
    noise_prob: float = 0.0
    noise: Range = (0.004, 0.03)
    jpeg_prob: float = 0.0
    jpeg_quality: Range = (30.0, 95.0)

    def __post_init__(self) -> None:
        if not 0 < self.exposure[0] <= self.exposure[1]:
            raise ConfigError(f"haze exposure={list(self.exposure)} must satisfy 0 < low <= high")
        for name in ("A", "beta", "depth_far", "depth_near", "noise_mix", "nonuniform_strength"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi):
                raise ConfigError(f"haze range {name}={[lo, hi]} must satisfy 0 <= low <= high")
        if self.A[1] > 1.0 or self.depth_near[1] > 1.0 or self.noise_mix[1] > 1.0:
            raise ConfigError("haze ranges A, depth_near and noise_mix must lie within [0, 1]")
        if self.depth_far[0] <= 0 or self.beta[0] < 0:
            raise ConfigError(f"haze range depth_far={list(self.depth_far)} must be positive")
        for name in ("cast_strength", "noise"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi <= 1):
                raise ConfigError(f"haze range {name}={[lo, hi]} must satisfy 0 <= low <= high <= 1")
        if self.noise[0] <= 0 < self.noise[1] and self.noise[0] != self.noise[1]:
            raise ConfigError(f"haze noise={list(self.noise)} is drawn log-uniform: its low end must be positive")
        lo, hi = self.nonuniform_cells
        if not 0.5 <= lo <= hi <= 16:
            raise ConfigError(f"haze nonuniform_cells={[lo, hi]} must satisfy 0.5 <= low <= high <= 16")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ConfigError(f"haze jpeg_quality={[lo, hi]} must satisfy 1 <= low <= high <= 100")
        unknown_casts = sorted(set(self.casts) - set(CASTS))
        if unknown_casts or not self.casts or sum(self.casts.values()) <= 0 or min(self.casts.values()) < 0:
            raise ConfigError(f"haze casts {dict(self.casts)} must be non-negative weights over {sorted(CASTS)}")
        for name in ("tint_prob", "noise_mix_prob", "nonuniform_prob", "cast_prob", "linear_prob", "noise_prob",
                     "jpeg_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"haze {name}={getattr(self, name)} must be a probability in [0, 1]")
        if self.max_optical_depth <= 0 or self.A_tint < 0:
            raise ConfigError("haze max_optical_depth must be positive and A_tint non-negative")
        unknown = sorted(set(self.priors) - set(DEPTH_PRIORS))
        if unknown or not self.priors or sum(self.priors.values()) <= 0 or min(self.priors.values()) < 0:
            raise ConfigError(
                f"haze priors {dict(self.priors)} must be non-negative weights over {sorted(DEPTH_PRIORS)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else "")
            )

    @classmethod
    def preset(cls, name: str) -> HazeSynthesizer:
        """One of the single-scene presets ``"indoor"``, ``"outdoor"`` or ``"dense"`` (see :data:`PRESETS`)."""
        if name not in PRESETS or not isinstance(PRESETS[name], HazeSynthesizer):
            raise ConfigError(
                f"unknown haze preset {name!r}; choose indoor, outdoor or dense (or haze_preset('mixed'))"
            )
        return PRESETS[name]

    @classmethod
    def from_dict(cls, cfg: Mapping) -> HazeSynthesizer:
        """Ranges from a config mapping: optional ``preset`` (the base, default indoor) plus fields to change.

        Example:
            >>> HazeSynthesizer.from_dict({"preset": "outdoor", "beta": [0.02, 0.3]}).beta
            (0.02, 0.3)
        """
        cfg = dict(cfg)
        base = cls.preset(cfg.pop("preset", "indoor"))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(
                f"unknown haze setting(s) {', '.join(unknown)}; valid: preset, {', '.join(sorted(names))}"
            )
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        try:
            return replace(base, **cfg)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid haze setting: {exc}") from None

    def to_dict(self) -> dict:
        """Plain dict of the ranges (for configs and logs)."""
        d = asdict(self)
        d["priors"] = dict(self.priors)
        d["casts"] = dict(self.casts)
        return d

    def __call__(self, clear, rng=None, **overrides):
        return synthesize_haze(clear, rng, self, **overrides)


@dataclass(frozen=True)
class HazeMixture:
    """Several :class:`HazeSynthesizer` scene types, one picked at random (by ``weights``) per image."""

    members: tuple[HazeSynthesizer, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.members:
            raise ConfigError("a haze mixture needs at least one member")
        w = self.weights
        if w is not None and (len(w) != len(self.members) or min(w) < 0 or sum(w) <= 0):
            raise ConfigError("haze mixture weights must match the members, be >= 0 and not all 0")

    def pick(self, rng: np.random.Generator) -> HazeSynthesizer:
        """One member, drawn by ``weights`` (equal odds without)."""
        n = len(self.members)
        p = np.ones(n) / n if self.weights is None else np.asarray(self.weights, float) / sum(self.weights)
        return self.members[int(rng.choice(n, p=p))]

    def to_dict(self) -> dict:
        return {"members": [m.to_dict() for m in self.members], "weights": self.weights}

    def __call__(self, clear, rng=None, **overrides):
        return synthesize_haze(clear, rng, self, **overrides)


# RESIDE: indoor (NYU depth) A in [0.7, 1.0], beta in [0.6, 1.8]; outdoor A in [0.8, 1.0], beta in [0.04, 0.2].
# Transmission fitted on the sots-dev pairs (I = J t + A (1 - t)) spans 0.22..1.0 indoors (1st..99th
# percentile, mean 0.63) and 0.37..0.86 outdoors (mean 0.66): RESIDE indoor depth acts like a depth
# normalised to about [0, 1], outdoor like about [2, 5] units. The presets keep RESIDE's beta ranges
# (outdoor slightly widened) and choose depth ranges that reach optical depths from about 0 to 3.5:
# pixel t then spans 0.06..0.95 (1st..99th percentile), per-image mean t 0.16..0.88 (5th..95th);
# measured by benchmarks/haze_synthesis.py.
PRESETS: dict[str, HazeSynthesizer | HazeMixture] = {
    "indoor": HazeSynthesizer(
        A=(0.7, 1.0),
        beta=(0.6, 1.8),
        depth_far=(0.2, 2.5),
        depth_near=(0.0, 0.5),
        priors={"noise": 1.0, "ramp": 0.5, "planes": 1.5, "cap": 1.0},
    ),
    "outdoor": HazeSynthesizer(
        A=(0.75, 1.0),
        beta=(0.03, 0.25),
        depth_far=(2.0, 18.0),
        depth_near=(0.05, 0.7),
        priors={"noise": 1.0, "ramp": 2.0, "planes": 0.5, "cap": 1.5},
    ),
}
# Dense haze beyond RESIDE (Dense-Haze, O-HAZE's thickest frames, fog): the outdoor layout with a
# near plane already deep in the haze and optical depths to 4 (t down to 0.02), a greyer, dimmer A
# (overcast light). Meant as a low-weight mixture member, so thin haze stays the common case.
PRESETS["dense"] = replace(
    PRESETS["outdoor"], A=(0.6, 0.95), beta=(0.15, 0.5), depth_near=(0.3, 0.9), max_optical_depth=4.0
)
PRESETS["mixed"] = HazeMixture((PRESETS["indoor"], PRESETS["outdoor"]))


def haze_preset(name: str) -> HazeSynthesizer | HazeMixture:
    """``"indoor"``, ``"outdoor"``, ``"dense"`` or ``"mixed"`` (indoor or outdoor ranges with equal chance).

    Example:
        >>> haze_preset("outdoor").beta
        (0.03, 0.25)
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown haze preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def haze_from_config(spec) -> HazeSynthesizer | HazeMixture:
    """Haze ranges from a config value (``data.haze``, ``dehaze synth --haze``): a preset name, a
    mapping (``preset`` + fields to change), or a list of them (a mixture; an optional ``weight`` per
    member sets how often it is drawn, see :class:`HazeMixture`).

    Example:
        >>> haze_from_config([{"preset": "indoor", "max_optical_depth": 2.0}, {"preset": "outdoor"}]).members[0].max_optical_depth
        2.0
        >>> haze_from_config({"preset": "outdoor", "cast_prob": 1.0, "casts": {"sand": 1.0}}).cast_prob
        1.0
    """
    if isinstance(spec, str):
        return haze_preset(spec)
    if isinstance(spec, Mapping):
        return HazeSynthesizer.from_dict(spec)
    if isinstance(spec, list) and spec and all(isinstance(m, Mapping) for m in spec):
        weights = tuple(float(m.get("weight", 1.0)) for m in spec)  # how often each member is drawn
        members = tuple(HazeSynthesizer.from_dict({k: v for k, v in m.items() if k != "weight"}) for m in spec)
        return HazeMixture(members, weights)
    raise ConfigError(f"haze must be a preset name, a mapping of haze ranges or a list of them, got {spec!r}")


def _sample_A(rng: np.random.Generator, s: HazeSynthesizer) -> tuple[np.ndarray, str]:
    """The airlight and the name of its cast (``"grey"`` without one)."""
    grey = _uniform(rng, s.A)
    A = np.full(3, grey, np.float32)
    if s.A_tint > 0 and rng.random() < s.tint_prob:
        A = A * (1.0 + rng.uniform(-s.A_tint, s.A_tint, 3)).astype(np.float32)
    cast = "grey"
    if s.cast_prob > 0 and rng.random() < s.cast_prob:  # no draw when off: old configs keep their haze
        names = sorted(s.casts)
        p = np.array([s.casts[n] for n in names], float)
        cast = names[int(rng.choice(len(names), p=p / p.sum()))]
        k = _uniform(rng, s.cast_strength)
        A = A * ((1.0 - k) + k * np.asarray(CASTS[cast], np.float32))
    return np.clip(A, 0.0, 1.0).astype(np.float32), cast


def _pick_prior(rng: np.random.Generator, s: HazeSynthesizer) -> str:
    names = sorted(s.priors)
    p = np.array([s.priors[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _to_numpy_image(clear) -> tuple[np.ndarray, torch.Tensor | None]:
    if isinstance(clear, torch.Tensor):
        if clear.ndim != 3 or clear.shape[0] != 3:
            raise ValueError(f"expected a 3xHxW tensor in [0, 1], got shape {tuple(clear.shape)}")
        return clear.detach().permute(1, 2, 0).float().cpu().numpy(), clear
    return _check_image(np.asarray(clear), "clear"), None


def float01(image: np.ndarray) -> np.ndarray:
    """An image as float32 in [0, 1]: uint8 is scaled by 1/255, floats are kept (no copy when float32)."""
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32, copy=False)


def synthesize_pair(
    clear: np.ndarray,
    rng: np.random.Generator | int | None = None,
    synth: HazeSynthesizer | HazeMixture | None = None,
    return_transmission: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A training pair from a clean photo: the scene type's exposure gain, then :func:`synthesize_haze`.

    Args:
        clear: HxWx3 float32 RGB array in [0, 1] (uint8 is scaled by 1/255).
        rng: NumPy generator or seed.
        synth: ranges to draw from; a :class:`HazeMixture` picks its member first, so each scene
            type keeps its own ``exposure``.
        return_transmission: also return the HxW transmission map as ``meta["transmission"]``.

    Returns:
        ``(clear, hazy, meta)``: the (possibly brightened) clean target, its hazy version and the
        metadata of :func:`synthesize_haze` plus ``exposure`` (the gain used).

    Example:
        >>> J = np.full((16, 16, 3), 0.5, np.float32)
        >>> J2, I, meta = synthesize_pair(J, 0, HazeSynthesizer(exposure=(1.5, 1.5)))
        >>> float(J2.max()), meta["exposure"]
        (0.75, 1.5)
    """
    rng = _rng(rng)
    synth = synth if synth is not None else PRESETS["indoor"]
    if isinstance(synth, HazeMixture):
        synth = synth.pick(rng)
    image = float01(_check_image(np.asarray(clear), "clear"))
    lo, hi = synth.exposure
    gain = lo if lo == hi else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if gain != 1.0:
        image = np.minimum(image * gain, 1.0).astype(np.float32)
    hazy, meta = synthesize_haze(image, rng, synth, return_transmission=return_transmission)
    meta["exposure"] = round(float(gain), 4)
    return image, hazy, meta


def _draw_depth(image: np.ndarray, rng: np.random.Generator, synth: HazeSynthesizer, prior: str | None,
                depth: np.ndarray | None) -> tuple[np.ndarray, str, float, float]:
    """The scene depth for :func:`synthesize_haze`: ``depth`` as given, or a relative depth from a prior
    (optionally mixed with noise and aligned to the image's edges) mapped to drawn near/far distances.

    Returns:
        ``(d, prior name, nearest depth, farthest depth)``.
    """
    h, w = image.shape[:2]
    if depth is not None:
        depth = np.asarray(depth, np.float32)
        if depth.shape != (h, w):
            raise ValueError(f"depth {depth.shape} does not match the image ({h}, {w})")
        return depth, "given", float(depth.min()), float(depth.max())
    name = prior if prior is not None else _pick_prior(rng, synth)
    if name not in DEPTH_PRIORS:
        raise ConfigError(f"unknown depth prior {name!r}; choose one of {', '.join(DEPTH_PRIORS)}")
    rel = DEPTH_PRIORS[name](image, rng)
    mix = _uniform(rng, synth.noise_mix) if rng.random() < synth.noise_mix_prob else 0.0
    if mix > 0 and name != "noise":
        rel = (1.0 - mix) * rel + mix * smooth_noise_depth((h, w), rng)
        name = f"{name}+noise"
    if synth.align_edges and not name.startswith("cap"):
        gray = cv2.cvtColor(np.clip(image, 0.0, 1.0), cv2.COLOR_RGB2GRAY)
        rel = guided_filter(gray, rel, max(2, min(h, w) // 32), eps=1e-2)
    rel = _normalize(rel)
    far = _log_uniform(rng, synth.depth_far)
    near = _uniform(rng, synth.depth_near)
    return far * (near + (1.0 - near) * rel), name, float(near * far), far


def _draw_beta(rng: np.random.Generator, synth: HazeSynthesizer, far: float, beta: float | np.ndarray | None,
               shape: tuple[int, int]) -> tuple[float | np.ndarray, float]:
    """The scattering coefficient for :func:`synthesize_haze`: ``beta`` as given, or drawn (capped so the
    farthest point's optical depth stays under ``max_optical_depth``), sometimes varying over the image.

    Returns:
        ``(beta or an HxW beta map, the spatial variation's strength)``.
    """
    if beta is not None:
        b_map = np.asarray(beta, np.float32)
        if b_map.ndim and b_map.shape != shape:
            raise ValueError(f"beta map {b_map.shape} does not match the image {shape}")
        return b_map, 0.0
    b = _uniform(rng, synth.beta)
    b = min(b, synth.max_optical_depth / max(far, 1e-6))
    if rng.random() < synth.nonuniform_prob:
        variation = _uniform(rng, synth.nonuniform_strength)
        cells = _uniform(rng, synth.nonuniform_cells)  # no draw for a fixed scale: old configs keep their haze
        field_ = 2.0 * smooth_noise_depth(shape, rng, octaves=3, base_cells=cells) - 1.0
        return b * np.exp(variation * field_), variation
    return b, 0.0


def synthesize_haze(
    clear: np.ndarray | torch.Tensor,
    rng: np.random.Generator | int | None = None,
    synth: HazeSynthesizer | HazeMixture | None = None,
    *,
    prior: str | None = None,
    depth: np.ndarray | None = None,
    A: float | np.ndarray | None = None,
    beta: float | np.ndarray | None = None,
    return_transmission: bool = False,
) -> tuple[np.ndarray | torch.Tensor, dict]:
    """Add random haze to a clean image with the atmospheric scattering model.

    Every random choice comes from ``rng``, so a seed gives the same result. Keyword arguments fix
    a parameter instead of drawing it.

    Args:
        clear: HxWx3 float32 RGB array in [0, 1] (uint8 is scaled by 1/255), or a 3xHxW tensor in [0, 1].
        rng: NumPy generator or seed.
        synth: ranges to draw from (a :class:`HazeSynthesizer` or :class:`HazeMixture`); default indoor.
        prior: name of the depth prior to use (see :data:`DEPTH_PRIORS`).
        depth: HxW depth in absolute units (bypasses the prior and the near/far ranges).
        A: atmospheric light, scalar or per-channel.
        beta: scattering coefficient, scalar or an HxW map (not capped by ``max_optical_depth``).
        return_transmission: also return the HxW transmission map as ``meta["transmission"]``.

    Returns:
        ``(hazy, meta)``: hazy in the input's type and layout, clipped to [0, 1]; ``meta`` with
        ``A`` (3 floats), ``cast`` (its colour's name, ``"grey"`` or ``"given"``), ``beta`` (mean over
        the image), ``prior``, ``depth_near``, ``depth_far``, ``beta_variation`` (0 for uniform haze),
        ``linear`` (haze added in linear light), ``noise`` and ``jpeg_quality`` (0: none) of the
        camera step, and ``mean_t`` (all JSON-serialisable).

    Example:
        >>> J = np.full((16, 16, 3), 0.2, np.float32)
        >>> I, meta = synthesize_haze(J, 0, depth=np.ones((16, 16), np.float32), A=1.0, beta=0.0)
        >>> bool(np.allclose(I, J)), meta["mean_t"]
        (True, 1.0)
    """
    rng = _rng(rng)
    synth = synth if synth is not None else PRESETS["indoor"]
    if isinstance(synth, HazeMixture):
        synth = synth.pick(rng)
    image, tensor = _to_numpy_image(clear)
    image = float01(image)
    h, w = image.shape[:2]
    if h < 2 or w < 2:
        raise InputError(f"image of {w}x{h} pixels is too small to add haze to")

    if A is None:
        A_, cast = _sample_A(rng, synth)
    else:
        A_, cast = np.broadcast_to(np.asarray(A, np.float32), (3,)).copy(), "given"
    d, name, near, far = _draw_depth(image, rng, synth, prior, depth)
    b_map, variation = _draw_beta(rng, synth, far, beta, (h, w))
    t = transmission(d, b_map)
    linear = synth.linear_prob > 0 and rng.random() < synth.linear_prob
    if linear:
        hazy, t = _linear_haze(image, t, A_)
    else:
        hazy = atmospheric_scattering(image, t, A_)
    hazy, noise, quality = _camera_step(hazy, rng, synth)
    meta = {
        "A": [round(float(a), 4) for a in A_],
        "cast": cast,
        "linear": bool(linear),
        "noise": round(float(noise), 5),
        "jpeg_quality": int(quality),
        "beta": round(float(np.mean(b_map)), 5),
        "prior": name,
        "depth_near": round(near, 4),
        "depth_far": round(float(far), 4),
        "beta_variation": round(float(variation), 4),
        "mean_t": round(float(t.mean()), 4),
    }
    if return_transmission:
        meta["transmission"] = t
    if tensor is not None:
        out = torch.from_numpy(hazy).permute(2, 0, 1).to(device=tensor.device, dtype=tensor.dtype)
        return out, meta
    return hazy, meta
