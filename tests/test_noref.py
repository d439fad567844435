"""Tests of dehaze.metrics.noref: FADE against the paper's published behaviour, and the full-size scores.

FADE (Choi, You, Bovik, IEEE TIP 2015) is published to rise with fog density on one scene, to score
foggy photos above fog-free ones, and to give a local (patch) index, so a photo's density does not
depend on how many pixels it has. The model statistics are ours (training/fit_fade.py), so the
tests check that behaviour, not MATLAB's numbers, and use photos the model was not fitted on (the
held-out split, real-hazy). No torch at module level: these metrics are part of the base install.
"""

import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from dehaze.errors import InputError
from dehaze.io import read_photo
from dehaze.metrics import noref
from dehaze.metrics.noref import (
    FADE_FEATURES,
    FADE_MODEL_FILE,
    FadeModel,
    brightness_ratio,
    fade,
    fade_details,
    fade_features,
    fit_mvg,
    load_fade_model,
    mvg_distance,
    newly_clipped,
    noise_amplification,
)
from dehaze.pairs import read_split

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
HELDOUT = REPO / "training" / "splits" / "heldout-v1.txt"
needs_data = pytest.mark.skipif(not (DATA / "clean").is_dir(), reason=f"shared data not found at {DATA}")


def heldout(n: int, step: int = 1) -> list[Path]:
    """Held-out clean photos: never used to fit the FADE model (training/fit_fade.py excludes them)."""
    return [DATA / "clean" / rel for rel in read_split(HELDOUT)[: n * step : step]]


def scene(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """A textured synthetic scene: shapes of several colours, edges, fine texture, some dark pixels."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(40):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + rng.integers(8, 60)), int(y0 + rng.integers(8, 60))),
                      rng.random(3).tolist(), -1)
    img += rng.normal(0, 0.04, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def fog(clear: np.ndarray, t: float, A: float = 0.9) -> np.ndarray:
    """Uniform fog of transmission ``t`` (the atmospheric scattering model)."""
    return clear * t + A * (1 - t)


# ----------------------------------------------------------------------------- FADE: published behaviour


def test_fade_rises_with_fog_density_on_a_synthetic_scene():
    clear = scene()
    d = [fade(fog(clear, t)) for t in (1.0, 0.8, 0.6, 0.4, 0.25, 0.15)]
    assert all(a < b for a, b in zip(d, d[1:])), d


@needs_data
@pytest.mark.parametrize("index", [0, 20, 40])
def test_fade_rises_with_fog_density_on_a_photo(index):
    photo = read_photo(DATA / "clean" / read_split(HELDOUT)[index]).rgb
    d = [fade(fog(photo, t)) for t in (1.0, 0.8, 0.6, 0.4, 0.25, 0.15)]
    assert all(a < b for a, b in zip(d, d[1:])), d
    assert d[-1] > 3 * d[0]


@needs_data
def test_fade_clean_photos_below_their_hazy_versions_and_below_real_haze():
    photos = [read_photo(p).rgb for p in heldout(12, 4)]
    clean = [fade(p) for p in photos]
    # a light, coloured, depth-varying haze (top of the photo farther than the bottom, t 0.45 .. 0.8)
    light = []
    for p in photos:
        t = np.linspace(0.45, 0.8, p.shape[0], dtype=np.float32)[:, None, None]
        light.append(fade(p * t + np.array([0.85, 0.87, 0.9], np.float32) * (1 - t)))
    dense = [fade(fog(p, 0.35)) for p in photos]
    assert all(c < d for c, d in zip(clean, dense)), list(zip(clean, dense))
    # Df is a distance to the fog-free mean, two-sided: a photo more contrasty and colourful than the
    # average fog-free photo (urban100/img_049, an orange facade) comes *closer* to it under light haze
    assert sum(c < h for c, h in zip(clean, light)) >= 11, list(zip(clean, light))
    assert np.median(light) > 1.4 * np.median(clean)
    # real fog (photos never fitted on): the set's median is above that of clean photos
    real = sorted((DATA / "real-hazy").iterdir())
    if real:
        assert np.median([fade(read_photo(p, as_float=False).rgb) for p in real]) > np.median(clean) * 1.2


@needs_data
def test_fade_does_not_depend_on_the_image_size():
    photo = read_photo(DATA / "real-hazy-large" / "ohaze_10_hazy.jpg", as_float=False).rgb  # 2526x2502
    h, w = photo.shape[:2]

    def at(side):
        f = side / max(h, w)
        return fade(cv2.resize(photo, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA))

    full = fade(photo)
    # at or above the working side (1024 px) the copy FADE sees is the same up to resampling
    for side in (2048, 1536, 1024):
        assert at(side) == pytest.approx(full, rel=0.03), side
    # below it FADE sees fewer, coarser patches: close still
    for side in (768, 512):
        assert at(side) == pytest.approx(full, rel=0.15), side


def test_fade_of_a_downscaled_copy_matches_on_a_synthetic_scene():
    big = cv2.resize(scene(600, 800), (2400, 1800), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(big, (1024, 768), interpolation=cv2.INTER_AREA)
    assert fade(big) == pytest.approx(fade(small), rel=0.02)


def test_fade_accepts_integers_and_floats_alike():
    x = scene()
    u8 = (x * 255 + 0.5).astype(np.uint8)
    u16 = u8.astype(np.uint16) * 257
    assert fade(u8) == pytest.approx(fade(u8.astype(np.float32) / 255), abs=1e-9)
    assert fade(u16) == pytest.approx(fade(u8), abs=1e-9)


def test_fade_errors_on_tiny_and_flat_images_never_nan():
    with pytest.raises(InputError, match="too small for FADE"):
        fade(np.random.default_rng(0).random((20, 300, 3)))
    for value in (0.0, 0.5, 1.0):
        with pytest.raises(InputError, match="flat image"):
            fade(np.full((64, 64, 3), value))
    with pytest.raises(ValueError, match="HxWx3"):
        fade(np.zeros((64, 64)))
    # almost flat, black, or one colour per half: finite numbers
    nearly = np.full((64, 64, 3), 0.5)
    nearly[10, 10] = 0.52
    black = np.zeros((64, 64, 3))
    black[:, 32:] = 0.01
    halves = np.zeros((64, 64, 3))
    halves[:32] = (1.0, 0.0, 0.0)
    halves[32:] = (0.0, 0.0, 1.0)
    for img in (nearly, black, halves):
        f = fade_features(img)
        d = fade_details(img)
        assert np.isfinite(f).all() and np.isfinite(list(d.values())).all()


def test_fade_features_follow_the_papers_definitions():
    rng = np.random.default_rng(0)
    f = fade_features(rng.random((64, 96, 3)))
    assert f.shape == (8 * 12, len(FADE_FEATURES)) == (96, 12)
    assert np.isfinite(f).all() and (f >= 0).all()  # log(1 + non-negative)
    # a patch half black, half white (grey): entropy 1 bit, dark channel 0.5, saturation 0
    img = np.zeros((32, 32, 3))
    img[:, ::2] = 1.0
    f = np.expm1(fade_features(img))
    col = {name: f[:, i] for i, name in enumerate(FADE_FEATURES)}
    assert col["entropy"] == pytest.approx(np.ones(16))
    assert col["dark_channel"] == pytest.approx(np.full(16, 0.5))
    assert col["saturation"] == pytest.approx(np.zeros(16))
    assert col["colourfulness"] == pytest.approx(np.zeros(16), abs=1e-9)  # grey: rg = yb = 0
    # fog lowers contrast, sharpness, entropy and saturation and raises the dark channel
    clear = scene()
    a, b = fade_features(clear).mean(0), fade_features(fog(clear, 0.3)).mean(0)
    down = ("mscn_variance", "sharpness", "contrast_energy_grey", "entropy", "saturation", "colourfulness")
    for name in down:
        assert b[FADE_FEATURES.index(name)] < a[FADE_FEATURES.index(name)], name
    assert b[FADE_FEATURES.index("dark_channel")] > a[FADE_FEATURES.index("dark_channel")]


# ----------------------------------------------------------------------------- FADE: the model


def test_fit_mvg_weighs_images_equally_and_distance_is_mahalanobis():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (4000, 12)), rng.normal(4, 1, (100, 12))
    mean, cov, n_img, n_patch = fit_mvg([a, b])
    assert (n_img, n_patch) == (2, 4100)
    assert mean == pytest.approx(np.full(12, 2.0), abs=0.2)  # not 0.1 (pooled patches)
    assert cov[0, 0] == pytest.approx(1 + 4, abs=0.3)  # within + between images
    with pytest.raises(ValueError):
        fit_mvg([])
    eye = np.eye(12)
    assert mvg_distance(np.zeros(12), eye, np.full(12, 1.0), eye) == pytest.approx(np.sqrt(12))
    assert mvg_distance(np.zeros(12), 4 * eye, np.full(12, 1.0), 4 * eye) == pytest.approx(np.sqrt(3))


def test_shipped_model_loads_is_package_data_and_round_trips(tmp_path):
    model = load_fade_model()
    assert model.side == noref.FADE_SIDE and model.fog_free_mean.shape == (12,)
    assert "fitted here" in model.about["note"] and "heldout-v1" in model.about["fog_free"]
    for cov in (model.fog_free_cov, model.foggy_cov):
        assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
    package_data = re.search(r"^dehaze = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.M)
    assert '"metrics/fade_model.json"' in package_data.group(1)  # a non-editable install ships it
    assert FADE_MODEL_FILE.parent == Path(noref.__file__).parent
    path = tmp_path / "m.json"
    path.write_text(json.dumps(model.to_dict()))
    again = load_fade_model(path)
    assert np.array_equal(again.foggy_cov, model.foggy_cov) and again.side == model.side
    x = scene()
    assert fade(x, again) == fade(x)
    with pytest.raises(InputError, match="not found"):
        load_fade_model(tmp_path / "missing.json")
    bad = model.to_dict()
    bad["foggy"]["mean"] = [0.0] * 11
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="cannot be used"):
        load_fade_model(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="finite"):
        FadeModel(np.full(12, np.nan), np.eye(12), np.zeros(12), np.eye(12))


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_fade", REPO / "training" / "fit_fade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fit_fade_script_fits_on_training_photos_only(tmp_path, capsys):
    pytest.importorskip("torch")  # the haze synthesiser is part of the training stack
    from PIL import Image

    clean = tmp_path / "clean" / "set"
    clean.mkdir(parents=True)
    for i in range(4):
        Image.fromarray((scene(96, 128, seed=i) * 255).astype(np.uint8)).save(clean / f"{i}.png")
    split = tmp_path / "split.txt"
    split.write_text("# held out\nset/3.png\n")
    script = _fit_script()
    out = tmp_path / "model.json"
    assert script.main(["--clean", str(tmp_path / "clean"), "--exclude", str(split), "-o", str(out)]) == 0
    model = load_fade_model(out)
    assert "3 training clean photos" in model.about["fog_free"]
    assert model.about["haze"]["beta"] == [1.5, 3.5]
    assert model.about["fitted_photos_fade_median"]["clean"] < model.about["fitted_photos_fade_median"]["hazy"]
    # the measurement sets are refused
    (tmp_path / "real-hazy").mkdir()
    assert script.main(["--clean", str(tmp_path / "real-hazy"), "-o", str(tmp_path / "no.json")]) == 2
    assert "measurement set" in capsys.readouterr().err and not (tmp_path / "no.json").exists()


# ----------------------------------------------------------------------------- clipping, brightness, noise


def test_newly_clipped_counts_only_what_the_output_clipped():
    x = np.full((10, 10, 3), 0.5, np.float32)
    x[0, :] = 1.0  # clipped white in the input already
    x[1, :5, 1] = 0.0  # black already
    y = x.copy()
    y[0, :] = 1.0  # still white: not new
    y[2, :4] = (0.0, 0.5, 0.5)  # 4 new black
    y[3, :3] = (0.5, 0.999, 0.5)  # 3 new white (>= 254/255)
    y[4, 0] = (0.0, 1.0, 0.5)  # both: once in "any"
    y[5, 0] = (1 / 255 + 0.002, 253 / 255, 0.5)  # just inside: not clipped
    assert newly_clipped(x, y) == pytest.approx({"black": 0.05, "white": 0.04, "any": 0.08})
    assert newly_clipped(x, x) == {"black": 0.0, "white": 0.0, "any": 0.0}
    # integers: levels 1 and 254 of 255 count; the same numbers as floats; any strip height
    xi, yi = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)
    yi[6, 0] = (1, 128, 128)
    yi[7, 0] = (128, 254, 128)
    ref = newly_clipped(xi, yi)
    assert ref == pytest.approx({"black": 0.06, "white": 0.05, "any": 0.10})
    assert newly_clipped(xi, yi, strip_rows=3) == ref
    assert newly_clipped(xi.astype(np.uint16) * 257, yi.astype(np.uint16) * 257) == ref
    with pytest.raises(ValueError, match="differ in size"):
        newly_clipped(x, y[:5])


def test_brightness_ratio():
    rng = np.random.default_rng(0)
    x = rng.random((50, 70, 3)).astype(np.float32) * 0.8 + 0.1
    assert brightness_ratio(x, x) == 1.0
    assert brightness_ratio(x, x * 0.5) == pytest.approx(0.5, rel=1e-6)
    assert brightness_ratio(x, x * 0.5, strip_rows=7) == pytest.approx(0.5, rel=1e-6)
    u8 = (x * 255).astype(np.uint8)
    assert brightness_ratio(u8, u8 // 2) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(InputError, match="black"):
        brightness_ratio(np.zeros_like(x), x)


def test_noise_amplification_measures_flat_areas_only():
    rng = np.random.default_rng(0)
    h, w = 160, 200
    img = np.full((h, w, 3), 0.6, np.float32)
    img[:, :100] = np.where((np.indices((h, 100)).sum(0) // 6) % 2 == 0, 0.2, 0.8)[..., None]  # texture left
    noisy = np.clip(img + rng.normal(0, 0.01, (h, w, 1)).astype(np.float32), 0, 1)
    # output doubles the noise on the flat right half, and quadruples the texture's contrast
    out = noisy.copy()
    out[:, 100:] = 0.6 + 2 * (noisy[:, 100:] - 0.6)
    out[:, :100] = np.clip(0.5 + 4 * (noisy[:, :100] - 0.5), 0, 1)
    r = noise_amplification(noisy, out)
    assert r["ratio"] == pytest.approx(2.0, rel=0.05)  # the texture (not flat) is not counted
    assert r["input"] == pytest.approx(0.01 * 255, rel=0.15)  # Immerkær's estimate of sigma, grey levels
    assert noise_amplification(noisy, out, strip_rows=9) == pytest.approx(r, rel=1e-5)
    assert noise_amplification(noisy, noisy)["ratio"] == 1.0
    # a perfectly smooth input: its noise counts as 0.1 grey level, no division by zero
    flat = np.full((64, 64, 3), 0.5, np.float32)
    assert noise_amplification(flat, flat) == {"input": pytest.approx(0.1), "output": pytest.approx(0.1), "ratio": 1.0}
    assert np.isfinite(noise_amplification(flat, noisy[:64, :64])["ratio"])
    with pytest.raises(ValueError, match="flat_fraction"):
        noise_amplification(flat, flat, flat_fraction=0)
