"""``dehaze export``: a training checkpoint to ONNX plus its model card.

    dehaze export CHECKPOINT [CHECKPOINT ...] -o models/NAME.onnx [--opset 18] [--no-ema] [--no-check]
                  [--t-refine RADIUS] [--t-refine-eps EPS] [--working-size PX] [--eval SET_DIR ...]

Writes ``NAME.onnx`` (dynamic batch, height and width; input ``input``, output ``output``, NCHW
RGB float32 in [-1, 1]) and ``NAME.json`` beside it, after checking ONNX Runtime against PyTorch.
Several checkpoints of one run (its ``snapshot-*.pt``) are averaged into one generator.
With ``--eval``, the exported model is scored with ``dehaze eval`` (beside the DCP baseline and the
hazy input) on each paired folder, and the card records the means and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dehaze.twoscale import DEFAULT_EPS as DEFAULT_T_REFINE_EPS
from dehaze.twoscale import DEFAULT_RADIUS as DEFAULT_T_REFINE
from dehaze.twoscale import DEFAULT_WORKING_SIZE

MIN_OPSET = 18  # = dehaze.export.MIN_OPSET; that module imports torch, so it is loaded only in run() (tested equal)


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="export a checkpoint's generator to ONNX with a model card",
        description=(
            "Export the (EMA) generator of a training checkpoint to ONNX with the dynamo exporter, check "
            "ONNX Runtime against PyTorch on two input sizes, and write the model card NAME.json beside it."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", nargs="+",
                   help="training checkpoint (.pt); several snapshots of one run are averaged")
    p.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="output .onnx file, e.g. models/NAME.onnx"
    )
    p.add_argument(
        "--opset", type=int, default=MIN_OPSET, help=f"ONNX opset, {MIN_OPSET} or newer ({MIN_OPSET})"
    )
    p.add_argument("--no-ema", action="store_true", help="export the raw generator weights, not the EMA ones")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    p.add_argument("--t-refine", type=int, metavar="RADIUS",
                   help="ASM models: radius in working-size pixels of the guided filter that brings the "
                        "transmission map to full size (0: plain upsampling; default: an older checkpoint's "
                        f"t_refine, else {DEFAULT_T_REFINE}, the measured choice)")
    p.add_argument("--t-refine-eps", type=float, metavar="EPS",
                   help="the guided filter's regulariser in squared grey levels (default: an older checkpoint's "
                        f"t_refine_eps, else {DEFAULT_T_REFINE_EPS}; larger values smooth t across more edges)")
    p.add_argument("--working-size", type=int, default=None, metavar="PX",
                   help="ASM models: long side of the copy the network runs on in two-scale inference "
                        f"(default {DEFAULT_WORKING_SIZE}, the measured choice; see benchmarks/bench_two_scale.py)")
    p.add_argument("--eval", metavar="SET_DIR", action="append", default=[],
                   help="score the exported model on this paired folder and record it in the card (repeatable)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dehaze.export import export_onnx

    card = export_onnx(args.checkpoint, args.output, opset=args.opset, check=not args.no_check,
                       prefer_ema=not args.no_ema, t_refine=args.t_refine, t_refine_eps=args.t_refine_eps,
                       working_size=args.working_size or DEFAULT_WORKING_SIZE)
    parity = card["parity"]["max_abs_error"]
    check = "not checked" if parity is None else f"max |ONNX - PyTorch| = {parity:.2e}"
    averaged = f" averaged over {card['averaged_checkpoints']} checkpoints" if "averaged_checkpoints" in card else ""
    print(
        f"wrote {args.output} ({card['size_bytes'] / 1e6:.1f} MB, {card['parameters']:,} parameters, "
        f"{card['weights']} weights{averaged}, {check}) and its card {card['name']}.json",
        file=sys.stderr,
    )
    if args.eval:
        card["evaluation"] = evaluate_into_card(args.output, args.eval)
        from dehaze.export import write_card

        write_card(Path(args.output).with_suffix(".json"), card)
    return 0


def evaluate_into_card(model: str, set_dirs: list[str]) -> dict:
    """``dehaze eval SET --method model,dcp,hazy`` for each set: means, seconds per megapixel, command."""
    from dehaze.evaluation import evaluate, format_table
    from dehaze.inference import get_method

    methods = {name: get_method(name, model) for name in ("model", "dcp", "hazy")}
    out = {}
    for set_dir in set_dirs:
        report = evaluate(set_dir, methods, progress=sys.stderr.isatty())
        print(format_table(report), file=sys.stderr)
        out[Path(set_dir).name] = {
            "set": str(set_dir),
            "pairs": report["pairs"],
            "command": f"dehaze eval {set_dir} --method model,dcp,hazy --model {model}",
            "methods": {m: {**r["mean"], "seconds_per_megapixel": r["seconds_per_megapixel"]}
                        for m, r in report["methods"].items()},
        }
    return out
