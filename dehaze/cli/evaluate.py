"""``dehaze eval``: score models and baselines on a paired folder, side by side.

    dehaze eval SET_DIR [--method model,dcp,hazy] [--model FILE] [--json] [--limit N]

For every method: PSNR (dB), SSIM and spectral distance per image and their means, and the
runtime in seconds per megapixel (after one warm-up call). ``hazy`` is the identity: the input's
own score. This module parses the arguments and prints; the scoring is :mod:`dehaze.evaluation`
(pairs from :func:`dehaze.pairs.find_pairs`), which needs no torch.
"""

from __future__ import annotations

import argparse
import json

from dehaze.cli.restore import TILE_HELP, tile_arg
from dehaze.errors import ConfigError
from dehaze.evaluation import evaluate, format_table, score  # noqa: F401  (score: the old import path, still used)
from dehaze.inference import DEFAULT_TILE, TILE_RULE, get_method


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="score models and baselines on hazy/clear pairs",
        description=(
            "PSNR, SSIM and spectral distance per image and mean, and seconds per megapixel, for each "
            "method on a paired folder (hazy/ + clear/ or GT/, or *_hazy / *_GT files)."
        ),
    )
    p.add_argument("set_dir", metavar="SET_DIR", help="paired folder, e.g. ../shared/data/sots-dev/indoor")
    p.add_argument(
        "--method", default="model", help="comma-separated: model, dcp, hazy, or model files (default model)"
    )
    p.add_argument("--model", metavar="FILE", help="model for 'model' (default: models/dehaze-default.onnx)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--per-image", action="store_true", help="also list every image in the table (always in --json)"
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N pairs")
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
    kwargs = dict(device=args.device, tile=args.tile, threads=args.threads)
    methods = {n: get_method(n, args.model, **kwargs) for n in names}
    report = evaluate(args.set_dir, methods, limit=args.limit, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report, per_image=args.per_image))
    return 0
