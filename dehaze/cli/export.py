"""``dehaze export``: a training checkpoint to ONNX plus its model card.

    dehaze export CHECKPOINT -o models/NAME.onnx [--opset 18] [--no-ema] [--no-check]

Writes ``NAME.onnx`` (dynamic batch, height and width; input ``input``, output ``output``, NCHW
RGB float32 in [-1, 1]) and ``NAME.json`` beside it, after checking ONNX Runtime against PyTorch.
"""

from __future__ import annotations

import argparse
import sys

MIN_OPSET = 18  # = dehaze.export.MIN_OPSET; that module imports torch, so it is loaded only in run()


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="export a checkpoint's generator to ONNX with a model card",
        description=(
            "Export the (EMA) generator of a training checkpoint to ONNX with the dynamo exporter, check "
            "ONNX Runtime against PyTorch on two input sizes, and write the model card NAME.json beside it."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="training checkpoint (.pt)")
    p.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="output .onnx file, e.g. models/NAME.onnx"
    )
    p.add_argument(
        "--opset", type=int, default=MIN_OPSET, help=f"ONNX opset, {MIN_OPSET} or newer ({MIN_OPSET})"
    )
    p.add_argument("--no-ema", action="store_true", help="export the raw generator weights, not the EMA ones")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dehaze.export import export_onnx

    card = export_onnx(
        args.checkpoint, args.output, opset=args.opset, check=not args.no_check, prefer_ema=not args.no_ema
    )
    parity = card["parity"]["max_abs_error"]
    check = "not checked" if parity is None else f"max |ONNX - PyTorch| = {parity:.2e}"
    print(
        f"wrote {args.output} ({card['size_bytes'] / 1e6:.1f} MB, {card['parameters']:,} parameters, "
        f"{card['weights']} weights, {check}) and its card {card['name']}.json",
        file=sys.stderr,
    )
    return 0
