"""``dehaze eval``: score models and baselines on a folder, side by side.

    dehaze eval SET_DIR [--method model,dcp,hazy] [--model FILE] [--json] [--limit N]
        [--no-reference] [--sheet FILE]

On a paired folder (ground truth in ``clear/`` or ``GT/``, or ``*_GT`` files), for every method:
PSNR (dB), SSIM and spectral distance per image and their means. On a folder without ground truth
(real hazy photos), or with ``--no-reference``: FADE fog density, pixels newly clipped to black and
white, brightness ratio and noise amplification in flat areas per photo, their means and medians,
and with ``--sheet FILE`` a contact sheet of thumbnails (hazy | each method). Both report the
runtime in seconds per megapixel (after one warm-up call). ``hazy`` is the identity: the input's
own score. This module parses the arguments and prints; the scoring is :mod:`dehaze.evaluation`
(pairs from :func:`dehaze.pairs.find_pairs`), which needs no torch.
"""

from __future__ import annotations

import argparse
import json

from dehaze.cli.restore import TILE_HELP, tile_arg
from dehaze.errors import ConfigError
from dehaze.evaluation import (  # noqa: F401  (score: the old import path, still used)
    SHEET_WIDTH,
    evaluate,
    evaluate_noref,
    format_noref_table,
    format_table,
    has_ground_truth,
    score,
)
from dehaze.inference import DEFAULT_TILE, TILE_RULE, get_method


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="score models and baselines on hazy/clear pairs or on hazy photos alone",
        description=(
            "On a paired folder (hazy/ + clear/ or GT/, or *_hazy / *_GT files): PSNR, SSIM and spectral "
            "distance per image and mean. On a folder of photos without ground truth (or with "
            "--no-reference): FADE fog density (lower = less fog), pixels newly clipped to black/white, "
            "brightness ratio and noise amplification in flat areas, per photo, mean and median "
            "(docs/no-reference.md). Both: seconds per megapixel, for each method."
        ),
    )
    p.add_argument(
        "set_dir", metavar="SET_DIR",
        help="paired folder (e.g. ../shared/data/sots-dev/indoor) or folder of hazy photos (../shared/data/real-hazy)",
    )
    p.add_argument(
        "--method", default="model", help="comma-separated: model, dcp, hazy, or model files (default model)"
    )
    p.add_argument("--model", metavar="FILE", help="model for 'model' (default: models/dehaze-default.onnx)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--per-image", action="store_true", help="also list every image in the table (always in --json)"
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N pairs (or photos)")
    p.add_argument(
        "--no-reference", action="store_true",
        help="score without ground truth even where there is some (the hazy images only); "
        "automatic for a folder without clear/ or GT/ and without *_GT files",
    )
    p.add_argument(
        "--sheet", metavar="FILE",
        help="no-reference scoring: also write a contact sheet there (PNG, or JPEG by the extension): a row "
        "per photo, columns hazy | each method, labelled with FADE",
    )
    p.add_argument(
        "--sheet-width", type=int, default=SHEET_WIDTH, metavar="PX",
        help=f"thumbnail width of the contact sheet ({SHEET_WIDTH})",
    )
    p.add_argument(
        "--tile", type=tile_arg, default=DEFAULT_TILE, metavar="N", help=f"{TILE_HELP}: {TILE_RULE} ({DEFAULT_TILE})"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all available cores)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.method.split(",") if n.strip()]
    if not names:
        raise ConfigError("--method is empty; use e.g. model,dcp,hazy")
    if len(set(names)) != len(names):
        raise ConfigError(f"--method names a method twice: {args.method}")
    if args.sheet_width < 16:
        raise ConfigError(f"--sheet-width must be at least 16 px, got {args.sheet_width}")
    no_reference = args.no_reference or not has_ground_truth(args.set_dir)
    if args.sheet and not no_reference:
        raise ConfigError(f"{args.set_dir} has ground truth: --sheet comes with no-reference scoring, add --no-reference")
    kwargs = dict(device=args.device, tile=args.tile, threads=args.threads)
    methods = {n: get_method(n, args.model, **kwargs) for n in names}
    if no_reference:
        report = evaluate_noref(args.set_dir, methods, limit=args.limit, progress=not args.json,
                                sheet=args.sheet, sheet_width=args.sheet_width)
        table = format_noref_table
    else:
        report = evaluate(args.set_dir, methods, limit=args.limit, progress=not args.json)
        table = format_table
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report, per_image=args.per_image))
    return 0
