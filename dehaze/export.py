"""Export a trained generator to ONNX, check it against PyTorch, and write its model card.

The (EMA) generator of a training checkpoint is exported with the dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) with dynamic batch, height and width. The generator
pads internally with a branch on the input size (``if ph or pw``), which ``torch.export``
cannot keep for symbolic sizes, so the exported module is the generator behind
:class:`PadToMultiple`: the replicate padding to the multiple and the crop back are written
without a branch (padding by zero is a no-op), and the generator then always sees multiples.
The ONNX graph therefore accepts any ``H x W``; :class:`~dehaze.inference.Dehazer` pads
tiles itself anyway. Outputs are compared with PyTorch on random inputs of two sizes (one not
a multiple) before the file is put in place: a difference above the tolerance raises
:class:`~dehaze.errors.ParityError` and leaves no model file.

Example:
    >>> card = export_onnx("runs/dehaze/last.pt", "models/dehaze-default.onnx")  # doctest: +SKIP
    >>> card["parity"]["max_abs_error"] < 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.errors import ConfigError, ParityError
from dehaze.io import atomic_file, write_bytes_atomic
from dehaze.twoscale import (
    DEFAULT_EPS,
    DEFAULT_RADIUS,
    DEFAULT_WORKING_SIZE,
    check_working_size,
    filter_settings,
    two_scale_settings,
)

__all__ = ["HazeIO", "PadToMultiple", "export_onnx", "filter_settings", "parity_check", "sha256_file",
           "two_scale_settings", "write_card"]

MIN_OPSET = 18
TOLERANCE = 1e-4
IO_CONVENTION = {"layout": "NCHW", "color": "RGB", "range": [-1.0, 1.0], "dtype": "float32"}
HAZE_IO = {
    "airlight": "input airlight: (N, 3) float32 RGB atmospheric light in [0, 1]; -1 = estimate it from this input",
    "transmission": "output transmission: (N, 1, H, W) float32 in [t_min, 1], the network's raw t",
    "airlight_used": "output airlight_used: (N, 3) the atmospheric light",
}
DEFAULT_T_REFINE, DEFAULT_T_REFINE_EPS = DEFAULT_RADIUS, DEFAULT_EPS  # the two-scale filter's defaults


class PadToMultiple(nn.Module):
    """Replicate-pad ``(B, C, H, W)`` to multiples of ``multiple``, run ``net``, crop back.

    Branch-free, so ``torch.export`` keeps H and W symbolic.

    Example:
        >>> m = PadToMultiple(nn.Identity(), 16)
        >>> m(torch.zeros(1, 3, 20, 7)).shape
        torch.Size([1, 3, 20, 7])
    """

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor, airlight: torch.Tensor | None = None):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.multiple, 0, (-h) % self.multiple), mode="replicate")
        y = self.net(x) if airlight is None else self.net(x, airlight)
        if isinstance(y, tuple):  # (image, other outputs that are not images)
            return (y[0][..., :h, :w], *y[1:])
        return y[..., :h, :w]


class HazeIO(nn.Module):
    """An ``asm``-head generator as a haze estimator for two-scale inference (:mod:`dehaze.twoscale`).

    ``forward(x, airlight)`` -> ``(transmission, airlight_used)``: the raw transmission t
    (B, 1, H, W) at the input's size, before any guided filter, and the atmospheric light (B, 3)
    used; ``airlight`` (B, 3) replaces the network's estimate where it is >= 0 (-1: estimate it).
    The guided filter, its upsampling to the full photo and the inversion run outside the graph,
    so one exported model serves every photo size.
    """

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G
        self.multiple = G.multiple

    def forward(self, x: torch.Tensor, airlight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, A = self.G.haze(x, airlight)
        return t, A.flatten(1)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parity_sizes(multiple: int) -> list[tuple[int, int, int]]:
    # (batch, H, W): one size that is not a multiple and non-square, one larger multiple
    return [(2, 2 * multiple + 3, 3 * multiple - 5), (1, 4 * multiple, 3 * multiple)]


def parity_check(
    onnx_path: str | Path,
    G: nn.Module,
    sizes: list[tuple[int, int, int]] | None = None,
    tol: float = TOLERANCE,
    seed: int = 0,
    refine: nn.Module | None = None,
) -> float:
    """Compare ONNX Runtime (CPU) with PyTorch on random inputs in [-1, 1].

    Args:
        onnx_path: the exported model.
        G: the PyTorch generator (eval mode).
        sizes: ``(batch, H, W)`` inputs; default two sizes, one not a multiple of ``G.multiple``.
        tol: largest allowed absolute difference.
        refine: ``asm`` models: the guided filter on t (:class:`~dehaze.nets.unet.GuidedUpsample`) the
            card records; the two-scale inversion of the graph's t and A is compared with ``G.haze``
            then ``refine`` then the inversion. Default: the default filter.

    Returns:
        The largest absolute difference over all sizes.

    Raises:
        ParityError: the difference exceeds ``tol`` or the shapes differ.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    with_airlight = [i.name for i in sess.get_inputs()] == ["input", "airlight"]
    for k, (b, h, w) in enumerate(sizes or _parity_sizes(getattr(G, "multiple", 32))):
        x = torch.rand(b, 3, h, w, generator=gen) * 2 - 1
        feed = {"input": x.numpy()}
        with torch.inference_mode():
            if with_airlight:  # estimated A on the first size, a given one on the others
                a = torch.full((b, 3), -1.0) if k == 0 else torch.rand(b, 3, generator=gen) * 0.5 + 0.5
                feed["airlight"] = a.numpy()
                ref = torch.cat([t.flatten(1) for t in HazeIO(G)(x, a)], 1).numpy()
            else:
                ref = G(x).flatten(1).numpy()
        outs = sess.run(None, feed)
        got = np.concatenate([o.reshape(o.shape[0], -1) for o in outs], 1)
        if got.shape != ref.shape or outs[0].shape != (b, 1 if with_airlight else 3, h, w):
            raise ParityError(
                f"ONNX output shape {outs[0].shape} differs from PyTorch for input {(b, 3, h, w)}"
            )
        err = float(np.abs(got - ref).max())
        if with_airlight:  # and the restored image: two-scale inversion of ONNX's t and A vs PyTorch's
            err = max(err, _two_scale_error(G, refine or _default_refine(G), x, outs))
        if not np.isfinite(err) or err > tol:
            raise ParityError(
                f"ONNX Runtime and PyTorch differ by {err:.3g} (> {tol:g}) on a {b}x3x{h}x{w} input; "
                "the exported model was not written"
            )
        worst = max(worst, err)
    return worst


def _default_refine(G: nn.Module) -> nn.Module:
    from dehaze.nets.unet import GuidedUpsample

    return GuidedUpsample(DEFAULT_T_REFINE, DEFAULT_T_REFINE_EPS, G.t_min)


def _two_scale_error(G: nn.Module, refine: nn.Module, x: torch.Tensor, outs: list[np.ndarray]) -> float:
    """Largest difference between PyTorch's restored image (``G.haze``'s raw t, the guided filter
    ``refine``, the inversion) and the two-scale inversion (:mod:`dehaze.twoscale`) of the graph's t
    and A, at the input's own size."""
    from dehaze.nets.unet import invert_scattering
    from dehaze.twoscale import apply_haze, fit_haze

    with torch.inference_mode():
        image = (x + 1) / 2
        t, A = G.haze(x, torch.from_numpy(outs[1]))
        ref = invert_scattering(image, refine(t, image, image), A).permute(0, 2, 3, 1).numpy()
    worst = 0.0
    for i in range(len(x)):
        img = image[i].permute(1, 2, 0).numpy().astype(np.float32)
        haze = fit_haze(img, outs[0][i, 0], outs[1][i], img.shape[:2], refine.radius, refine.eps, refine.t_min)
        worst = max(worst, float(np.abs(apply_haze(img, haze) - ref[i]).max()))
    return worst


def write_card(path: str | Path, card: dict) -> Path:
    """Write a model card as indented JSON (atomically); values JSON cannot hold are written as text."""
    path = Path(path)
    write_bytes_atomic(path, (json.dumps(card, indent=2, default=str) + "\n").encode())
    return path


def _versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _training_data(config: dict | None) -> dict | None:
    """The data section of a training config (``data``, or every key mentioning data)."""
    if not isinstance(config, dict):
        return None
    if isinstance(config.get("data"), dict):
        return config["data"]
    found = {k: v for k, v in config.items() if "data" in k.lower()}
    return found or None


def export_onnx(
    checkpoint: str | Path | list[str | Path],
    out_path: str | Path,
    opset: int = MIN_OPSET,
    check: bool = True,
    prefer_ema: bool = True,
    t_refine: int | None = None,
    t_refine_eps: float | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
) -> dict:
    """Export a checkpoint's generator to ``out_path`` (``.onnx``) and write ``NAME.json`` beside it.

    Args:
        checkpoint: training checkpoint (see :func:`dehaze.nets.load_generator`), or a list of
            snapshots of one run whose weights are averaged (:func:`dehaze.nets.average_generators`).
        out_path: destination ``.onnx`` file; its folder is created.
        opset: ONNX opset, 18 or newer.
        check: run :func:`parity_check` before putting the file in place.
        prefer_ema: export the EMA weights when the checkpoint has them.
        t_refine: ``asm`` models: radius in working-size pixels of the guided filter that brings t to
            full size (:class:`dehaze.nets.unet.GuidedUpsample`), 0 for plain upsampling; recorded in
            the card's ``two_scale``. None: an older checkpoint's ``G_config["t_refine"]``, else
            :data:`DEFAULT_T_REFINE`.
        t_refine_eps: the guided filter's regulariser; None: the checkpoint's, else
            :data:`DEFAULT_T_REFINE_EPS`.
        working_size: ``asm`` models: long side of the copy the network runs on (two-scale
            inference, :mod:`dehaze.twoscale`); recorded in the card.

    Returns:
        The model card (also written to ``out_path.with_suffix(".json")``).

    Raises:
        CheckpointError: unreadable checkpoint. ConfigError: opset too old, or a bad t_refine.
        ParityError: ONNX Runtime disagrees with PyTorch.
    """
    import onnx

    try:
        check_working_size(working_size)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("working size", "working_size", 1)) from None
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is too old; the dynamo exporter needs {MIN_OPSET} or newer")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise ConfigError(f"the output file must end in .onnx, got {out_path.name}")
    sources = [Path(c) for c in checkpoint] if isinstance(checkpoint, (list, tuple)) else [Path(checkpoint)]
    G, meta = _generator_to_export(sources, prefer_ema)
    asm = getattr(G, "head", None) == "asm"
    refine = _refine_to_export(G, meta, asm, t_refine, t_refine_eps)
    two_scale = two_scale_settings(refine.radius, refine.eps, G.t_min, working_size) if asm else None
    model = _to_onnx(G, asm, opset)
    _add_metadata(model, out_path.stem, G, meta, two_scale)
    data = model.SerializeToString()
    onnx.checker.check_model(model)

    with atomic_file(out_path) as f:  # a failed parity check leaves no file behind
        f.write(data)
        f.flush()
        max_err = parity_check(f.name, G, refine=refine) if check else None

    card = _model_card(out_path, G, meta, sources, two_scale, opset, max_err, check)
    write_card(out_path.with_suffix(".json"), card)
    return card


def _generator_to_export(sources: list[Path], prefer_ema: bool) -> tuple[nn.Module, dict]:
    """The generator to export and its checkpoint's metadata: one checkpoint, or several averaged.
    ``meta["G_config"]`` loses the weightless settings of older configs (``meta["weightless"]``)."""
    from dehaze.nets import average_generators, load_generator, weight_layout

    if len(sources) == 1:
        G, meta = load_generator(sources[0], prefer_ema=prefer_ema)
    else:
        G, meta = average_generators(sources, prefer_ema=prefer_ema)
    meta["G_config"] = weight_layout(meta["G_config"])
    return G, meta


def _refine_to_export(G: nn.Module, meta: dict, asm: bool, t_refine: int | None,
                      t_refine_eps: float | None) -> nn.Module | None:
    """The guided filter on t the card records (``asm`` models; None for the others)."""
    from dehaze.nets.unet import GuidedUpsample

    if not asm:
        if t_refine is not None or t_refine_eps is not None:
            raise ConfigError("t_refine sets the guided filter on t of an asm-head model; this one has no t")
        return None
    radius, eps = filter_settings(meta.get("weightless"), t_refine, t_refine_eps)
    try:
        return GuidedUpsample(radius, eps, G.t_min)
    except ValueError as exc:
        raise ConfigError(f"t_refine={radius!r}, t_refine_eps={eps!r}: {exc}") from None


def _to_onnx(G: nn.Module, asm: bool, opset: int):
    """``torch.onnx.export(..., dynamo=True)`` of ``G`` behind :class:`PadToMultiple` (and
    :class:`HazeIO` for an ``asm`` head), with dynamic batch, height and width: the ModelProto."""
    m = int(G.multiple)
    wrapped = PadToMultiple(HazeIO(G) if asm else G, m).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=1, max=65536)
    width = torch.export.Dim("width", min=1, max=65536)
    # batch 2 and a size that is not a multiple: nothing gets specialised to the example
    example = torch.rand(2, 3, 2 * m + 3, 3 * m - 5) * 2 - 1
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), torch.inference_mode(False), warnings.catch_warnings():
            # the airlight input shares the image's batch axis; the exporter says so for each export
            warnings.filterwarnings("ignore", message=r"(# )?The axis name: batch will not be used")
            program = torch.onnx.export(
                wrapped,
                (example, -torch.ones(2, 3)) if asm else (example,),
                input_names=["input", "airlight"] if asm else ["input"],
                output_names=["transmission", "airlight_used"] if asm else ["output"],
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=({0: batch, 2: height, 3: width}, {0: batch}) if asm else ({0: batch, 2: height, 3: width},),
                verbose=False,
            )
    except Exception as exc:
        raise RuntimeError(f"ONNX export failed: {exc}\n{log.getvalue()}") from exc
    return program.model_proto


def _add_metadata(model, name: str, G: nn.Module, meta: dict, two_scale: dict | None) -> None:
    """The ONNX file's own metadata: name, multiple, input convention, G_config (and two_scale)."""
    card_meta = {
        "name": name,
        "multiple": str(int(G.multiple)),
        "input": "input NCHW RGB float32 in [-1, 1]",
        "G_config": json.dumps(meta.get("G_config"), default=str),
        **({"two_scale": json.dumps(two_scale)} if two_scale else {}),
    }
    for key, value in card_meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _model_card(
    out_path: Path,
    G: nn.Module,
    meta: dict,
    sources: list[Path],
    two_scale: dict | None,
    opset: int,
    max_err: float | None,
    check: bool,
) -> dict:
    """The model card of the file just written to ``out_path``."""
    from dehaze.nets import count_parameters

    m = int(G.multiple)
    steps = meta.get("steps") or [meta.get("step")]
    config = meta.get("config")
    return {
        "name": out_path.stem,
        "file": out_path.name,
        "sha256": sha256_file(out_path),
        "size_bytes": out_path.stat().st_size,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "input": {"name": "input", **IO_CONVENTION, "multiple": m},
        **({"haze": HAZE_IO, "two_scale": two_scale} if two_scale
           else {"output": {"name": "output", **IO_CONVENTION}}),
        "dynamic_axes": ["batch", "height", "width"],
        "parameters": count_parameters(G),
        "G_config": meta.get("G_config"),
        "weights": meta.get("weights"),
        "step": meta.get("step"),
        "training_config": config,
        "training_data": _training_data(config),
        "metrics": meta.get("metrics") or {},
        "checkpoint": [{"file": c.name, "step": s, "sha256": sha256_file(c)} for c, s in zip(sources, steps)]
        if len(sources) > 1 else {"file": sources[0].name, "sha256": sha256_file(sources[0])},
        **({"averaged_checkpoints": len(sources)} if len(sources) > 1 else {}),
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=True)",
        "versions": _versions(),
        "parity": {
            "max_abs_error": max_err,
            "tolerance": TOLERANCE,
            "sizes": _parity_sizes(m) if check else [],
        },
    }
