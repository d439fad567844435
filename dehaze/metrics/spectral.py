"""Spectral metrics of image sets, for GANs (weights-free), and the report's figures.

All on the luma (ITU-R 601, :func:`dehaze.spectral.to_gray`) of images in ``[-1, 1]``, with
the orthonormal centred 2-D FFT and the radius bins of :mod:`dehaze.spectral` (bin ``r`` =
frequencies of ``r ≤ ρ < r+1`` cycles per short side; the DC bin is dropped, so a 32×32
image has bins 1..22, where bins above 16 exist only in the spectrum's corners):

- mean power spectrum ``P̄(r)``: the power ``|F|²`` averaged over each ring of each image,
  then over images (unnormalised, so it is comparable across models; the reproduction
  report's Fig. 3 is ``log10 P̄`` of real vs generated images);
- **high-frequency spectral discrepancy** ``D_hf = mean_{r ≥ R/2} |log10 P̄_real(r) − log10 P̄_fake(r)|``
  over the upper half of the ``R`` bins (for 32×32: radii 12..22 of bins 1..22), in decades (0.1 ≈ a 26 %
  power ratio). ``D_all`` is the same over all bins. 0 means identical mean spectra.
  ``D_hf`` splits into radii up to the Nyquist rate (``spec_hf_inner``, 12..16 for 32×32) and
  the corners beyond it (``spec_corner``, 17..22);
- the 2-D map ``|mean log|F_real|| − mean log|F_fake|||`` (the paper's Fig. 6; the paper
  writes ``|E[F(real)] − E[F(fake)]|``, but a mean of complex coefficients cancels to ~0
  away from DC, so we average the log magnitude, as its figure's colour scale suggests).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from dehaze.errors import InputError
from dehaze.metrics.gan import Images, image_batches
from dehaze.spectral import log_magnitude_map, radial_bins, to_gray

__all__ = [
    "radial_power_spectrum", "mean_power_spectrum", "spectral_discrepancy", "mean_log_magnitude",
    "spectrum_difference_map", "plot_power_spectra", "plot_spectrum_differences", "save_image_grid",
]


# ------------------------------------------------------------------------------------ spectra


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got {getattr(x, 'shape', type(x))}")


def radial_power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Ring-mean power ``|F|²`` of each image's luma: ``(B, R)``, ``R = num_bins(H, W)``, unnormalised.

    Example:
        >>> radial_power_spectrum(torch.rand(2, 3, 32, 32) * 2 - 1).shape
        torch.Size([2, 22])
    """
    _check_images(x)
    h, w = x.shape[-2:]
    f = torch.fft.fftshift(torch.fft.fft2(to_gray(x.float()), norm="ortho"), dim=(-2, -1))
    power = (f.real ** 2 + f.imag ** 2).reshape(x.shape[0], -1).double()
    idx, counts, n = radial_bins(h, w, power.device)
    sums = power.new_zeros(x.shape[0], n).index_add_(1, idx, power)
    return (sums / counts)[:, 1:]  # drop DC


def mean_power_spectrum(images: Images, batch: int = 500) -> np.ndarray:
    """``P̄(r)``: :func:`radial_power_spectrum` averaged over all images → ``(R,)`` float64."""
    total, n = None, 0
    for x in image_batches(images, batch):
        p = radial_power_spectrum(x).sum(0)
        total = p if total is None else total + p
        n += x.shape[0]
    if not n:
        raise InputError("no images to compute a spectrum of")
    return (total / n).cpu().numpy()


def spectral_discrepancy(p_real: np.ndarray, p_fake: np.ndarray, start: float = 0.5,
                         nyquist: int | None = None) -> dict:
    """``D_hf`` (bins from ``start·R`` on) and ``D_all``: mean |log10 P̄_real − log10 P̄_fake| (decades).

    With ``nyquist`` (the short side / 2, in bins), ``D_hf`` is also split into the part inside
    the Nyquist circle (``spec_hf_inner``: radii up to ``nyquist``) and the corners beyond it
    (``spec_corner``), which only the diagonal frequencies reach.

    Example:
        >>> spectral_discrepancy(np.ones(4), np.array([1.0, 1.0, 10.0, 10.0]))
        {'spec_hf': 1.0, 'spec_all': 0.5}
        >>> spectral_discrepancy(np.ones(4), np.array([1.0, 1.0, 1.0, 10.0]), nyquist=3)["spec_corner"]
        1.0
    """
    p_real, p_fake = np.asarray(p_real, np.float64), np.asarray(p_fake, np.float64)
    if p_real.shape != p_fake.shape or p_real.ndim != 1:
        raise ValueError(f"spectra must be 1-D of equal length, got {p_real.shape} and {p_fake.shape}")
    d = np.abs(np.log10(p_real + 1e-20) - np.log10(p_fake + 1e-20))  # d[i] is radius bin i + 1
    k = int(math.floor(start * d.size))
    out = {"spec_hf": float(d[k:].mean()), "spec_all": float(d.mean())}
    if nyquist is not None and k < nyquist < d.size:
        out["spec_hf_inner"] = float(d[k:nyquist].mean())
        out["spec_corner"] = float(d[nyquist:].mean())
    return out


def mean_log_magnitude(images: Images, batch: int = 500) -> np.ndarray:
    """Mean over images of the centred log-magnitude spectrum ``log|F|`` of the luma → ``(H, W)``."""
    total, n = None, 0
    for x in image_batches(images, batch):
        m = log_magnitude_map(x.float(), normalize=False)[:, 0].double().sum(0)
        total = m if total is None else total + m
        n += x.shape[0]
    if not n:
        raise InputError("no images to compute a spectrum of")
    return (total / n).cpu().numpy()


def spectrum_difference_map(real: Images, fake: Images) -> np.ndarray:
    """``|mean log|F(real)| − mean log|F(fake)||`` as an ``(H, W)`` array (the paper's Fig. 6)."""
    return np.abs(mean_log_magnitude(real) - mean_log_magnitude(fake))


# ------------------------------------------------------------------------------------ figures and files


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_fig(fig, path: str | Path) -> None:
    from dehaze.train.checkpoint import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110,
                                                   bbox_inches="tight"))
    _plt().close(fig)


def plot_power_spectra(real: np.ndarray, fakes: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]],
                       size: int, path: str | Path | None = None, title: str = ""):
    """Fig. 3 of the reproduction report: ``log10 P̄(r)`` of real images and of each model.

    Args:
        real: ``P̄_real`` ``(R,)``.
        fakes: name → ``P̄`` or ``(mean, std)`` of ``log10 P̄`` over seeds (drawn as a band).
        size: the short image side (frequencies are shown in units of the Nyquist rate ``size/2``).
        path: write a PNG (atomically) when given; otherwise return the figure.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    f = np.arange(1, len(real) + 1) / (size / 2)
    ax.plot(f, np.log10(real), color="black", lw=2, label="real")
    for name, v in fakes.items():
        if isinstance(v, tuple):
            mean, std = v
            line, = ax.plot(f, mean, lw=1.5, label=name)
            ax.fill_between(f, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        else:
            ax.plot(f, np.log10(v), lw=1.5, label=name)
    ax.axvline(f[len(f) // 2], color="grey", ls=":", lw=1)
    ax.text(f[len(f) // 2], ax.get_ylim()[1], " D_hf band →", va="top", fontsize=8, color="grey")
    ax.set(xlabel="spatial frequency (1 = Nyquist)", ylabel="log10 mean power", title=title or "mean power spectrum")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if path is None:
        return fig
    _save_fig(fig, path)
    return None


def plot_spectrum_differences(maps: dict[str, np.ndarray], path: str | Path | None = None, title: str = ""):
    """Fig. 6 of the paper: one panel per model of ``|mean log|F_real|| − mean log|F_fake|||``, common scale."""
    plt = _plt()
    n = max(len(maps), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 0.8, 3.2), squeeze=False)
    vmax = max(float(m.max()) for m in maps.values()) if maps else 1.0
    im = None
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), fraction=0.046, pad=0.04, label="|Δ mean log|F||")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is None:
        return fig
    _save_fig(fig, path)
    return None


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> None:
    """Write images in ``[-1, 1]`` as one PNG grid (atomically, through :mod:`dehaze.io`)."""
    from torchvision.utils import make_grid

    from dehaze.io import Photo, write_photo

    _check_images(images)
    grid = make_grid((images.float().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    rgb = grid.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    write_photo(path, Photo(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, format="PNG"), fmt="PNG")
