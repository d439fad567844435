"""All the metrics, in one place.

- :mod:`dehaze.metrics.restoration`: PSNR, SSIM and spectral distance of a restored image against
  its ground truth, in NumPy (evaluation) and in torch (training's validation);
- :mod:`dehaze.metrics.noref`: scores of a restored photo without ground truth (NumPy/OpenCV): FADE
  fog density, newly clipped pixels, brightness ratio, noise amplification in flat areas;
- :mod:`dehaze.metrics.gan`: FID and KID of generated image sets (Inception-v3);
- :mod:`dehaze.metrics.spectral`: spectral discrepancy of generated image sets (no weights), and
  the reproduction report's spectrum figures.

``python -m dehaze.metrics REAL_DIR FAKE_DIR [--fid]`` scores two image folders.

Importing this package imports no torch (evaluation runs in the base install): the restoration
and no-reference metrics are imported here, the GAN and spectral ones, which need torch, on first use
(``from dehaze.metrics import fid_kid`` works and imports torch then).
"""

from __future__ import annotations

import importlib

from dehaze.metrics.noref import (
    FADE_FEATURES,
    FADE_SIDE,
    FadeModel,
    brightness_ratio,
    fade,
    fade_details,
    fade_features,
    fit_mvg,
    load_fade_model,
    mvg_distance,
    newly_clipped,
    noise_amplification,
)
from dehaze.metrics.restoration import psnr, psnr_np, spectral_distance, spectral_distance_np, ssim, ssim_np

_LAZY = {
    **dict.fromkeys(
        ("INCEPTION_FILES", "INCEPTION_ENV", "InceptionWeightsError", "find_inception_weights", "InceptionFeatures",
         "load_inception", "extract_features", "feature_statistics", "frechet_distance", "fid_from_features",
         "kid_from_features", "fid_kid"), "dehaze.metrics.gan"),
    **dict.fromkeys(
        ("radial_power_spectrum", "mean_power_spectrum", "spectral_discrepancy", "mean_log_magnitude",
         "spectrum_difference_map", "plot_power_spectra", "plot_spectrum_differences", "save_image_grid"),
        "dehaze.metrics.spectral"),
}

__all__ = [
    "FADE_FEATURES", "FADE_SIDE", "FadeModel", "brightness_ratio", "fade", "fade_details", "fade_features",
    "fit_mvg", "load_fade_model", "mvg_distance", "newly_clipped", "noise_amplification",
    "psnr", "psnr_np", "spectral_distance", "spectral_distance_np", "ssim", "ssim_np", *_LAZY,
]


def __getattr__(name: str):
    """The GAN and spectral metrics, imported (with torch) when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
