import io
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from media import save
from PIL import Image

import dehaze.cli.restore as restore_cli
from dehaze.cli import main
from dehaze.inference import DEFAULT_OVERLAP, DEFAULT_TILE, tile_spans, tiling_error
from dehaze.io import read_photo
from dehaze.nets import UNetGenerator

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
RNG = np.random.default_rng(0)


def hazy_rgb(h=40, w=60):
    clear = RNG.random((h, w, 3)) * 0.8
    clear[::5, ::5] = 0
    return (clear * 0.5 + 0.45).clip(0, 1)





def u8(x):
    return (x * 255).round().astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    """A folder of photos the way users have them, including two bad files."""
    d = tmp_path / "in"
    save(d / "plain.png", u8(hazy_rgb()), "PNG")
    save(d / "really_a_jpeg.png", u8(hazy_rgb(50, 30)), "JPEG")
    rgba = np.dstack([u8(hazy_rgb()), (np.arange(40 * 60).reshape(40, 60) % 256).astype(np.uint8)])
    save(d / "alpha.png", rgba, "PNG")
    save(d / "gray.png", u8(hazy_rgb()[..., 0]), "PNG")
    cv2.imwrite(str(d / "deep.png"), (hazy_rgb(20, 30) * 65535).astype(np.uint16))  # 16-bit BGR
    img = Image.fromarray(u8(hazy_rgb(30, 50)))
    exif = img.getexif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: 50 wide x 30 high on disk -> 30 x 50 shown
    save(d / "rotated.jpg", np.asarray(img), "JPEG", exif=exif.tobytes())
    good = (d / "plain.png").read_bytes()
    jpeg = (d / "really_a_jpeg.png").read_bytes()
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (d / "text.png").write_text("not an image at all\n")
    (d / "notes.txt").write_text("ignored: neither image content nor image name\n")
    (d / "noext").write_bytes(good)  # a PNG without an extension, found by content
    return d


def test_restore_folder_reports_bad_files_and_keeps_going(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["restore", str(folder), "-o", str(out), "--method", "dcp"])
    err = capsys.readouterr().err
    assert code == 1  # two bad files
    assert "truncated.jpg" in err and "text.png" in err and "failed 2" in err and "restored 7" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "alpha.png",
        "deep.png",
        "gray.png",
        "noext.png",
        "plain.png",
        "really_a_jpeg.png",
        "rotated.jpg",
    ]
    for name in names:  # same size as the (oriented) input, and really changed
        src = folder / (name if name != "noext.png" else "noext")
        a, b = read_photo(src), read_photo(out / name)
        assert a.rgb.shape == b.rgb.shape
        assert np.abs(a.rgb - b.rgb).mean() > 0.02
    assert read_photo(out / "rotated.jpg").rgb.shape == (50, 30, 3)  # EXIF orientation applied
    assert read_photo(out / "really_a_jpeg.png").format == "PNG"  # the name's format is written
    alpha = read_photo(out / "alpha.png").alpha
    np.testing.assert_array_equal(alpha, read_photo(folder / "alpha.png").alpha)  # untouched
    assert read_photo(out / "gray.png").grayscale and Image.open(out / "gray.png").mode == "L"
    deep = read_photo(out / "deep.png")
    assert deep.bit_depth == 16 and cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_resume_after_interruption(folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    real_write = restore_cli.write_photo
    calls = []

    def write_then_die(path, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C while the 4th image is being written
        calls.append(path)
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(restore_cli, "write_photo", write_then_die)
    assert main(["restore", str(folder), "-o", str(out), "--method", "dcp"]) == 130
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(done) == 3 and not any(n.startswith(".") for n in done)  # no half-written files
    monkeypatch.setattr(restore_cli, "write_photo", real_write)
    capsys.readouterr()
    assert main(["restore", str(folder), "-o", str(out), "--method", "dcp"]) == 1  # the 2 bad files remain
    assert "restored 4, already done 3" in capsys.readouterr().err
    assert all((out / n).stat().st_mtime_ns == t for n, t in done.items())  # not redone
    assert len(list(out.iterdir())) == 7
    main(["restore", str(folder), "-o", str(out), "--method", "dcp", "--overwrite"])
    assert "restored 7, already done 0" in capsys.readouterr().err


def test_refuses_output_inside_input(folder, capsys):
    for out in (folder, folder / "restored"):
        assert main(["restore", str(folder), "-o", str(out), "--method", "dcp"]) == 2
        assert "inside it" in capsys.readouterr().err
    assert not (folder / "restored").exists()
    # a single file whose output would replace it
    assert main(["restore", str(folder / "plain.png"), "-o", str(folder), "--method", "dcp"]) == 2
    assert "replace the input" in capsys.readouterr().err


def test_recursive_mirrors_tree_with_ext_and_suffix(tmp_path, capsys):
    src = tmp_path / "photos"
    save(src / "a.png", u8(hazy_rgb()), "PNG")
    save(src / "trip" / "day1" / "b.jpg", u8(hazy_rgb()), "JPEG")
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out), "--method", "dcp"]) == 0
    assert "--recursive" in capsys.readouterr().err  # the sub-folder was left out, and the user is told
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    assert (
        main(
            [
                "restore",
                str(src),
                "-o",
                str(out),
                "-r",
                "--ext",
                "webp",
                "--suffix",
                "_clear",
                "--method",
                "dcp",
            ]
        )
        == 0
    )
    assert (out / "a_clear.webp").is_file() and (out / "trip" / "day1" / "b_clear.webp").is_file()
    assert read_photo(out / "trip" / "day1" / "b_clear.webp").format == "WEBP"
    assert main(["restore", str(src), "-o", str(out), "--ext", "gif", "--method", "dcp"]) == 2


def test_default_and_explicit_model(folder, tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3).eval()
    ckpt = tmp_path / "tiny.pt"
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    monkeypatch.setenv("DEHAZE_MODEL", str(ckpt))  # what "no --model" falls back to
    out = tmp_path / "out"
    assert (
        main(["restore", str(folder / "plain.png"), str(folder / "gray.png"), "-o", str(out), "--tile", "64"])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "plain.png"]
    assert (
        main(["restore", str(folder / "alpha.png"), "-o", str(out), "--model", str(ckpt), "--device", "cpu"])
        == 0
    )
    monkeypatch.setenv("DEHAZE_MODEL", str(tmp_path / "missing.onnx"))
    capsys.readouterr()
    assert main(["restore", str(folder / "deep.png"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model found") and "Traceback" not in err
    assert main(["restore", str(tmp_path / "nothing"), "-o", str(out), "--method", "dcp"]) == 2


def test_real_hazy_folder(tmp_path):
    src = SHARED / "data" / "real-hazy"
    if not src.is_dir():
        pytest.skip(f"shared data not found at {src}")
    out = tmp_path / "restored"
    assert main(["restore", str(src), "-o", str(out), "--method", "dcp"]) == 0
    inputs = sorted(p.name for p in src.iterdir() if not p.name.startswith("."))
    assert sorted(p.name for p in out.iterdir()) == inputs
    for name in inputs:
        assert read_photo(out / name).rgb.shape == read_photo(src / name).rgb.shape
    assert os.path.getsize(out / inputs[0]) > 0


def test_input_flag_as_in_real_esrgan(tmp_path, capsys):
    a = save(tmp_path / "a" / "one.png", u8(hazy_rgb()), "PNG")
    b = save(tmp_path / "b" / "two.png", u8(hazy_rgb()), "PNG")
    out = tmp_path / "out"
    assert main(["restore", "-i", str(a), "--input", str(b.parent), "-o", str(out), "--method", "dcp"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "two.png"]
    assert main(["restore", "-o", str(out), "--method", "dcp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: no input given: name image files or folders (or -i PATH)"


def parse_error(capsys, *args: str) -> str:
    """The one error line argparse prints for ``dehaze restore ARGS`` (it exits 2 before any work)."""
    with pytest.raises(SystemExit) as exc:
        main(["restore", "in.png", "-o", "out", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("dehaze restore: error: ")
    return err.strip().splitlines()[-1].removeprefix("dehaze restore: error: ")


def test_quality_is_1_to_100_as_in_the_api(capsys):
    for q in ("0", "-3", "500"):
        assert parse_error(capsys, "--quality", q) == f"argument --quality: must be 1-100, got {int(q)}"
    assert parse_error(capsys, "--quality", "x") == "argument --quality: must be a whole number, got 'x'"


def test_one_tiling_rule_checked_when_parsing(capsys, folder, tmp_path):
    rule_tile, rule_overlap = "0 (no tiling) or at least 64", "at most a quarter of the tile"
    assert parse_error(capsys, "--tile", "10") == f"argument --tile: must be {rule_tile}, got 10"
    quarter = f"the overlap must be {rule_overlap}: 60 with tile 200"
    assert parse_error(capsys, "--tile", "200", "--overlap", "60") == f"argument --overlap: {quarter}"
    assert parse_error(capsys, "--overlap", "60", "--tile", "200") == f"argument --tile: {quarter}"
    assert parse_error(capsys, "--overlap", "200") == (  # against the default tile, 512
        "argument --overlap: the overlap must be at most a quarter of the tile: 200 with tile 512"
    )
    assert parse_error(capsys, "--overlap", "-1") == (
        "argument --overlap: the overlap must be 0 or more, got -1"
    )
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert rule_tile in help_text and rule_overlap in help_text  # the help states the same rule
    src, out = str(folder / "plain.png"), str(tmp_path / "out")
    for args in (["--tile", "200", "--overlap", "50"], ["--tile", "0", "--overlap", "500"], ["--tile", "64"]):
        assert main(["restore", src, "-o", out, "--method", "dcp", "--overwrite", *args]) == 0
    for tile in range(64, 1100, 7):  # whatever the rule accepts, the tiler can do (network multiple 32)
        rounded = -(-tile // 32) * 32  # as Dehazer rounds it
        for overlap in (0, 1, tile // 4, None):
            assert tiling_error(tile, overlap) is None
            overlap = min(DEFAULT_OVERLAP, tile // 4) if overlap is None else overlap  # Dehazer's default
            assert overlap < rounded // 2 and tile_spans(2000, rounded, overlap, 32)


def test_one_tile_default_for_restore_eval_and_serve():
    from dehaze.cli import build_parser
    from service.settings import Settings

    def default(command: str) -> int:
        sub = next(a for a in build_parser([command])._actions if a.dest == "command").choices[command]
        return next(a for a in sub._actions if a.dest == "tile").default

    assert default("restore") == default("eval") == Settings().tile == DEFAULT_TILE
    assert default("serve") is None  # not given: the settings' default (DEHAZE_TILE, else DEFAULT_TILE)


def test_hazy_help_says_it_re_encodes(capsys):
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    assert "hazy restores nothing: it re-encodes the input" in " ".join(capsys.readouterr().out.split())


def test_image_over_the_limit_reports_our_limit(tmp_path, capsys):
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (20000).to_bytes(4, "big") * 2  # the header claims 20000x20000, over Pillow's limit too
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    (tmp_path / "huge.png").write_bytes(bytes(data))
    assert main(["restore", str(tmp_path / "huge.png"), "-o", str(tmp_path / "out"), "--method", "dcp"]) == 1
    err = capsys.readouterr().err
    assert "20000x20000 = 400,000,000 pixels, more than the limit of 100,000,000 pixels" in err, err
    assert "DOS" not in err and "Traceback" not in err


def test_strength_in_the_cli(folder, tmp_path, capsys):
    """--strength 0 gives the photo back (two-scale model), 1 the model's output; a bad value exits 2."""
    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    ckpt = tmp_path / "asm.pt"
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    src = folder / "plain.png"
    for s in ("0", "1", "1.5"):
        assert main(["restore", str(src), "-o", str(tmp_path / s), "--model", str(ckpt), "--strength", s]) == 0
    photo, zero, one, more = (read_photo(p).rgb for p in
                              (src, tmp_path / "0" / "plain.png", tmp_path / "1" / "plain.png", tmp_path / "1.5" / "plain.png"))
    assert np.array_equal(zero, photo)
    assert 0 < np.abs(one - photo).mean() < np.abs(more - photo).mean()
    capsys.readouterr()
    for bad in ("2", "-1", "abc"):
        with pytest.raises(SystemExit) as exc:
            main(["restore", str(src), "-o", str(tmp_path / "bad"), "--strength", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--strength" in err and "[0, 1.5]" in err and "Traceback" not in err
    assert main(["restore", str(src), "-o", str(tmp_path / "dcp"), "--method", "dcp", "--strength", "0.5"]) == 2
    assert "strength applies to the model" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "dcp").exists()


def test_no_protect_gives_the_plain_inversion(tmp_path):
    """The model card's clipping protection is on by default; --no-protect restores as before it."""
    from dehaze.inference import Dehazer, restore_photo

    torch.manual_seed(0)
    G = UNetGenerator(width=4, depth=3, head="asm").eval()
    ckpt = tmp_path / "asm.pt"
    torch.save({"G": G.state_dict(), "G_config": G.config, "config": {}, "step": 0, "metrics": {}}, ckpt)
    src = tmp_path / "ramp" / "plain.png"  # black to white: the plain inversion clips both ends
    save(src, u8(np.repeat(np.linspace(0.0, 1.0, 60, dtype=np.float32)[None, :, None], 3, axis=2).repeat(40, axis=0)),
         "PNG")
    assert main(["restore", str(src), "-o", str(tmp_path / "on"), "--model", str(ckpt)]) == 0
    assert main(["restore", str(src), "-o", str(tmp_path / "off"), "--model", str(ckpt), "--no-protect"]) == 0
    photo = read_photo(src, as_float=False)
    outs = {}
    for name, protect in (("on", True), ("off", False)):
        outs[name] = read_photo(tmp_path / name / "plain.png", as_float=False).rgb
        assert np.array_equal(outs[name], restore_photo(photo, Dehazer(ckpt, protect=protect)).rgb)
    assert not np.array_equal(outs["on"], outs["off"])
