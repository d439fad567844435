"""``python -m dehaze.metrics REAL_DIR FAKE_DIR``: spectral discrepancy and FID/KID of two image folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dehaze.errors import DehazeError, InputError
from dehaze.metrics.gan import INCEPTION_ENV, INCEPTION_FILES, _checkpoint_dir, fid_kid, load_inception
from dehaze.metrics.spectral import (
    mean_power_spectrum,
    plot_power_spectra,
    plot_spectrum_differences,
    spectral_discrepancy,
    spectrum_difference_map,
)
from dehaze.spectral import num_bins


def _load_folder(path: str, limit: int, size: int | None) -> torch.Tensor:
    from dehaze.gan.data import ImageFolder

    ds = ImageFolder(path, resolution=size)
    n = len(ds) if not limit else min(limit, len(ds))
    return torch.stack([ds[i] for i in range(n)])


def main(argv: list[str] | None = None) -> int:
    """``python -m dehaze.metrics REAL_DIR FAKE_DIR [--fid] [--inception PATH] [--out DIR]``."""
    p = argparse.ArgumentParser(
        prog="python -m dehaze.metrics",
        description="Spectral discrepancy (always) and FID/KID (--fid) of two image folders.",
        epilog=f"Inception weights (never downloaded): --inception PATH, else ${INCEPTION_ENV}, else "
               f"{INCEPTION_FILES[0]} or {INCEPTION_FILES[1]} in $TORCH_HOME/hub/checkpoints/ "
               f"(here: {_checkpoint_dir()}/).")
    p.add_argument("real", help="folder of real images (sub-folders allowed)")
    p.add_argument("fake", help="folder of generated images")
    p.add_argument("--fid", action="store_true", help="also compute FID and KID (needs Inception weights)")
    p.add_argument("--inception", help="Inception-v3 weights file (see dehaze.metrics.gan for the search order)")
    p.add_argument("--size", type=int, default=None, help="resize both sets to SIZE×SIZE (default: as read)")
    p.add_argument("--limit", type=int, default=0, help="use at most this many images of each folder")
    p.add_argument("--out", help="write the spectrum plot and difference map into this folder")
    args = p.parse_args(argv)
    try:
        extractor = load_inception(args.inception) if args.fid else None  # fail before any work
        real = _load_folder(args.real, args.limit, args.size)
        fake = _load_folder(args.fake, args.limit, args.size)
        if real.shape[-2:] != fake.shape[-2:]:
            raise InputError(f"real images are {tuple(real.shape[-2:])} but fake ones {tuple(fake.shape[-2:])}; "
                             "pass --size")
        pr, pf = mean_power_spectrum(real), mean_power_spectrum(fake)
        res = spectral_discrepancy(pr, pf, nyquist=min(real.shape[-2:]) // 2)
        if extractor is not None:
            res.update(fid_kid(real, fake, extractor))
        if args.out:
            out = Path(args.out)
            plot_power_spectra(pr, {"fake": pf}, min(real.shape[-2:]), out / "power_spectrum.png")
            plot_spectrum_differences({"fake": spectrum_difference_map(real, fake)}, out / "spectrum_difference.png")
    except DehazeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"bins={num_bins(*real.shape[-2:])} n_real={len(real)} n_fake={len(fake)}")
    for k, v in res.items():
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
