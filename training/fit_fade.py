#!/usr/bin/env python
"""Fit the fog-free and foggy models of FADE (:mod:`dehaze.metrics.noref`) and write ``fade_model.json``.

    python training/fit_fade.py --clean ../shared/data/clean --exclude training/splits/heldout-v1.txt \\
        -o dehaze/metrics/fade_model.json

FADE (Choi, You and Bovik, IEEE TIP 2015) measures how far a photo's fog-aware patch statistics are
from those of fog-free photos (``Df``) and of foggy photos (``Dff``). The original statistics, fitted
on 500 fog-free and 500 real foggy photos, come as MATLAB files we cannot fetch, so both models are
fitted here, from the photos the dehazing model trains on:

- **fog-free**: the training clean photos, i.e. every photo under ``--clean`` except the held-out
  split (``--exclude``; the rule of the trainer's ``data.exclude``: the same
  :class:`dehaze.data.SyntheticHazeDataset` lists them);
- **foggy**: the same photos under dense synthetic haze (:func:`dehaze.haze.synthesize_pair` with
  :data:`DENSE_HAZE`, one draw per photo, seeded): optical depth about 0.6 to 3.5, so the mean
  transmission of a photo is mostly 0.05 to 0.4, thick fog, as the foggy end of FADE's scale.

Each model is the mean and covariance of the 12 patch features pooled over the photos, each photo
weighing the same (:func:`dehaze.metrics.noref.fit_mvg`), computed at the working size FADE uses
(:data:`dehaze.metrics.noref.FADE_SIDE`). The measurement sets (``sots-dev``, ``real-hazy``,
``real-hazy-large``) are refused: they must never shape a metric that is then measured on them.
The output also records the fitted photos' own FADE (median, clean and hazy) as a check.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from dehaze.errors import ConfigError, run_reporting_errors
from dehaze.io import read_photo, write_bytes_atomic
from dehaze.metrics.noref import FADE_SIDE, FadeModel, fade_features, fit_mvg, mvg_distance

HERE = Path(__file__).resolve().parent
# dense fog: relative depth mapped to [0.4, 0.8] .. 1 of the far distance 1, beta 1.5 .. 3.5 (capped at
# optical depth 3.5): t = exp(-beta d) between 0.03 and 0.55, per-photo mean mostly 0.05 .. 0.4
DENSE_HAZE = {"preset": "indoor", "beta": [1.5, 3.5], "depth_far": [1.0, 1.0], "depth_near": [0.4, 0.8]}
MEASUREMENT_SETS = ("sots-dev", "real-hazy", "real-hazy-large")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fit_fade.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--clean", nargs="+", default=[str(HERE.parent.parent / "shared" / "data" / "clean")],
                   help="folders of clean training photos (searched recursively)")
    p.add_argument("--exclude", nargs="*", default=[str(HERE / "splits" / "heldout-v1.txt")],
                   help="split files of photos to leave out (the held-out split)")
    p.add_argument("-o", "--out", default=str(HERE.parent / "dehaze" / "metrics" / "fade_model.json"))
    p.add_argument("--seed", type=int, default=0, help="seed of the haze draws (photo i uses seed + i)")
    p.add_argument("--side", type=int, default=FADE_SIDE, help=f"working long side in px ({FADE_SIDE})")
    p.add_argument("--limit", type=int, help="only the first N photos (a quick try)")
    return p.parse_args(argv)


def training_photos(roots: list[str], splits: list[str]) -> list[Path]:
    """The clean photos training sees: every photo under ``roots`` but those of the split files."""
    from dehaze.data import SyntheticHazeDataset, read_split
    from dehaze.haze import HazeSynthesizer

    for root in roots:
        parts = {p.lower() for p in Path(root).resolve().parts}
        bad = sorted(parts.intersection(MEASUREMENT_SETS))
        if bad:
            raise ConfigError(f"{root}: {bad[0]} is a measurement set; FADE's models are fitted on training photos only")
    exclude = [rel for s in splits for rel in read_split(s)]
    return SyntheticHazeDataset(roots, 8, HazeSynthesizer(), exclude=exclude).files


def image_mvg(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def fit(args: argparse.Namespace) -> int:
    from dehaze.haze import HazeSynthesizer, synthesize_pair

    photos = training_photos(args.clean, args.exclude)[: args.limit]
    if len(photos) < 2:
        raise ConfigError("FADE's models need at least two photos")
    synth = HazeSynthesizer.from_dict(DENSE_HAZE)
    clean_feats, hazy_feats, clean_mvgs, hazy_mvgs, mean_t = [], [], [], [], []
    t0 = time.time()
    for i, path in enumerate(photos):
        rgb = read_photo(path).rgb
        clear, hazy, meta = synthesize_pair(rgb, args.seed + i, synth, return_transmission=True)
        fc, fh = fade_features(clear, args.side), fade_features(hazy, args.side)
        clean_feats.append(fc)
        hazy_feats.append(fh)
        clean_mvgs.append(image_mvg(fc))
        hazy_mvgs.append(image_mvg(fh))
        mean_t.append(float(np.mean(meta["transmission"])))
        if (i + 1) % 50 == 0 or i + 1 == len(photos):
            print(f"{i + 1}/{len(photos)} photos, {time.time() - t0:.0f} s", file=sys.stderr)
    free_mean, free_cov, n_img, n_free = fit_mvg(clean_feats)
    fog_mean, fog_cov, _, n_fog = fit_mvg(hazy_feats)

    def density(mvg):
        df = mvg_distance(*mvg, free_mean, free_cov)
        return df / (mvg_distance(*mvg, fog_mean, fog_cov) + 1)

    d_clean = [density(m) for m in clean_mvgs]
    d_hazy = [density(m) for m in hazy_mvgs]
    about = {
        "command": shlex.join(["python", "training/fit_fade.py", *args.argv]),
        "fog_free": f"{n_img} training clean photos ({n_free} patches): {', '.join(args.clean)} minus "
                    f"{', '.join(args.exclude) or 'nothing'}; each photo weighs the same",
        "foggy": f"the same {n_img} photos under dense synthetic haze ({n_fog} patches), one draw per photo, "
                 f"seed {args.seed} + photo index",
        "haze": synth.to_dict(),
        "haze_mean_transmission": {q: round(float(np.percentile(mean_t, p)), 3)
                                   for q, p in (("p5", 5), ("median", 50), ("p95", 95))},
        "fitted_photos_fade_median": {"clean": round(float(np.median(d_clean)), 4),
                                      "hazy": round(float(np.median(d_hazy)), 4)},
        "fitted_photos_clean_below_hazy": round(float(np.mean(np.array(d_clean) < np.array(d_hazy))), 4),
        "note": "fitted here, not the MATLAB release's statistics: absolute FADE values differ from MATLAB FADE's",
    }
    model = FadeModel(free_mean, free_cov, fog_mean, fog_cov, args.side, about)
    write_bytes_atomic(args.out, (json.dumps(model.to_dict(), indent=1) + "\n").encode())
    print(json.dumps(about, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    args.argv = argv
    return run_reporting_errors(fit, args)


if __name__ == "__main__":
    sys.exit(main())
