"""``dehaze synth``: turn a folder of clean photos into hazy/clear pairs in the RESIDE layout.

    dehaze synth CLEAN_DIR -o OUT_DIR [--per-image N] [--seed S] [--preset indoor|outdoor|dense|mixed]
                 [--haze "{preset: outdoor, cast_prob: 1, casts: {sand: 1}}"]

writes ``OUT_DIR/clear/<stem>.png``, ``OUT_DIR/hazy/<stem>_<k>.png`` (k = 1..N) and
``OUT_DIR/meta.jsonl`` (one line per hazy image: file names, A, beta, depth prior, depth range,
mean transmission). Every file is written atomically; ``dehaze.data.find_pairs(OUT_DIR)`` pairs
everything written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dehaze.data import IMAGE_EXTENSIONS, clear_candidates, find_pairs, list_images, read_rgb
from dehaze.errors import ConfigError, InputError
from dehaze.haze import PRESETS, float01, haze_from_config, haze_preset, synthesize_haze
from dehaze.io import write_bytes_atomic


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="make hazy/clear training pairs from clean photos",
        description=(
            "Add synthetic haze (atmospheric scattering model with random depth priors) to every photo "
            "in CLEAN_DIR (searched recursively) and write the pairs in the RESIDE layout: "
            "OUT_DIR/clear/<stem>.png, OUT_DIR/hazy/<stem>_<k>.png and OUT_DIR/meta.jsonl."
        ),
    )
    p.add_argument("clean_dir", metavar="CLEAN_DIR", help="folder of clean photos")
    p.add_argument(
        "-o", "--output", metavar="OUT_DIR", required=True, help="output folder (not inside CLEAN_DIR)"
    )
    p.add_argument(
        "--per-image", type=int, default=1, metavar="N", help="hazy versions per photo (default 1)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="mixed", help="haze parameter ranges (default mixed)"
    )
    p.add_argument(
        "--haze",
        metavar="YAML",
        help="haze ranges instead of --preset, as in a training config's data.haze: a YAML mapping or list, "
        "inline or a file, e.g. \"{preset: outdoor, cast_prob: 1, casts: {sand: 1}}\" (docs/real-world-haze.md)",
    )
    p.add_argument("--overwrite", action="store_true", help="write into an OUT_DIR that already holds pairs")
    p.set_defaults(run=run)
    return p


def _png(rgb01: np.ndarray) -> bytes:
    u8 = (np.clip(rgb01, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _check_folders(clean: Path, out: Path) -> list[Path]:
    files = list_images(clean, recursive=True)
    if not files:
        raise InputError(
            f"{clean}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder or below"
        )
    c, o = clean.resolve(), out.resolve()
    if o == c or c in o.parents:
        raise InputError(f"{out}: the output folder must not be inside the clean folder {clean}")
    if o in c.parents and c.relative_to(o).parts[0].lower() in ("clear", "hazy"):
        raise InputError(f"{clean}: the clean folder must not be the output's clear/ or hazy/ folder")
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise InputError(
                f"{clean}: {by_stem[f.stem]} and {f} have the same name {f.stem!r}; the output needs unique names"
            )
        by_stem[f.stem] = f
    return files


def _read_haze(text: str):
    """``--haze``: inline YAML, or the path of a YAML file."""
    import yaml

    try:
        is_file = Path(text).is_file()
    except OSError:  # an inline mapping longer than a file name may be
        is_file = False
    if is_file:
        text = Path(text).read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--haze is not valid YAML: {str(exc).splitlines()[0]}") from None


def run(args: argparse.Namespace) -> int:
    clean, out = Path(args.clean_dir), Path(args.output)
    if args.per_image < 1:
        raise InputError(f"--per-image must be at least 1, got {args.per_image}")
    files = _check_folders(clean, out)
    stems = {f.stem for f in files}
    for s in sorted(stems):  # a hazy name must lead back to its own photo, never to another one
        for k in range(1, args.per_image + 1):
            other = next((x for x in clear_candidates(f"{s}_{k}") if x in stems), None)
            if other != s:
                raise InputError(
                    f"{clean}: the hazy image {s}_{k}.png would pair with the photo {other!r} instead of "
                    f"{s!r}; rename one of them"
                )
    if out.exists() and not args.overwrite and any(out.iterdir()):
        raise InputError(f"{out}: folder is not empty; choose a new folder or pass --overwrite")
    synth = haze_preset(args.preset) if args.haze is None else haze_from_config(_read_haze(args.haze))
    (out / "clear").mkdir(parents=True, exist_ok=True)
    (out / "hazy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    lines = []
    for f in tqdm(files, desc="synth", unit="photo", disable=not sys.stderr.isatty()):
        clear = read_rgb(f)
        clear = float01(clear)
        clear = np.round(clear * 255.0) / 255.0  # what the 8-bit PNG will hold
        write_bytes_atomic(out / "clear" / f"{f.stem}.png", _png(clear))
        for k in range(1, args.per_image + 1):
            hazy, meta = synthesize_haze(clear, rng, synth)
            name = f"{f.stem}_{k}.png"
            write_bytes_atomic(out / "hazy" / name, _png(hazy))
            lines.append(json.dumps({"hazy": f"hazy/{name}", "clear": f"clear/{f.stem}.png", **meta}))
    write_bytes_atomic(out / "meta.jsonl", ("\n".join(lines) + "\n").encode())
    pairs = find_pairs(out)  # the output must pair cleanly, as training will read it
    print(f"wrote {len(lines)} hazy images for {len(files)} photos to {out} ({len(pairs)} pairs)")
    return 0
