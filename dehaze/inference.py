"""Run a dehazing generator on photos of any size: ONNX Runtime or PyTorch.

:class:`Dehazer` loads an exported ONNX model (or a training checkpoint). Models with the
atmospheric-scattering (``asm``) head are used in two scales (:mod:`dehaze.twoscale`): the
network runs once on a copy of the photo shrunk to the card's working size and predicts the
transmission t and the atmospheric light A there; t is brought to full size by a guided filter
and the scattering model is inverted at full size, in strips, so the result does not depend on
the photo's pixel count and memory stays bounded. ``strength`` scales the haze removed
(``t^strength``). Models that output the image itself (the ``image`` head) run in overlapping
tiles of a fixed size whose outputs are blended with feathered (linearly ramped) weights. :func:`restore_photo` applies any such function
to a :class:`~dehaze.io.Photo` keeping alpha, bit depth and grayscale; :func:`get_method`
names the model and the baselines (``"dcp"``, ``"hazy"``) the same way for the CLI and eval.

Example:
    >>> import numpy as np
    >>> fn = get_method("dcp")
    >>> fn(np.full((40, 50, 3), 0.6, np.float32)).shape
    (40, 50, 3)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dehaze.errors import CheckpointError, ConfigError, DehazeError
from dehaze.io import Photo, shrink_to_fit, to_float
from dehaze.twoscale import (
    NO_PROTECTION,
    Haze,
    Protection,
    apply_haze,
    check_strength,
    check_working_size,
    filter_settings,
    fit_haze,
    two_scale_settings,
    working_copy,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "METHODS",
    "MIN_TILE",
    "OVERLAP_RULE",
    "TILE_RULE",
    "Dehazer",
    "blend_ramp",
    "default_model_path",
    "feather_weights",
    "get_method",
    "identity",
    "read_card",
    "restore_photo",
    "tile_spans",
    "tiling_error",
]

DEFAULT_MODEL_NAME = "dehaze-default.onnx"
METHODS = ("model", "dcp", "hazy")
DEFAULT_TILE = 512  # tile side of image-head models: Dehazer, restore/eval --tile, DEHAZE_TILE
DEFAULT_OVERLAP = 64  # tile overlap; see `blend_ramp` and the seam test for the measurements
MIN_TILE = 64  # two network multiples (32): with the overlap rule below every tile has room left
TILE_RULE = f"0 (no tiling) or at least {MIN_TILE}"
OVERLAP_RULE = "at most a quarter of the tile"
AIRLIGHT_SIDE = 512  # untiled one-scale asm graphs: long side of the copy the airlight is estimated on
MIN_RAMP = 32  # narrowest blend across an overlap, in pixels
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def default_model_path() -> Path:
    """The model used when none is given: ``$DEHAZE_MODEL``, else ``<repo>/models/dehaze-default.onnx``.

    Raises:
        CheckpointError: the file does not exist.
    """
    env = os.environ.get("DEHAZE_MODEL")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "models" / DEFAULT_MODEL_NAME
    if not path.is_file():
        where = "DEHAZE_MODEL points to" if env else "the default model is"
        raise CheckpointError(
            f"no model found: {where} {path}, which does not exist; export one with "
            f"'dehaze export CHECKPOINT -o {path}', pass --model, or use --method dcp"
        )
    return path


def read_card(model_path: str | Path) -> dict | None:
    """The model card ``NAME.json`` beside ``NAME.onnx``, or None when there is none."""
    card = Path(model_path).with_suffix(".json")
    if not card.is_file():
        return None
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"model card {card} cannot be read: {exc}") from None


def identity(rgb: np.ndarray) -> np.ndarray:
    """The ``"hazy"`` method: the input itself, to score doing nothing."""
    return rgb


def tiling_error(tile: int | None, overlap: int | None = None) -> str | None:
    """Why ``tile`` and ``overlap`` break the tiling rule, or None when they keep it.

    The one rule, checked by :class:`Dehazer`, by the CLI when it parses ``--tile`` / ``--overlap``
    and by the service settings: the tile is 0 (no tiling) or at least :data:`MIN_TILE` pixels,
    and the overlap is 0 or more and at most a quarter of the tile (so it stays below half the
    tile :class:`Dehazer` rounds up to the network multiple, which :func:`tile_spans` needs).
    None means "not given".

    Example:
        >>> tiling_error(10), tiling_error(200, 60), tiling_error(200, 50)
        ('the tile must be 0 (no tiling) or at least 64, got 10', 'the overlap must be at most a quarter of the tile: 60 with tile 200', None)
    """
    if tile is not None and tile != 0 and tile < MIN_TILE:
        return f"the tile must be {TILE_RULE}, got {tile}"
    if overlap is not None and overlap < 0:
        return f"the overlap must be 0 or more, got {overlap}"
    if overlap is not None and tile and overlap * 4 > tile:
        return f"the overlap must be {OVERLAP_RULE}: {overlap} with tile {tile}"
    return None


def tile_spans(size: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Tiles along one axis as ``(start, stop)`` spans covering ``[0, size)``.

    Every start is a multiple of ``multiple``: the network's stride-2 grid then lines up with the
    one of the whole image, so a tile computes what the untiled network would (up to border
    effects, hidden by the overlap). Uses the fewest tiles of side at most ``tile`` (a multiple of
    ``multiple``) overlapping by at least ``overlap``, shrunk to the smallest common side that
    still does and spread evenly; the last one is cut at ``size``.

    Example:
        >>> tile_spans(1024, 512, 32, 32)  # 3 tiles of 384 rather than 3 of 512
        [(0, 384), (320, 704), (640, 1024)]
        >>> tile_spans(300, 512, 32, 32)
        [(0, 300)]
    """
    if size <= tile:
        return [(0, size)]
    # in whole blocks of `multiple` pixels (the image conceptually padded to a multiple)
    n_blocks, tile_b, over_b = -(-size // multiple), tile // multiple, -(-overlap // multiple)
    if tile_b <= over_b:
        raise ConfigError(f"tile {tile} leaves no room beyond the overlap {overlap} (multiple {multiple})")
    n = -(-(n_blocks - over_b) // (tile_b - over_b))  # fewest tiles with the required overlap
    side_b = -(-(n_blocks + (n - 1) * over_b) // n)  # smallest common side that still overlaps enough
    starts = [i * (n_blocks - side_b) // (n - 1) for i in range(n)]
    return [(b * multiple, min((b + side_b) * multiple, size)) for b in starts]


def blend_ramp(n: int, min_ramp: int = MIN_RAMP) -> np.ndarray:
    """Weight of the later tile across an overlap of ``n`` pixels (the earlier one gets ``1 - ramp``).

    Linear over the middle ``max(min_ramp, n // 2)`` pixels (all ``n`` when that is more); the
    outer pixels on each side, where a tile's output suffers most from its missing context, get
    no weight.

    Example:
        >>> blend_ramp(3).tolist()
        [0.25, 0.5, 0.75]
        >>> blend_ramp(6, min_ramp=2).tolist()  # the outermost pixel on each side gets no weight
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    r = min(n, max(min_ramp, n // 2))
    a = (n - r) // 2
    return np.clip((np.arange(n, dtype=np.float32) - a + 1) / (r + 1), 0.0, 1.0)


def feather_weights(size: int, lo: int, hi: int, min_ramp: int = MIN_RAMP) -> np.ndarray:
    """1-D blend weights of a tile of length ``size`` overlapping its neighbours by ``lo`` pixels at
    its start and ``hi`` at its end (0: no neighbour); neighbouring weights sum to one.

    Example:
        >>> feather_weights(6, 0, 3).round(2).tolist()
        [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    w = np.ones(size, np.float32)
    if lo:
        w[:lo] = blend_ramp(lo, min_ramp)
    if hi:
        w[size - hi :] = np.minimum(w[size - hi :], 1.0 - blend_ramp(hi, min_ramp))
    return w


def _ramps(spans: list[tuple[int, int]], i: int) -> np.ndarray:
    """Feather weights of tile ``i``: ramps over the whole overlap with each neighbour."""
    start, stop = spans[i]
    lo = spans[i - 1][1] - start if i > 0 else 0
    hi = stop - spans[i + 1][0] if i + 1 < len(spans) else 0
    return feather_weights(stop - start, lo, hi)


def _check_rgb(rgb: np.ndarray, keep_integers: bool = False) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got {getattr(rgb, 'shape', type(rgb).__name__)}")
    if keep_integers and rgb.dtype in (np.uint8, np.uint16):
        return rgb
    return to_float(rgb)


def _is_torch_file(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return False
    if path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        return True
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch.save zip or legacy pickle


def _cuda_usable() -> bool:
    """True only when a CUDA device can really run work, so CPU machines see no provider errors.

    Uses ``torch.cuda.is_available()`` when torch is already loaded; otherwise torch is not
    imported for this (it costs ~0.5 GB of memory) and an NVIDIA driver must be present. The
    ONNX session then still has to start on CUDA (see ``Dehazer``), else the CPU is used.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return True  # (a CPU-only torch says False even where onnxruntime-gpu could use the driver)
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg"))


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (cgroups, taskset)
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class Dehazer:
    """A dehazing generator as a function ``HxWx3 [0,1] -> HxWx3 [0,1]`` on photos of any size.

    Args:
        model: an exported ``.onnx`` file (card ``.json`` beside it is read when present) or a
            training checkpoint (PyTorch backend); None -> :func:`default_model_path`.
        device: ``"auto"`` (CUDA when really usable, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        tile: ``image``-head models: tile side in pixels (rounded up to the network multiple);
            images larger than this in either direction are processed in overlapping tiles. 0
            disables tiling, else at least :data:`MIN_TILE` (:func:`tiling_error`). (``asm``
            models run in two scales and do not tile.)
        overlap: minimum overlap of neighbouring tiles, blended with linear ramps that give the
            outer pixels of each overlap no weight (see :func:`blend_ramp`); None -> 64, at most
            a quarter of the tile.
        threads: CPU threads for one image (ONNX Runtime intra-op; PyTorch keeps its global setting);
            None -> the cores this process may use.
        providers: explicit ONNX Runtime providers, overriding ``device``.
        working_size: ``asm`` models: long side of the copy the network runs on; None -> the
            card's (a checkpoint: :data:`dehaze.twoscale.DEFAULT_WORKING_SIZE`).
        strength: the default ``strength`` of calls (two-scale models), in [0, 1.5].
        protect: two-scale models: keep the output within black and white as the card's
            ``two_scale["protect"]`` says (:class:`dehaze.twoscale.Protection`; a card without it:
            nothing to keep); False: the plain inversion ``J = (I − A) / t + A``, as before.

    Attributes:
        name: model name (file stem, or the card's ``name``).
        card: the model card, or None.
        backend: ``"onnxruntime"`` or ``"torch"``.
        providers: execution providers in use (``["CPUExecutionProvider"]``, or the torch device).
        multiple: inputs are padded to multiples of this.
        two_scale: the two-scale settings (working size, guided filter, t_min, protect) of an
            ``asm`` model, or None for models that run tiled.
        protection: the :class:`~dehaze.twoscale.Protection` in use (all off with ``protect=False``).
        accepts_integer: True: uint8/uint16 photos are restored without a float copy of the whole
            photo (two-scale models), and come back with their dtype.

    Example:
        >>> dehazer = Dehazer("models/dehaze-default.onnx")  # doctest: +SKIP
        >>> dehazer(np.zeros((300, 500, 3), np.float32)).shape  # doctest: +SKIP
        (300, 500, 3)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        tile: int = DEFAULT_TILE,
        overlap: int | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
        working_size: int | None = None,
        strength: float = 1.0,
        protect: bool = True,
    ):
        path = Path(model) if model is not None else default_model_path()
        if not path.is_file():
            raise CheckpointError(f"model not found: {path}")
        if device != "auto" and device != "cpu" and not device.startswith("cuda"):
            raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
        if overlap is None:  # the default, kept within the rule for a small tile
            overlap = min(DEFAULT_OVERLAP, tile // 4)
        problem = tiling_error(tile, overlap)
        if problem:
            raise ConfigError(problem)
        self.path = path
        self.threads = threads or _default_threads()
        self.card = None
        if _is_torch_file(path):
            self._init_torch(path, device)
        else:
            self._init_onnx(path, device, providers)
        self.name = (self.card or {}).get("name") or path.stem
        self.tile = -(-tile // self.multiple) * self.multiple if tile else 0
        self.overlap = overlap
        if self.two_scale is not None and working_size is not None:
            try:
                working_size = check_working_size(working_size)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self.two_scale = {**self.two_scale, "working_size": working_size}
        self.accepts_integer = self.two_scale is not None
        self.protect = bool(protect)
        try:
            Protection.from_settings(self.two_scale)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the two_scale 'protect' settings are not valid: {exc}") from None
        try:
            self.strength = check_strength(strength)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.strength != 1.0 and self.two_scale is None:
            raise ConfigError(f"{self.name} has no ASM head: its strength cannot be set")

    # -- backends ---------------------------------------------------------------------------------

    def _init_onnx(self, path: Path, device: str, providers: list[str] | None) -> None:
        import onnxruntime as ort

        self.card = read_card(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: no provider warnings on CPU-only machines
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        cpu = ["CPUExecutionProvider"]
        if providers is None:
            want_cuda = device.startswith("cuda") or (device == "auto" and _cuda_usable())
            if want_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
                dev_id = int(device.split(":")[1]) if ":" in device else 0
                providers = [("CUDAExecutionProvider", {"device_id": dev_id}), *cpu]
            elif device.startswith("cuda"):
                raise ConfigError(f"device {device!r} requested but ONNX Runtime has no CUDA provider here")
            else:
                providers = cpu

        def session(providers: list) -> ort.InferenceSession:
            try:
                return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:
                raise CheckpointError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None

        try:
            self._session = session(providers)
        except CheckpointError:
            if device != "auto" or providers == cpu:
                raise
            self._session = session(cpu)  # CUDA would not start: the CPU then
        self.providers = self._session.get_providers()
        if device.startswith("cuda") and self.providers[0] != "CUDAExecutionProvider":
            raise ConfigError(f"device {device!r} requested but the CUDA provider could not start")
        names = [i.name for i in self._session.get_inputs()]
        if names not in (["input"], ["input", "airlight"]):
            raise CheckpointError(
                f"{path}: expected the inputs 'input' (and optionally 'airlight'), the model has {names}"
            )
        self.shares_airlight = names == ["input", "airlight"]
        outputs = [o.name for o in self._session.get_outputs()]
        meta = self._session.get_modelmeta().custom_metadata_map
        self.two_scale = None
        if outputs == ["transmission", "airlight_used"]:
            settings = (self.card or {}).get("two_scale") or json.loads(meta.get("two_scale") or "null")
            if not isinstance(settings, dict) or "working_size" not in settings:
                raise CheckpointError(f"{path}: a two-scale model needs its 'two_scale' settings (card or metadata)")
            self.two_scale = settings
        elif self.shares_airlight and outputs != ["output", "airlight_used"]:
            raise CheckpointError(f"{path}: unexpected outputs {outputs}")
        self.multiple = int((self.card or {}).get("input", {}).get("multiple") or meta.get("multiple") or 32)
        self.backend = "onnxruntime"

    def _init_torch(self, path: Path, device: str) -> None:
        import torch

        from dehaze.nets import load_generator

        if device == "auto":
            device = "cuda" if _cuda_usable() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but no CUDA device is usable")
        G, meta = load_generator(path, prefer_ema=True)
        self._G = G.to(device)
        self._device = torch.device(device)
        self.meta = meta
        self.providers = [str(self._device)]
        self.multiple = int(G.multiple)
        self.shares_airlight = getattr(G, "head", None) == "asm"
        self.two_scale = None
        if self.shares_airlight:
            # the guided filter on t: an older checkpoint's t_refine / t_refine_eps, else the defaults
            self.two_scale = two_scale_settings(*filter_settings(meta.get("weightless")), t_min=G.t_min)
        self.backend = "torch"

    def _run(self, batch: np.ndarray, airlight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 3, H, W) float32 in [-1, 1], H and W multiples of ``self.multiple`` -> same shape, and
        the (N, 3) airlight used (None for models without one). ``airlight`` None: estimate it."""
        if self.shares_airlight and airlight is None:
            airlight = np.full((len(batch), 3), -1.0, np.float32)
        if self.two_scale is not None:
            return self._run_haze(batch, airlight)
        if self.backend == "onnxruntime":
            if not self.shares_airlight:
                return self._session.run(["output"], {"input": batch})[0], None
            y, a = self._session.run(["output", "airlight_used"], {"input": batch, "airlight": airlight})
            return y, a
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device)
            if not self.shares_airlight:
                return self._G(x).float().cpu().numpy(), None
            y, _, a = self._G(x, return_asm=True, airlight=torch.from_numpy(airlight).to(self._device))
            return y.float().cpu().numpy(), a.flatten(1).float().cpu().numpy()

    def _run_haze(self, batch: np.ndarray, airlight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two-scale models: (N, 1, H, W) raw transmission and (N, 3) airlight."""
        if self.backend == "onnxruntime":
            t, a = self._session.run(["transmission", "airlight_used"], {"input": batch, "airlight": airlight})
            return t, a
        import torch

        with torch.inference_mode():
            t, a = self._G.haze(torch.from_numpy(batch).to(self._device), torch.from_numpy(airlight).to(self._device))
            return t.float().cpu().numpy(), a.flatten(1).float().cpu().numpy()

    # -- inference --------------------------------------------------------------------------------

    def _infer(self, rgb: np.ndarray, airlight: np.ndarray | None = None,
               transmission: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """One image through the network: pad to the multiple (replicate), run, crop back.

        Returns (HxWx3 image in [0, 1], or HxWx1 t for two-scale models, and the (3,) airlight or None).
        """
        h, w = rgb.shape[:2]
        m = self.multiple
        x = np.pad(rgb, ((0, (-h) % m), (0, (-w) % m), (0, 0)), mode="edge")
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None]) * 2.0 - 1.0
        a = None if airlight is None else np.asarray(airlight, np.float32).reshape(1, 3)
        y, used = self._run(x.astype(np.float32, copy=False), a)
        y = y[0, :, :h, :w].transpose(1, 2, 0)
        return (y if transmission else (y + 1.0) * 0.5), (None if used is None else used[0])

    def _check_airlight(self, airlight) -> np.ndarray:
        if not self.shares_airlight:
            raise DehazeError(f"{self.name} does not take an atmospheric light (it has no ASM head)")
        a = np.asarray(airlight, np.float32).reshape(-1)
        if a.shape != (3,) or not np.all((a >= 0) & (a <= 1)):
            raise DehazeError(f"the atmospheric light must be 3 RGB values in [0, 1], got {np.asarray(airlight).tolist()}")
        return a

    def estimate(self, rgb: np.ndarray, airlight=None) -> Haze:
        """Two-scale models: the haze of the whole photo, from one pass of the network on a copy
        shrunk to the working size (:func:`dehaze.twoscale.fit_haze`).

        Args:
            rgb: HxWx3 photo, float32 in [0, 1] or uint8/uint16.
            airlight: (3,) RGB atmospheric light in [0, 1] to use instead of the model's estimate.
        """
        rgb = _check_rgb(rgb, keep_integers=True)
        small = working_copy(rgb, int(self._two_scale()["working_size"]))
        return self.fit(small, *self.raw_haze(small, airlight), rgb.shape[:2])

    @property
    def protection(self) -> Protection:
        """The clipping protection of :meth:`fit` and :meth:`apply`: the card's ``two_scale["protect"]``
        (none on an older card), or none when the Dehazer was made with ``protect=False``."""
        if not self.protect or self.two_scale is None:
            return NO_PROTECTION
        return Protection.from_settings(self.two_scale)

    def _two_scale(self) -> dict:
        if self.two_scale is None:
            raise DehazeError(f"{self.name} is not a two-scale model (it has no ASM head)")
        return self.two_scale

    def raw_haze(self, small: np.ndarray, airlight=None) -> tuple[np.ndarray, np.ndarray]:
        """Two-scale models: the network's raw ``(t, A)`` on a working copy (``(h, w)`` float32 and
        ``(3,)``), before the guided filter; what :class:`dehaze.video.HazeStream` smooths over time.

        Args:
            small: (h, w, 3) float32 working copy in [0, 1] (:func:`dehaze.twoscale.working_copy`).
            airlight: (3,) RGB atmospheric light in [0, 1] to use instead of the model's estimate.
        """
        self._two_scale()
        a = None if airlight is None else self._check_airlight(airlight)
        x, used = self._infer(_check_rgb(small), a, transmission=True)
        return x[..., 0], used

    def fit(self, small: np.ndarray, t: np.ndarray, airlight, size: tuple[int, int]) -> Haze:
        """The :class:`~dehaze.twoscale.Haze` of a full-size photo of ``size`` (H, W) from ``t`` and
        ``airlight`` on its working copy ``small``, with this model's guided filter (and boundary
        constraint: :attr:`protection`)."""
        s = self._two_scale()
        return fit_haze(small, t, airlight, size, int(s.get("radius", 0)), float(s.get("eps", 1.0)),
                        float(s.get("t_min", 0.05)), protect=self.protection)

    def stream(self, **options):
        """A :class:`dehaze.video.HazeStream` over this model: frames of one video in order, with
        the haze smoothed over time (``options``: its keyword arguments)."""
        from dehaze.video import HazeStream

        return HazeStream(self, **options)

    def apply(self, rgb: np.ndarray, haze: Haze, strength: float | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Remove a :meth:`estimate` d haze from the full-size photo at ``strength`` (None -> :attr:`strength`),
        without running the network: e.g. a strength slider over one estimate."""
        rgb = _check_rgb(rgb, keep_integers=True)
        floor = self.two_scale.get("t_floor") if self.two_scale else None
        return apply_haze(rgb, haze, self.strength if strength is None else strength, t_floor=floor, out=out,
                          protect=self.protection)

    def estimate_airlight(self, rgb: np.ndarray) -> np.ndarray | None:
        """The atmospheric light (3,) the model estimates for the whole photo, from a shrunken copy;
        None for models that do not predict one (``image`` head)."""
        if not self.shares_airlight:
            return None
        if self.two_scale is not None:
            return self.estimate(rgb).airlight
        return self._infer(shrink_to_fit(_check_rgb(rgb), self.tile or AIRLIGHT_SIDE))[1]

    def __call__(self, rgb: np.ndarray, airlight: np.ndarray | None = None, strength: float | None = None) -> np.ndarray:
        """Dehaze ``rgb`` (HxWx3 float32 in [0, 1]) -> HxWx3 float32 in [0, 1].

        Two-scale models (``asm`` head) estimate the haze once on the working copy and remove it at
        full size (:meth:`estimate`, :func:`dehaze.twoscale.apply_haze`); they also take uint8 and
        uint16 photos and return the same dtype. Other models run tile by tile.

        Args:
            rgb: the hazy photo.
            airlight: (3,) RGB atmospheric light in [0, 1] to use instead of the model's estimate,
                e.g. one estimate reused over the frames of a video so they do not flicker, or a
                measured sky colour. Only for models with :attr:`shares_airlight`.
            strength: in [0, 1.5], two-scale models: 0 returns the photo, 1 removes the haze the
                model estimates, above 1 removes more (t becomes t^strength); None -> :attr:`strength`.
        """
        strength = self.strength if strength is None else check_strength(strength)
        if self.two_scale is not None:
            rgb = _check_rgb(rgb, keep_integers=True)
            return self.apply(rgb, self.estimate(rgb, airlight), strength)
        if strength != 1.0:
            raise DehazeError(f"{self.name} has no ASM head: its strength cannot be set")
        rgb = _check_rgb(rgb)
        if airlight is not None:
            airlight = self._check_airlight(airlight)
        h, w = rgb.shape[:2]
        t = self.tile
        if not t or (h <= t and w <= t):
            return np.clip(self._infer(rgb, airlight)[0], 0.0, 1.0)
        if airlight is None:
            airlight = self.estimate_airlight(rgb)
        out = np.zeros((h, w, 3), np.float32)
        wsum = np.zeros((h, w, 1), np.float32)
        rows = tile_spans(h, t, self.overlap, self.multiple)
        cols = tile_spans(w, t, self.overlap, self.multiple)
        for i, (y0, y1) in enumerate(rows):
            wy = _ramps(rows, i)
            for j, (x0, x1) in enumerate(cols):
                weight = (wy[:, None] * _ramps(cols, j)[None, :])[..., None]
                out[y0:y1, x0:x1] += self._infer(rgb[y0:y1, x0:x1], airlight)[0] * weight
                wsum[y0:y1, x0:x1] += weight
        out /= wsum
        return np.clip(out, 0.0, 1.0, out=out)

    def __repr__(self) -> str:
        return (
            f"Dehazer(name={self.name!r}, backend={self.backend!r}, providers={self.providers}, "
            f"multiple={self.multiple}, tile={self.tile}, overlap={self.overlap}, "
            f"two_scale={ {k: v for k, v in (self.two_scale or {}).items() if k != 'about'} or None})"
        )


def restore_photo(photo: Photo, fn: Callable[[np.ndarray], np.ndarray]) -> Photo:
    """Apply ``fn`` (HxWx3 [0,1] -> HxWx3 [0,1]) to a photo, keeping what the user expects.

    Grayscale stays grayscale (the result's luminance, repeated), alpha is passed through
    untouched, bit depth, format and ICC profile are kept, and the size must not change. A photo
    read with integer pixels (``read_photo(..., as_float=False)``) stays integer when ``fn`` takes
    them (``fn.accepts_integer``, e.g. a two-scale :class:`Dehazer`), so a 100-megapixel photo is
    never held as floats; other functions get float pixels.

    Example:
        >>> p = Photo(np.full((4, 4, 3), 0.5, np.float32), np.zeros((4, 4), np.uint8), 8, True, "PNG")
        >>> restore_photo(p, lambda x: x * 0.5).rgb[0, 0].tolist()
        [0.25, 0.25, 0.25]
    """
    rgb = photo.rgb
    integer = rgb.dtype in (np.uint8, np.uint16)
    if integer and not getattr(fn, "accepts_integer", False):
        rgb, integer = _check_rgb(rgb), False
    out = np.asarray(fn(rgb))
    if out.shape != photo.rgb.shape:
        raise ValueError(f"the restoration changed the image shape from {photo.rgb.shape} to {out.shape}")
    if integer:
        if photo.grayscale:
            out = np.repeat((out @ _LUMA + 0.5).astype(out.dtype)[..., None], 3, axis=2)
    else:
        out = out.astype(np.float32, copy=False)
        if photo.grayscale:
            out = np.repeat((out @ _LUMA)[..., None], 3, axis=2)
        elif np.shares_memory(out, photo.rgb):  # e.g. "hazy": never modify the input in place
            out = out.copy()
        out = np.clip(out, 0.0, 1.0, out=out)  # in place: a 4K image is 100 MB per copy
    return Photo(
        rgb=out,
        alpha=photo.alpha,
        bit_depth=photo.bit_depth,
        grayscale=photo.grayscale,
        format=photo.format,
        icc_profile=photo.icc_profile,
    )


def get_method(
    name: str, model: str | Path | None = None, **dehazer_kwargs
) -> Callable[[np.ndarray], np.ndarray]:
    """A restoration function by name, so models and baselines are used the same way.

    Args:
        name: ``"model"`` (a :class:`Dehazer` of ``model``, default model if None), ``"dcp"``
            (dark channel prior), ``"hazy"`` (identity: the input's own score), or the path of a
            model file (to compare several models in one run).
        model: model file for ``"model"``.
        dehazer_kwargs: passed to :class:`Dehazer` (device, tile, overlap, threads, providers,
            working_size, strength, protect). A ``strength`` other than 1 is refused for the
            baselines; ``protect`` means nothing to them.

    Returns:
        A callable ``HxWx3 -> HxWx3`` with a ``name`` attribute where the object allows it.
    """
    key = name.strip()
    if dehazer_kwargs.get("strength", 1.0) != 1.0 and key in ("dcp", "hazy", "identity"):
        raise ConfigError(f"the strength applies to the model, not to the {key} method")
    if key == "model":
        return Dehazer(model, **dehazer_kwargs)
    if key == "dcp":
        from dehaze.classical import DarkChannelPrior

        return DarkChannelPrior()
    if key in ("hazy", "identity"):
        return identity
    if Path(key).is_file():
        return Dehazer(key, **dehazer_kwargs)
    raise ConfigError(f"unknown method {name!r}; use model, dcp, hazy or the path of a model file")
