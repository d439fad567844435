"""Read and write photos the way users expect.

One place for image I/O, shared by the CLI, the service and evaluation:

- the format is detected from the content (a JPEG named ``.png`` is read as a JPEG);
- the EXIF orientation is applied, so the pixels are the way the photo is shown;
- colour is RGB everywhere (OpenCV's BGR is converted at once);
- an alpha channel is kept aside untouched and written back;
- a grayscale source is marked, so it can be written back as grayscale;
- 16-bit PNG/TIFF are read and written at 16 bits (through OpenCV, since Pillow reads
  16-bit colour as 8-bit);
- the pixel count is checked from the header before any pixel is decoded, and the file is
  decoded in full, so a truncated file is an :class:`~dehaze.errors.InputError`, not a grey band;
- files are written atomically (:func:`atomic_file`: a temporary file in the same folder, then
  ``os.replace``).

Writing a format that cannot hold everything follows fixed rules: JPEG and BMP hold neither
16 bits nor alpha, so 16-bit becomes 8-bit and a transparent image is flattened onto white
(what image editors do when exporting a transparent image to JPEG).
WEBP holds alpha but only 8 bits. Grayscale with alpha at 16 bits is written as RGBA (OpenCV
writes no two-channel PNG), which still looks grey. The ICC profile is kept except in 16-bit
TIFF output.

Example:
    >>> import numpy as np
    >>> photo = Photo(rgb=np.full((4, 6, 3), 0.5, np.float32), alpha=None, bit_depth=8,
    ...               grayscale=False, format="PNG", icc_profile=None)
    >>> read_photo(encode_photo(photo)).rgb.shape
    (4, 6, 3)
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image

from dehaze.errors import ImageTooLargeError, InputError, UnsupportedFormatError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "Photo",
    "atomic_file",
    "encode_photo",
    "format_for_extension",
    "read_photo",
    "shrink_to_fit",
    "to_float",
    "sniff_format",
    "write_bytes_atomic",
    "write_photo",
]

DEFAULT_MAX_PIXELS = 100_000_000
SUPPORTED_READ = frozenset({"PNG", "JPEG", "TIFF", "WEBP", "BMP"})
SUPPORTED_WRITE = frozenset({"PNG", "JPEG", "TIFF", "WEBP", "BMP"})
# canonical file extension of each writable format
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
_EXT_TO_FORMAT = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".bmp": "BMP",
}  # fmt: skip
# (magic prefix, format); formats outside SUPPORTED_READ are named to give a clear error
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
]
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp creates 0600 files, outputs get the usual permissions
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as Pillow's "L" conversion


@dataclass
class Photo:
    """A decoded photo: RGB in [0, 1] plus what is needed to write it back faithfully.

    Attributes:
        rgb: float32 HxWx3 in [0, 1], RGB, EXIF orientation applied (grey repeated for grayscale).
        alpha: HxW alpha in its original dtype (uint8 or uint16), or None.
        bit_depth: 8 or 16 bits per sample of the source.
        grayscale: the source had a single luminance channel (L, LA, I;16, ...).
        format: container detected from the content: "PNG", "JPEG", "TIFF", "WEBP" or "BMP".
        icc_profile: embedded ICC colour profile, or None.
    """

    rgb: np.ndarray  # float32 in [0, 1]; or uint8/uint16 when read with as_float=False
    alpha: np.ndarray | None
    bit_depth: int
    grayscale: bool
    format: str
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]


def format_for_extension(name: str | Path) -> str | None:
    """Format implied by a file name's extension (``"x.JPG"`` -> ``"JPEG"``), None if unknown."""
    return _EXT_TO_FORMAT.get(Path(name).suffix.lower())


def head_bytes(data_or_path, n: int) -> bytes | None:
    """The first ``n`` bytes of a file (a path) or of bytes already in memory; None when the file
    cannot be read. What the format sniffers (:func:`sniff_format`, ``dehaze.video.sniff_video``) look at."""
    if isinstance(data_or_path, (str, Path)):
        try:
            with open(data_or_path, "rb") as f:
                return f.read(n)
        except OSError:
            return None
    return bytes(data_or_path[:n])


def sniff_format(data_or_path: bytes | bytearray | memoryview | str | Path) -> str | None:
    """Detect an image format from the first bytes of the content, never from the name.

    Returns one of ``SUPPORTED_READ`` or the name of a recognised but unsupported format
    (``"GIF"``, ``"ICO"``, ...), None when the content is no known image.

    Example:
        >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
        'PNG'
        >>> sniff_format(b"hello") is None
        True
    """
    head = head_bytes(data_or_path, 32)
    if head is None:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"heim", b"heis"):
        return "AVIF" if head[8:12] == b"avif" else "HEIF"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def _to_bytes(src: str | Path | bytes | bytearray | memoryview) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    path = Path(src)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def _is_16bit(img: Image.Image) -> bool:
    # Pillow opens 16-bit colour PNG/TIFF as 8-bit "RGB"/"RGBA"; the raw mode still says ";16"
    if img.mode.startswith("I;16"):
        return True
    for tile in img.tile:
        raw = tile.args[0] if isinstance(tile.args, tuple) else tile.args
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The size an image's header declares, read without Pillow's decompression-bomb check."""
    opener = Image.OPEN.get(sniff_format(data) or "")
    try:
        return opener[0](io.BytesIO(data)).size if opener else None
    except Exception:
        return None


def _open(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    img = None
    try:
        with warnings.catch_warnings():
            # our own max_pixels check below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        w, h = img.size
    except Image.DecompressionBombError as exc:  # beyond twice Pillow's own limit: report ours
        size = _declared_size(data)
        if size is None:
            raise ImageTooLargeError(f"{name}: image is too large to decode safely ({exc})") from None
        w, h = size
    except Exception as exc:  # Pillow raises many types for a broken header
        raise InputError(f"{name}: image header is truncated or corrupt ({exc})") from None
    if w == 0 or h == 0:
        raise InputError(f"{name}: image has no pixels ({w}x{h})")
    if img is None:  # refused by Pillow, whose limit then applies too
        pillow = 2 * Image.MAX_IMAGE_PIXELS
        max_pixels = pillow if max_pixels is None else min(max_pixels, pillow)
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLargeError(
            f"{name}: image is too large: {w}x{h} = {w * h:,} pixels, more than the limit of "
            f"{max_pixels:,} pixels"
        )
    return img


def _load(img: Image.Image, name: str) -> None:
    try:
        img.load()  # decodes every pixel: a truncated file raises here instead of giving a grey band
    except Exception as exc:
        raise InputError(f"{name}: image data is truncated or corrupt ({exc})") from None


def _decode_pillow(img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """8-bit decode through Pillow -> (uint8 HxWx3 RGB, alpha or None, grayscale)."""
    mode = img.mode
    if mode in ("I", "F", "I;32", "F;32"):
        raise UnsupportedFormatError(f"{name}: 32-bit images ({mode}) are not supported; use 8 or 16 bits")
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette.mode == "RGBA"
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in mode or "a" in mode else "RGB")  # CMYK, YCbCr, RGBa, ...
    arr = np.asarray(img)
    if img.mode == "L":
        return np.repeat(arr[..., None], 3, axis=2), None, True
    if img.mode == "LA":
        return np.repeat(arr[..., :1], 3, axis=2), arr[..., 1].copy(), True
    if img.mode == "RGBA":
        return arr[..., :3], arr[..., 3].copy(), False
    return arr, None, False


def _decode_16bit(data: bytes, img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Full-precision decode through OpenCV -> (uint16 HxWx3 RGB, alpha or None, grayscale)."""
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)  # libtiff warns about OpenCV's own RGBA TIFFs (no ExtraSamples tag)
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    finally:
        log.setLogLevel(level)
    if arr is None or arr.dtype != np.uint16:
        raise InputError(f"{name}: 16-bit image data could not be decoded")
    gray = img.mode in ("L", "LA", "I;16", "I;16B", "I;16L", "I;16N")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2), None, True
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    if gray or arr.shape[2] == 2:  # grey(+alpha) that OpenCV expanded to BGR(A) or kept as 2 channels
        if arr.shape[2] == 2:
            alpha = arr[..., 1].copy()
        return np.repeat(arr[..., :1], 3, axis=2), alpha, True
    return np.ascontiguousarray(arr[..., 2::-1]), alpha, False  # BGR(A) -> RGB at once


def read_photo(
    src: str | Path | bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, as_float: bool = True
) -> Photo:
    """Read an image file (or its bytes) into a :class:`Photo`.

    Args:
        src: a path or the encoded bytes.
        max_pixels: refuse images with more pixels than this (checked from the header, before
            decoding); None for no limit of ours (Pillow still refuses above ~179 megapixels).
        as_float: True: ``rgb`` is float32 in [0, 1]; False: the decoded uint8 or uint16 pixels
            (a quarter or half the memory: what the CLI and the service use for large photos).

    Raises:
        InputError: missing, empty, not an image, truncated or corrupt.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        UnsupportedFormatError: a recognised image format that is not in ``SUPPORTED_READ``.

    Example:
        >>> photo = read_photo(encode_photo(Photo(np.zeros((2, 3, 3), np.float32), None, 8, False, "JPEG")))
        >>> photo.format, photo.rgb.shape, photo.rgb.dtype
        ('JPEG', (2, 3, 3), dtype('float32'))
    """
    name = "image" if isinstance(src, (bytes, bytearray, memoryview)) else str(src)
    data = _to_bytes(src)
    if not data:
        raise InputError(f"{name}: file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise InputError(f"{name}: not an image (content matches no PNG, JPEG, TIFF, WEBP or BMP)")
    if fmt not in SUPPORTED_READ:
        raise UnsupportedFormatError(
            f"{name}: {fmt} images are not supported; use one of {', '.join(sorted(SUPPORTED_READ))}"
        )
    img = _open(data, name, max_pixels)
    sixteen = _is_16bit(img)
    _load(img, name)  # also for 16-bit: Pillow's decode catches truncation and reads late EXIF chunks
    orientation = img.getexif().get(0x0112, 1)
    icc = img.info.get("icc_profile") or None
    if sixteen:
        rgb, alpha, gray = _decode_16bit(data, img, name)
    else:
        rgb, alpha, gray = _decode_pillow(img, name)
    rgb = _orient(rgb, orientation)
    del img  # the decoder's own copy of the pixels
    if as_float:
        rgb = to_float(rgb)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return Photo(
        rgb=rgb,
        alpha=alpha,
        bit_depth=16 if sixteen else 8,
        grayscale=gray,
        format=fmt,
        icc_profile=icc,
    )


def _quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Pixels at ``bits`` bits from float [0, 1] or uint8/uint16 (returned as they are when they fit)."""
    if x.dtype == np.uint8:
        return x if bits == 8 else x.astype(np.uint16) * np.uint16(257)
    if x.dtype == np.uint16:
        return x if bits == 16 else ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)
    top = 65535.0 if bits == 16 else 255.0
    out = np.clip(x, 0.0, 1.0) * top + 0.5
    return out.astype(np.uint16 if bits == 16 else np.uint8)


PIXEL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}  # integer pixels' white


def to_float(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from uint8/uint16 pixels (a new array), or float pixels as float32 (no copy
    when they already are): the one integer-to-float conversion of the project.

    Example:
        >>> to_float(np.array([0, 255], np.uint8)).tolist()
        [0.0, 1.0]
    """
    scale = PIXEL_SCALE.get(x.dtype)
    if scale is None:
        return x.astype(np.float32, copy=False)
    out = x.astype(np.float32)
    out /= np.float32(scale)  # in place: a 4K photo is 100 MB per float copy
    return out


def _alpha_as(alpha: np.ndarray, bits: int) -> np.ndarray:
    """Alpha in the target bit depth; unchanged when it already has it."""
    if bits == 16:
        return alpha if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint8:
        return alpha
    return ((alpha.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _check_photo(photo: Photo) -> None:
    rgb = photo.rgb
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"Photo.rgb must be HxWx3, got shape {rgb.shape}")
    if photo.alpha is not None and photo.alpha.shape != rgb.shape[:2]:
        raise ValueError(f"Photo.alpha must be HxW = {rgb.shape[:2]}, got shape {photo.alpha.shape}")
    if photo.bit_depth not in (8, 16):
        raise ValueError(f"Photo.bit_depth must be 8 or 16, got {photo.bit_depth}")


def _normalise_format(fmt: str) -> str:
    f = fmt.upper().lstrip(".")
    f = {"JPG": "JPEG", "JPE": "JPEG", "TIF": "TIFF"}.get(f, f)
    if f not in SUPPORTED_WRITE:
        raise UnsupportedFormatError(
            f"cannot write {fmt!r} images; use one of {', '.join(sorted(SUPPORTED_WRITE))}"
        )
    return f


def _png_with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (OpenCV's PNG writer drops profiles)."""
    body = b"ICC Profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end_ihdr = 8 + 4 + 4 + 13 + 4
    return png[:end_ihdr] + chunk + png[end_ihdr:]


# largest side each lossy format can store (WebP: 14-bit dimensions; JPEG: 16-bit, libjpeg's cap)
_MAX_SIDE = {"WEBP": 16383, "JPEG": 65500}


def shrink_to_fit(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` (HxW or HxWxC) shrunk with area averaging so its longer side is at most ``side``;
    an image that already fits is returned as it is.

    Example:
        >>> shrink_to_fit(np.zeros((100, 300, 3), np.float32), 150).shape
        (50, 150, 3)
    """
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    f = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def encode_photo(photo: Photo, fmt: str | None = None, quality: int = 95, png_level: int = 6) -> bytes:
    """Encode a photo into file bytes, keeping bit depth, alpha, grayscale and ICC where the format can.

    Args:
        photo: the photo to encode.
        fmt: "PNG", "JPEG", "TIFF", "WEBP" or "BMP" (also "jpg", "tif"); None -> ``photo.format``.
        quality: JPEG/WEBP quality, 1..100.
        png_level: PNG zlib level, 0..9 (lossless at every level): 6 is the usual size/time balance;
            1 encodes faster for somewhat larger files (the HTTP service uses it).

    Example:
        >>> p = Photo(np.ones((2, 2, 3), np.float32), None, 16, False, "PNG")
        >>> read_photo(encode_photo(p)).bit_depth
        16
    """
    _check_photo(photo)
    fmt = _normalise_format(fmt or photo.format)
    if isinstance(png_level, bool) or not isinstance(png_level, int) or not 0 <= png_level <= 9:
        raise ValueError(f"png_level must be a whole number in 0..9, got {png_level!r}")
    h, w = photo.rgb.shape[:2]
    limit = _MAX_SIDE.get(fmt)
    if limit and max(h, w) > limit:
        raise UnsupportedFormatError(f"{fmt} cannot hold a {w}x{h} image (at most {limit} pixels a side); "
                                     "choose PNG or TIFF")
    bits = 16 if photo.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8
    alpha = photo.alpha if fmt in _ALPHA_FORMATS else None
    rgb = photo.rgb
    if photo.alpha is not None and alpha is None:
        # JPEG and BMP keep no alpha: flatten onto white, as image editors do on "export as JPEG"
        a = photo.alpha.astype(np.float32) / (65535.0 if photo.alpha.dtype == np.uint16 else 255.0)
        rgb = to_float(rgb) * a[..., None] + (1.0 - a[..., None])
    if photo.grayscale:
        gray = _quantize(to_float(rgb) @ _LUMA, bits)
        planes = [gray] if alpha is None else [gray, _alpha_as(alpha, bits)]
    else:
        rgb_q = _quantize(rgb, bits)
        planes = [rgb_q] if alpha is None else [rgb_q, _alpha_as(alpha, bits)[..., None]]

    if bits == 16:
        return _encode_16bit(planes, photo.grayscale, fmt, photo.icc_profile, png_level)

    if photo.grayscale:
        arr = planes[0] if alpha is None else np.dstack(planes)
        mode = "L" if alpha is None else "LA"
        if fmt == "WEBP" and alpha is not None:  # WebP stores no grey+alpha
            arr, mode = np.dstack([planes[0]] * 3 + [planes[1]]), "RGBA"
    else:
        arr = planes[0] if alpha is None else np.concatenate(planes, axis=2)
        mode = "RGB" if alpha is None else "RGBA"
    img = Image.fromarray(np.ascontiguousarray(arr), mode=mode)
    kwargs: dict = {}
    if photo.icc_profile and fmt != "BMP":
        kwargs["icc_profile"] = photo.icc_profile
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "TIFF":
        kwargs["compression"] = "tiff_lzw"
    if fmt == "PNG":
        kwargs["compress_level"] = png_level
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _encode_16bit(planes: list[np.ndarray], gray: bool, fmt: str, icc: bytes | None, png_level: int = 6) -> bytes:
    if gray:  # equal channels, so no BGR swap; OpenCV has no two-channel (grey+alpha) writer
        arr = planes[0] if len(planes) == 1 else np.dstack([planes[0]] * 3 + [planes[1]])
    else:
        rgb = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2)
        arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_level] if fmt == "PNG" else []
    ok, buf = cv2.imencode(EXTENSIONS[fmt], arr, params)
    if not ok:
        raise UnsupportedFormatError(f"OpenCV could not encode a 16-bit {fmt} image")
    data = buf.tobytes()
    if icc and fmt == "PNG":
        data = _png_with_icc(data, icc)
    return data


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Write ``path`` atomically: yield a file open for binary writing, put it in place on success.

    The one atomic writer of the project (images, model cards, ONNX models, checkpoints, reports).
    The file yielded is a temporary ``.NAME.XXXXXXXX.tmp`` in the same folder (its path is
    ``f.name``, e.g. to check it before it replaces anything). When the block ends without an
    exception it is flushed, fsynced, given the usual permissions (``0o666 & ~umask``, not
    mkstemp's ``0o600``) and renamed over ``path`` with ``os.replace``; the folder is then fsynced
    too (where the system allows), so the rename survives a power cut. When the block raises (or
    the rename fails) the temporary file is deleted and ``path`` is left as it was. A crash or kill
    leaves the old file or none, never a half-written one. The folder is created if missing.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     with atomic_file(Path(folder) / "a.txt") as f:
        ...         _ = f.write(b"hello")
        ...     sorted(p.name for p in Path(folder).iterdir()), (Path(folder) / "a.txt").read_bytes()
        (['a.txt'], b'hello')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(tmp, "wb", opener=lambda *_: fd) as f:  # the mkstemp descriptor, named by its path
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)


def write_photo(path: str | Path, photo: Photo, fmt: str | None = None, quality: int = 95) -> None:
    """Encode and write a photo atomically (see :func:`write_bytes_atomic`).

    Args:
        path: destination file; its folder is created if missing.
        photo: the photo.
        fmt: output format; None -> from the extension of ``path`` if it names one, else ``photo.format``.
        quality: JPEG/WEBP quality.
    """
    write_bytes_atomic(path, encode_photo(photo, fmt or format_for_extension(path) or photo.format, quality))
