import io
import os
import stat
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from dehaze.errors import ImageTooLargeError, InputError, UnsupportedFormatError
from dehaze.io import (
    SUPPORTED_WRITE,
    Photo,
    atomic_file,
    encode_photo,
    format_for_extension,
    read_photo,
    sniff_format,
    write_bytes_atomic,
    write_photo,
)

RNG = np.random.default_rng(0)
RGB8 = (RNG.random((24, 36, 3)) * 255).astype(np.uint8)


def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_sniff_by_content_not_name(tmp_path):
    jpg = tmp_path / "photo.png"  # a JPEG named .png
    jpg.write_bytes(pil_bytes(Image.fromarray(RGB8), "JPEG"))
    assert sniff_format(jpg) == "JPEG"
    photo = read_photo(jpg)
    assert photo.format == "JPEG" and photo.rgb.shape == (24, 36, 3)
    for fmt in ("PNG", "TIFF", "WEBP", "BMP", "GIF"):
        assert sniff_format(pil_bytes(Image.fromarray(RGB8), fmt)) == fmt
    assert sniff_format(b"just some text") is None
    assert sniff_format(tmp_path / "missing") is None


def test_rgb_order_and_range():
    arr = np.zeros((4, 5, 3), np.uint8)
    arr[..., 0] = 255  # pure red
    photo = read_photo(pil_bytes(Image.fromarray(arr), "PNG"))
    assert photo.rgb.dtype == np.float32
    assert np.allclose(photo.rgb[..., 0], 1.0) and np.allclose(photo.rgb[..., 1:], 0.0)
    assert photo.bit_depth == 8 and not photo.grayscale and photo.alpha is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    img = Image.fromarray(RGB8)
    exif = img.getexif()
    exif[0x0112] = orientation
    data = pil_bytes(img, "JPEG", exif=exif.tobytes(), quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    got = read_photo(data).rgb
    assert got.shape == expected.shape
    assert np.abs(got * 255 - expected).max() < 0.01


def test_exif_orientation_rotates_alpha_too():
    rgba = np.dstack([RGB8, (np.arange(24 * 36).reshape(24, 36) % 256).astype(np.uint8)])
    img = Image.fromarray(rgba, "RGBA")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    photo = read_photo(pil_bytes(img, "PNG", exif=exif.tobytes()))
    assert photo.rgb.shape == (36, 24, 3)
    np.testing.assert_array_equal(photo.alpha, np.rot90(rgba[..., 3], -1))


def test_alpha_carried_through_untouched(tmp_path):
    alpha = (np.arange(24 * 36).reshape(24, 36) % 256).astype(np.uint8)
    data = pil_bytes(Image.fromarray(np.dstack([RGB8, alpha]), "RGBA"), "PNG")
    photo = read_photo(data)
    assert photo.alpha.dtype == np.uint8
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal((photo.rgb * 255).round().astype(np.uint8), RGB8)
    write_photo(tmp_path / "out.png", photo)
    back = np.asarray(Image.open(tmp_path / "out.png"))
    assert back.shape == (24, 36, 4)
    np.testing.assert_array_equal(back[..., 3], alpha)
    np.testing.assert_array_equal(back[..., :3], RGB8)


def test_palette_with_transparency_gets_alpha():
    pal = Image.fromarray(RGB8).convert("P")
    photo = read_photo(pil_bytes(pal, "PNG", transparency=0))
    assert photo.alpha is not None and photo.alpha.dtype == np.uint8
    assert (photo.alpha == 0).any() and (photo.alpha == 255).any()


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grayscale_roundtrip(mode):
    g = RGB8[..., 0]
    arr = g if mode == "L" else np.dstack([g, RGB8[..., 1]])
    photo = read_photo(pil_bytes(Image.fromarray(arr, mode), "PNG"))
    assert photo.grayscale and photo.rgb.shape == (24, 36, 3)
    assert np.array_equal(photo.rgb[..., 0], photo.rgb[..., 2])
    assert (photo.alpha is None) == (mode == "L")
    back = Image.open(io.BytesIO(encode_photo(photo)))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), arr)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_roundtrip(tmp_path, ext, channels):
    a16 = (RNG.random((20, 30, channels)) * 65535).astype(np.uint16)
    if channels == 1:
        a16 = a16[..., 0]
    src = tmp_path / f"in{ext}"
    cv2.imwrite(str(src), a16)  # OpenCV: BGR(A) order on disk
    photo = read_photo(src)
    assert photo.bit_depth == 16 and photo.format == ("PNG" if ext == ".png" else "TIFF")
    assert photo.grayscale == (channels == 1)
    if channels >= 3:  # RGB in the photo = BGR reversed
        np.testing.assert_array_equal(np.round(photo.rgb * 65535).astype(np.uint16), a16[..., 2::-1])
    if channels == 4:
        assert photo.alpha.dtype == np.uint16
        np.testing.assert_array_equal(photo.alpha, a16[..., 3])
    dst = tmp_path / f"out{ext}"
    write_photo(dst, photo)
    back = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, a16)


def test_16bit_grayscale_pillow_png_and_8bit_for_jpeg():
    g16 = (RNG.random((10, 12)) * 65535).astype(np.uint16)
    photo = read_photo(pil_bytes(Image.fromarray(g16), "PNG"))
    assert photo.bit_depth == 16 and photo.grayscale
    np.testing.assert_array_equal(np.round(photo.rgb[..., 0] * 65535).astype(np.uint16), g16)
    jpg = read_photo(encode_photo(photo, "jpg"))  # JPEG holds 8 bits: converted, still grey
    assert jpg.format == "JPEG" and jpg.bit_depth == 8 and jpg.grayscale


def test_jpeg_output_flattens_alpha_onto_white():
    rgb = np.zeros((8, 8, 3), np.float32)
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    photo = Photo(rgb, alpha, 8, False, "PNG", None)
    out = read_photo(encode_photo(photo, "JPEG", quality=100))
    assert out.alpha is None
    assert out.rgb[:, :2].min() > 0.95  # transparent black -> white
    assert out.rgb[:, 6:].max() < 0.05  # opaque black stays black


@pytest.mark.parametrize("fmt", sorted(SUPPORTED_WRITE))
def test_every_write_format_reads_back(fmt):
    photo = Photo(np.full((8, 10, 3), 0.25, np.float32), None, 8, False, "PNG", None)
    out = read_photo(encode_photo(photo, fmt))
    assert out.format == fmt and out.rgb.shape == (8, 10, 3)
    assert np.abs(out.rgb - 0.25).max() < 0.02


def test_icc_profile_kept():
    icc = b"\x00\x00\x02\x0cfake icc profile bytes" * 4
    for bits in (8, 16):
        photo = Photo(np.full((4, 4, 3), 0.5, np.float32), None, bits, False, "PNG", icc)
        assert read_photo(encode_photo(photo)).icc_profile == icc


def test_truncated_jpeg_and_png_raise_input_error():
    for fmt in ("JPEG", "PNG"):
        data = pil_bytes(Image.fromarray(RGB8), fmt)
        with pytest.raises(InputError, match="truncated"):
            read_photo(data[: len(data) // 2])


def test_text_file_named_png(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image\n")
    with pytest.raises(InputError, match="not an image"):
        read_photo(fake)


def test_bad_inputs_give_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_photo(tmp_path / "missing.png")
    with pytest.raises(InputError, match="folder"):
        read_photo(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_photo(tmp_path / "empty.jpg")
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        read_photo(pil_bytes(Image.fromarray(RGB8), "GIF"))
    with pytest.raises(UnsupportedFormatError):
        encode_photo(Photo(np.zeros((2, 2, 3), np.float32), None, 8, False, "PNG"), "GIF")


def png_header_claiming(w: int, h: int) -> bytes:
    """A 1x1 PNG whose header claims w x h pixels: only a check before decoding can refuse it cleanly."""
    data = bytearray(pil_bytes(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR checksum valid
    return bytes(data)


def bmp_header_claiming(w: int, h: int) -> bytes:
    """A BMP file and info header claiming w x h 24-bit pixels, with no pixel data at all."""
    info = (40).to_bytes(4, "little") + w.to_bytes(4, "little") + h.to_bytes(4, "little")
    info += (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(24)
    return b"BM" + (54 + w * h * 3).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little") + info


def test_size_checked_before_decoding():
    with pytest.raises(ImageTooLargeError, match="12000x12000"):  # over our 100 MP default
        read_photo(png_header_claiming(12000, 12000))
    with pytest.raises(ImageTooLargeError, match="too large"):  # far over Pillow's bomb limit too
        read_photo(png_header_claiming(100_000, 100_000), max_pixels=None)
    with pytest.raises(ImageTooLargeError, match="36x24"):
        read_photo(pil_bytes(Image.fromarray(RGB8), "PNG"), max_pixels=100)


@pytest.mark.parametrize("header", [png_header_claiming, bmp_header_claiming])
def test_over_the_limit_reports_our_limit_and_the_pixel_count(header):
    # 400 Mpx is over Pillow's own bomb limit (179 Mpx) too: its "DOS attack" text must not show
    with pytest.raises(ImageTooLargeError) as exc:
        read_photo(header(20000, 20000), max_pixels=1_000_000)
    text = str(exc.value)
    assert "20000x20000 = 400,000,000 pixels" in text and "limit of 1,000,000 pixels" in text, text
    assert "DOS" not in text and "178956970" not in text
    with pytest.raises(ImageTooLargeError, match="limit of 100,000,000 pixels"):  # the default limit
        read_photo(header(20000, 20000))
    with pytest.raises(ImageTooLargeError, match="limit of 178,956,970 pixels"):  # none of ours: Pillow's
        read_photo(header(20000, 20000), max_pixels=None)


def test_write_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    photo = Photo(np.full((4, 4, 3), 0.5, np.float32), None, 8, False, "PNG")
    dst = tmp_path / "sub" / "out.jpg"
    write_photo(dst, photo)  # format from the extension, folder created
    assert sniff_format(dst) == "JPEG"
    assert stat.S_IMODE(os.stat(dst).st_mode) & 0o044  # readable by others, not mkstemp's 0600
    before = dst.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_photo(dst, Photo(np.zeros((4, 4, 3), np.float32), None, 8, False, "PNG"))
    assert dst.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in dst.parent.iterdir()) == ["out.jpg"]  # no temp file left


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_file_puts_the_file_in_place_with_the_usual_permissions(tmp_path):
    dst = tmp_path / "new" / "data.bin"
    with atomic_file(dst) as f:
        temp = Path(f.name)
        assert temp.parent == dst.parent and temp.name.startswith(".data.bin.") and temp.suffix == ".tmp"
        f.write(b"hello")
        f.flush()
        assert temp.read_bytes() == b"hello" and not dst.exists()  # readable by path before the rename
    assert dst.read_bytes() == b"hello" and sorted(p.name for p in dst.parent.iterdir()) == ["data.bin"]
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600
    write_bytes_atomic(dst, b"again")  # the same writer: replaces, same permissions
    assert dst.read_bytes() == b"again" and stat.S_IMODE(os.stat(dst).st_mode) == 0o666 & ~_umask()


@pytest.mark.parametrize("exists", [False, True])
def test_a_failing_atomic_write_leaves_no_file_and_no_temp(tmp_path, exists):
    dst = tmp_path / "out.bin"
    if exists:
        dst.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(dst) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.bin"] if exists else [])
    if exists:
        assert dst.read_bytes() == b"old"


def test_format_for_extension():
    assert format_for_extension("a/b.JPEG") == "JPEG"
    assert format_for_extension("x.tif") == "TIFF"
    assert format_for_extension("x.txt") is None


@pytest.mark.parametrize("bits", [8, 16])
def test_png_level_is_lossless_and_trades_size_for_speed(bits):
    """Every zlib level decodes to the same pixels; level 0 stores, 9 squeezes hardest."""
    y, x = np.mgrid[0:64, 0:96] / 96.0
    rgb = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)  # smooth: compresses well
    photo = Photo(rgb, None, bits, False, "PNG")
    data = {level: encode_photo(photo, "PNG", png_level=level) for level in (0, 1, 9)}
    pixels = {level: read_photo(d).rgb for level, d in data.items()}
    assert all(np.array_equal(pixels[0], p) for p in pixels.values())
    assert len(data[0]) > len(data[1]) >= len(data[9])
    with pytest.raises(ValueError, match="png_level"):
        encode_photo(photo, "PNG", png_level=10)
