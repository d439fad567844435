"""Recover a trainable generator checkpoint from an exported ONNX model (e.g. to fine-tune a shipped one).

The dynamo exporter folds each batch norm into the convolution before it (``W' = W·γ/σ``,
``b' = β − γ·μ/σ`` as ``<conv>.weight`` and ``<conv>.weight_bias`` or ``<conv>.bias``), so the
recovered generator is the same network with ``norm: none``: every convolution has a bias and
computes what the exported graph computes. The card's ``G_config`` gives the architecture.

    python training/onnx_to_checkpoint.py models/dehaze-default.onnx -o runs/shipped/last.pt

The checkpoint has ``G`` and ``G_config`` (no optimiser state): use it with ``train.init`` or
``dehaze export``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dehaze.errors import CheckpointError
from dehaze.nets import build_generator
from dehaze.train.checkpoint import save_checkpoint

PREFIXES = ("net.G.G.", "net.G.", "net.")  # PadToMultiple(AirlightIO/HazeIO(G)) or PadToMultiple(G)


def generator_from_onnx(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The generator of an exported ONNX model, with batch norms folded (``norm: none``), and its config."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "G_config" not in meta:
        raise CheckpointError(f"{path} has no G_config metadata: not exported by 'dehaze export'")
    cfg = json.loads(meta["G_config"])
    cfg = {**cfg, "norm": "none"}
    G = build_generator(cfg)
    weights = {}
    for init in model.graph.initializer:
        name = init.name
        for p in PREFIXES:
            if name.startswith(p):
                name = name[len(p):]
                break
        else:
            continue
        if name.endswith(".weight_bias"):
            name = name[: -len("_bias")].rsplit(".", 1)[0] + ".bias"
        weights[name] = torch.from_numpy(np.array(numpy_helper.to_array(init)))
    state = G.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise CheckpointError(f"{path}: the graph has no weights for {missing[:5]}")
    G.load_state_dict({k: weights[k] for k in state})
    return G.eval(), dict(G.config)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path, help="an .onnx file written by 'dehaze export'")
    ap.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    args = ap.parse_args(argv)
    try:
        G, cfg = generator_from_onnx(args.model)
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    card = args.model.with_suffix(".json")
    config = json.loads(card.read_text()).get("training_config") if card.is_file() else None
    save_checkpoint(args.output, {"G": G.state_dict(), "G_config": cfg, "config": config, "step": 0,
                                  "source": f"{args.model.name} (batch norms folded)"})
    print(f"wrote {args.output} ({sum(p.numel() for p in G.parameters()):,} parameters, norm: none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
