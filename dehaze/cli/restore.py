"""``dehaze restore``: dehaze photos, videos and folders of them into an output folder.

    dehaze restore INPUT... -o OUT_DIR [--recursive] [--overwrite] [--method model|dcp|hazy]
                   [--model FILE] [--tile N] [--ext png] [--suffix _dehazed] [--device auto]
                   [--codec libx264] [--crf 20] [--preset fast] [--network-every 8]

Images and videos are recognised by their content, not their extension. Outputs keep the input's
name (plus ``--suffix``) and format, or take ``--ext``'s (photos); a video keeps its container
(:func:`dehaze.video.output_extension`) and is encoded with ``--codec`` / ``--crf`` / ``--preset``,
its frames dehazed by a :class:`dehaze.video.HazeStream` (the haze smoothed over time). With
``--recursive`` the input tree is mirrored under OUT_DIR. Existing outputs are skipped unless
``--overwrite``, and every output is written atomically, so an interrupted run simply continues
where it stopped when started again. A file that cannot be restored is reported and skipped; the
run goes on, prints a summary and exits 1. With ``--engine ray`` the photos are restored by the workers
of a Ray cluster (:mod:`dehaze.cli.ray_engine`) through the same functions, and the videos here.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dehaze.errors import ConfigError, DehazeError, InputError
from dehaze.inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    METHODS,
    OVERLAP_RULE,
    TILE_RULE,
    get_method,
    restore_photo,
    tiling_error,
)
from dehaze.io import (
    DEFAULT_MAX_PIXELS,
    EXTENSIONS,
    SUPPORTED_WRITE,
    format_for_extension,
    read_photo,
    sniff_format,
    write_photo,
)
from dehaze.twoscale import MAX_STRENGTH, check_strength
from dehaze.video import (
    DEFAULT_CRF,
    DEFAULT_PRESET,
    NETWORK_EVERY,
    VIDEO_EXTENSIONS,
    VideoOptions,
    check_crf,
    check_encoder,
    output_extension,
    per_frame,
    probe_video,
    restore_video,
    sniff_video,
)

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

TILE_HELP = (
    "tile side for large images, for models that output the image itself (models with the ASM head, "
    "such as the shipped one, run in two scales and ignore the tile)"
)


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def quality_arg(text: str) -> int:
    """``--quality``: 1-100, the rule of the API's ``quality`` parameter."""
    q = _whole_number(text)
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, got {q}")
    return q


def strength_arg(text: str) -> float:
    """``--strength``: a number in [0, 1.5] (the API's ``?strength=`` has the same rule)."""
    try:
        return check_strength(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("strength ")) from None


def positive_arg(text: str) -> int:
    """A whole number, 1 or more (``--network-every``)."""
    n = _whole_number(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def crf_arg(text: str) -> int:
    """``--crf``: 0 or more (the codec's own upper bound is checked when a video is written)."""
    n = _whole_number(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def tile_arg(text: str) -> int:
    """``--tile`` on its own, by :func:`dehaze.inference.tiling_error` (the overlap is checked by :class:`Tiling`)."""
    tile = _whole_number(text)
    problem = tiling_error(tile)
    if problem:
        raise argparse.ArgumentTypeError(problem.removeprefix("the tile "))
    return tile


class Tiling(argparse.Action):
    """Store ``--tile`` / ``--overlap`` and check the pair against the tiling rule
    (:func:`dehaze.inference.tiling_error`), in either order.

    argparse fills in the defaults before reading any option, so the other value is always there.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        problem = tiling_error(getattr(namespace, "tile", None), getattr(namespace, "overlap", None))
        if problem:
            raise argparse.ArgumentError(self, problem)


@dataclass
class Job:
    src: Path
    dst: Path | None  # None when the source is no image we can name an output for
    fmt: str | None  # output format ("video" for a clip: the container follows dst's extension)


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="dehaze photos, videos or folders of them",
        description=(
            "Dehaze image and video files and folders (recognised by content) into OUT_DIR. Existing "
            "outputs are skipped unless --overwrite, so an interrupted run continues where it stopped."
        ),
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image or video files, or folders")
    p.add_argument("-i", "--input", action="append", default=[], metavar="INPUT",
                   help="an image or video file or folder, as in Real-ESRGAN and BasicSR (repeatable)")
    p.add_argument(
        "-o", "--output", metavar="OUT_DIR", required=True, help="output folder (not inside an input folder)"
    )
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="descend into sub-folders, mirroring them under OUT_DIR",
    )
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument(
        "--method",
        default="model",
        help=f"{', '.join(METHODS)}, or a model file (default model); hazy restores nothing: it "
        "re-encodes the input (decoded and written again, e.g. as a baseline for eval)",
    )
    p.add_argument(
        "--model", metavar="FILE", help="ONNX model or checkpoint (default: models/dehaze-default.onnx)"
    )
    p.add_argument(
        "--strength",
        type=strength_arg,
        default=1.0,
        metavar="S",
        help=f"how much haze to remove, 0-{MAX_STRENGTH:g}: 0 leaves the photo as it is, 1 removes the haze the "
        "model estimates, more removes more (1)",
    )
    p.add_argument(
        "--no-protect",
        dest="protect",
        action="store_false",
        help="models with the ASM head: invert the haze model plainly, J = (I - A) / t + A, which can "
        "blow bright skies to white and crush shadows to black; by default the model card's clipping "
        "protection keeps the output within range (docs/two-scale.md)",
    )
    p.add_argument(
        "--tile",
        type=tile_arg,
        action=Tiling,
        default=DEFAULT_TILE,
        metavar="N",
        help=f"{TILE_HELP}: {TILE_RULE} ({DEFAULT_TILE})",
    )
    p.add_argument(
        "--overlap",
        type=_whole_number,
        action=Tiling,
        metavar="N",
        help=f"tile overlap in pixels: {OVERLAP_RULE} ({DEFAULT_OVERLAP}, or a quarter of a smaller tile)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all available cores)")
    p.add_argument(
        "--ext",
        metavar="EXT",
        help="output format of photos by extension: png, jpg, tif, webp, bmp (default: as input; "
        "videos keep their container)",
    )
    p.add_argument(
        "--suffix", default="", metavar="TEXT", help="added to each output name before the extension"
    )
    p.add_argument(
        "--quality", type=quality_arg, default=95, metavar="Q", help="JPEG/WEBP quality, 1-100 (95)"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse larger images and video frames ({DEFAULT_MAX_PIXELS:,})",
    )
    v = p.add_argument_group("videos")
    v.add_argument("--codec", metavar="NAME",
                   help="video encoder of FFmpeg (libx264, libx265, libvpx-vp9, libsvtav1, ffv1, ...; "
                   "default libx264, libvpx-vp9 for WebM); the audio is copied unchanged")
    v.add_argument("--crf", type=crf_arg, default=DEFAULT_CRF, metavar="N",
                   help="constant quality of x264/x265/VP9/AV1, lower is better (x264: 18 looks lossless; "
                   f"{DEFAULT_CRF})")
    v.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, metavar="NAME",
                   help=f"x264/x265 speed preset: {', '.join(PRESETS)} ({DEFAULT_PRESET})")
    v.add_argument("--network-every", type=positive_arg, default=NETWORK_EVERY, metavar="N",
                   help="run the network on every N-th frame and on the first after a scene cut; the "
                   f"haze is carried between (two-scale models; {NETWORK_EVERY})")
    c = p.add_argument_group("more than one machine")
    c.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: photos on the workers of a Ray cluster (Ray Data), videos "
                   "here (needs pip install 'ssd-dehaze[cluster]'; local)")
    c.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster: auto (the one this machine belongs to, or RAY_ADDRESS) or HOST:PORT; "
                   "default: a Ray instance started on this machine for the run")
    c.add_argument("--workers", type=positive_arg, metavar="N",
                   help="Ray actors, each holding one model (default: the cluster's CPUs / --threads)")
    p.set_defaults(run=run)
    return p


def _out_format(args: argparse.Namespace) -> tuple[str, str] | None:
    """(format, extension) chosen with --ext, or None to keep each input's."""
    if not args.ext:
        return None
    ext = "." + args.ext.lower().lstrip(".")
    fmt = format_for_extension("x" + ext)
    if fmt is None or fmt not in SUPPORTED_WRITE:
        raise ConfigError(f"--ext {args.ext}: unknown output format; use png, jpg, tif, webp or bmp")
    return fmt, ext


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _collect(inputs: list[str], out_dir: Path, recursive: bool) -> tuple[list[tuple[Path, Path]], int, int]:
    """(source, output path relative to OUT_DIR without extension change) for every candidate file.

    Returns the pairs, the number of ignored non-image files and of sub-folders left out.
    """
    out_res = out_dir.resolve()
    found: list[tuple[Path, Path]] = []
    ignored = subdirs = 0
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_file():
            found.append((path, Path(path.name)))
            continue
        if _inside(out_res, path.resolve()):
            raise InputError(
                f"output folder {out_dir} is the input folder {path} or inside it; choose a folder outside it"
            )
        walk = sorted(path.rglob("*") if recursive else path.iterdir())
        for f in walk:
            rel = f.relative_to(path)
            if any(part.startswith(".") for part in rel.parts):  # hidden files and our temp files
                continue
            if f.is_dir():
                subdirs += not recursive
                continue
            if not f.is_file():
                continue
            # by content; a broken file with an image or video extension is still tried, so it gets reported
            if (sniff_format(f) is None and format_for_extension(f) is None and sniff_video(f) is None
                    and f.suffix.lower() not in VIDEO_EXTENSIONS):
                ignored += 1
                continue
            found.append((f, rel))
    return found, ignored, subdirs


def _plan(args: argparse.Namespace) -> tuple[list[Job], list[tuple[Path, str]], int]:
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} exists and is not a folder")
    fixed = _out_format(args)
    found, ignored, subdirs = _collect(args.inputs, out_dir, args.recursive)
    if ignored:
        print(f"note: ignored {ignored} file(s) that are not images or videos", file=sys.stderr)
    if subdirs:
        print(f"note: left out {subdirs} sub-folder(s); use --recursive to include them", file=sys.stderr)
    jobs: list[Job] = []
    errors: list[tuple[Path, str]] = []
    taken: dict[Path, Path] = {}
    for src, rel in found:
        content = sniff_format(src)
        if _is_video(src, content):
            fmt, ext = "video", output_extension(src)
        elif fixed:
            fmt, ext = fixed
        else:
            named = format_for_extension(src)
            # keep the name's format when it is a real image format, else the content's
            fmt = named if named in SUPPORTED_WRITE else (content if content in SUPPORTED_WRITE else None)
            ext = src.suffix if named in SUPPORTED_WRITE else EXTENSIONS.get(fmt or "", "")
        if fmt is None:  # not an image we can write back: let the reader report why
            jobs.append(Job(src, None, None))
            continue
        known = format_for_extension(src) or src.suffix.lower() in VIDEO_EXTENSIONS
        stem = rel.name[: -len(src.suffix)] if src.suffix and known else rel.name
        dst = out_dir / rel.parent / f"{stem}{args.suffix}{ext}"
        key = dst.resolve()
        if key == src.resolve():
            raise InputError(
                f"{src}: the output would replace the input; choose another OUT_DIR or a --suffix"
            )
        if key in taken:
            if taken[key].resolve() == src.resolve():  # the same file named twice (e.g. file and folder)
                continue
            errors.append((src, f"same output name {dst} as {taken[key]}; skipped (use --suffix or --ext)"))
            continue
        taken[key] = src
        jobs.append(Job(src, dst, fmt))
    return jobs, errors, len(found)


def _is_video(src: Path, content: str | None) -> bool:
    """A video by its first bytes, or a file with a video's name and no image content (tried, so that
    a broken clip is reported)."""
    return sniff_video(src) is not None or (content is None and src.suffix.lower() in VIDEO_EXTENSIONS)


def _video_options(args: argparse.Namespace) -> VideoOptions:
    """--codec / --crf / --preset, checked before any clip is decoded (a bad one: exit 2)."""
    if args.codec:
        check_encoder(args.codec)
    check_crf(args.crf, args.codec)
    return VideoOptions(args.codec, args.crf, args.preset)


def _restore_clip(job: Job, fn, args: argparse.Namespace, options: VideoOptions) -> None:
    """One clip, with its own progress bar (frames, fps, time left) under the files' bar."""
    if getattr(fn, "two_scale", None) is not None:
        process = fn.stream(network_every=args.network_every).process  # a new temporal state per clip
    else:
        process = per_frame(fn)
    total = probe_video(job.src).frames or None
    with tqdm(total=total, desc=job.src.name, unit="frame", file=sys.stderr, dynamic_ncols=True,
              leave=False, position=1) as bar:
        restore_video(job.src, job.dst, process, options, progress=lambda _: bar.update(),
                      max_pixels=args.max_pixels)


def local_path(text: str) -> str:
    """A path, or a ``file://`` URL turned into its path; other URLs (``s3://``, ...) are refused in one line.

    Example:
        >>> local_path("file:///data/my%20photos"), local_path("photos/")
        ('/data/my photos', 'photos/')
    """
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", text)  # two letters or more: not a Windows drive
    if scheme is None:
        return text
    scheme = scheme.group(1)
    if scheme.lower() != "file":
        raise InputError(f"{text}: only local paths and file:// URLs are supported, not {scheme}://")
    parsed = urllib.parse.urlsplit(text)
    if parsed.netloc not in ("", "localhost"):
        raise InputError(f"{text}: a file:// URL names a path on this machine (file:///PATH), not on {parsed.netloc}")
    return urllib.parse.unquote(parsed.path)


def method_of(args: argparse.Namespace):
    """The restoration function of ``--method`` / ``--model`` with the Dehazer options (both engines)."""
    kwargs = dict(device=args.device, tile=args.tile, overlap=args.overlap, threads=args.threads,
                  strength=args.strength, protect=args.protect)
    return get_method(args.method, args.model, **kwargs)


def restore_file(job: Job, fn, args: argparse.Namespace) -> None:
    """Read, restore and atomically write one photo (both engines); raises what :func:`failure` reports."""
    photo = read_photo(job.src, max_pixels=args.max_pixels, as_float=False)  # integer pixels: less memory
    if job.dst is None:  # read_photo raises for these; guard against a reader that does not
        raise InputError(f"{job.src}: not a supported image")
    write_photo(job.dst, restore_photo(photo, fn), job.fmt, quality=args.quality)


def failure(src: Path, exc: BaseException) -> str | None:
    """The one-line report of a file that could not be restored, or None when ``exc`` is a bug (re-raise it)."""
    if isinstance(exc, DehazeError):
        return str(exc)
    if isinstance(exc, (OSError, ValueError, MemoryError)):  # one bad file must not stop the batch
        return f"{src}: {exc.__class__.__name__}: {exc}"
    return None


def report(args: argparse.Namespace, restored: int, existing: int, errors: list[tuple[Path, str]]) -> int:
    """The summary lines and the exit code (1 when any file failed)."""
    summary = f"restored {restored}, already done {existing}, failed {len(errors)} -> {args.output}"
    print(summary, file=sys.stderr)
    for src, msg in errors:
        print(f"  failed: {msg if str(src) in msg else f'{src}: {msg}'}", file=sys.stderr)
    return 1 if errors else 0


def run(args: argparse.Namespace) -> int:
    args.inputs = [local_path(a) for a in [*args.inputs, *args.input]]
    args.output = local_path(args.output)
    if not args.inputs:
        raise InputError("no input given: name image files or folders (or -i PATH)")
    if args.engine == "ray":
        from dehaze.cli.ray_engine import require_ray

        require_ray()  # without Ray: one line, before any file is looked at
    jobs, errors, total = _plan(args)
    if total == 0:
        raise InputError(f"no images or videos found in {', '.join(args.inputs)}")
    todo = [j for j in jobs if args.overwrite or j.dst is None or not j.dst.exists()]
    existing = len(jobs) - len(todo)
    restored = 0
    if todo and args.engine == "ray":
        from dehaze.cli.ray_engine import restore_on_ray

        photos = [j for j in todo if j.fmt != "video"]
        todo = [j for j in todo if j.fmt == "video"]
        if todo:
            print(f"note: {len(todo)} video(s) are restored by the local engine (Ray restores photos)",
                  file=sys.stderr)
        restored += restore_on_ray(photos, args, errors)
    if todo:  # the model is loaded only when there is work left
        options = _video_options(args) if any(j.fmt == "video" for j in todo) else None
        fn = method_of(args)
        label = getattr(fn, "name", args.method)
        bar = tqdm(todo, desc=f"dehaze ({label})", unit="file", file=sys.stderr, dynamic_ncols=True)
        for job in bar:
            try:
                if job.fmt == "video":
                    _restore_clip(job, fn, args, options)
                else:
                    restore_file(job, fn, args)
                restored += 1
            except Exception as exc:
                msg = failure(job.src, exc)
                if msg is None:
                    raise
                errors.append((job.src, msg))
                bar.write(f"skipped: {msg}", file=sys.stderr)
        bar.close()
    return report(args, restored, existing, errors)
