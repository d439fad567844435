"""Paired augmentation and the synthetic dataset (pair finding: tests/test_pairs.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dehaze.data import (
    ConcatKeyed,
    PairedFolderDataset,
    SyntheticHazeDataset,
    random_resized_crop,
    to_tensor,
)
from dehaze.errors import ConfigError, InputError
from dehaze.haze import HazeMixture, haze_preset


def _write(path: Path, rgb: np.ndarray | None = None, size: tuple[int, int] = (12, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb is None:
        rgb = np.random.default_rng(abs(hash(path.name)) % 2**32).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# ----------------------------------------------------------------------------- paired dataset


def _coordinate_pair(root: Path, h: int = 90, w: int = 120) -> None:
    """hazy and clear images whose R, G channels encode the pixel's x and y; B tells them apart."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)
    _write(root / "hazy" / "5_1.png", img.copy() | np.array([0, 0, 40], np.uint8))
    _write(root / "clear" / "5.png", img.copy() | np.array([0, 0, 200], np.uint8))


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(int)


def test_paired_augmentation_identical_on_both(tmp_path):
    _coordinate_pair(tmp_path)
    ds = PairedFolderDataset(tmp_path, crop=48, augment=True, seed=1)
    origins, flips = set(), 0
    for epoch in range(24):
        ds.set_epoch(epoch)
        item = ds[0]
        hazy, clear = _u8(item["hazy"]), _u8(item["clear"])
        assert hazy.shape == (48, 48, 3) and item["name"] == "5_1"
        np.testing.assert_array_equal(hazy[..., :2], clear[..., :2])  # same window, same flip
        assert (hazy[..., 2] == 40).all() and (clear[..., 2] == 200).all()
        x, y = hazy[..., 0], hazy[..., 1]
        assert (np.diff(y, axis=0) == 1).all()  # never flipped vertically
        flipped = bool((np.diff(x, axis=1) == -1).all())
        assert flipped or (np.diff(x, axis=1) == 1).all()
        flips += flipped
        origins.add((int(x.min()), int(y.min())))
    assert 3 <= flips <= 21 and len(origins) > 10


def test_paired_augmentation_deterministic_per_seed_and_epoch(tmp_path):
    _coordinate_pair(tmp_path)
    a = PairedFolderDataset(tmp_path, crop=32, seed=3)
    b = PairedFolderDataset(tmp_path, crop=32, seed=3)
    assert torch.equal(a[0]["hazy"], b[0]["hazy"])
    seen = set()
    for epoch in range(5):
        a.set_epoch(epoch)
        seen.add(a[0]["hazy"].numpy().tobytes())
    assert len(seen) > 1


def test_paired_validation_center_crop_and_multiple(tmp_path):
    _coordinate_pair(tmp_path, h=90, w=120)
    full = PairedFolderDataset(tmp_path, crop=None, augment=False, multiple=32)[0]
    assert full["hazy"].shape == (3, 64, 96)
    x, y = _u8(full["hazy"])[..., 0], _u8(full["clear"])[..., 1]
    assert x[0, 0] == 12 and y[0, 0] == 13  # centred: (120 - 96) / 2, (90 - 64) / 2
    center = PairedFolderDataset(tmp_path, crop=40, augment=False)[0]
    assert center["clear"].shape == (3, 40, 40) and _u8(center["clear"])[0, 0, 0] == 40
    whole = PairedFolderDataset(tmp_path, crop=None, augment=False)[0]
    assert whole["hazy"].shape == (3, 90, 120)
    assert whole["hazy"].min() >= -1 and whole["hazy"].max() <= 1


def test_paired_small_images_are_padded(tmp_path):
    _coordinate_pair(tmp_path, h=20, w=30)
    item = PairedFolderDataset(tmp_path, crop=32)[0]
    assert item["hazy"].shape == (3, 32, 32)
    np.testing.assert_array_equal(_u8(item["hazy"])[..., :2], _u8(item["clear"])[..., :2])


def test_paired_size_mismatch(tmp_path):
    _write(tmp_path / "hazy" / "1_1.png", size=(20, 30))
    _write(tmp_path / "clear" / "1.png", size=(25, 30))
    with pytest.raises(InputError, match="differ in size"):
        PairedFolderDataset(tmp_path, crop=None, augment=False)[0]


def test_paired_sots_style_larger_clear_is_center_cropped(tmp_path):
    yy, xx = np.mgrid[0:40, 0:50]
    big = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)
    _write(tmp_path / "hazy" / "1_1.png", big[5:35, 5:45].copy())
    _write(tmp_path / "clear" / "1.png", big)
    item = PairedFolderDataset(tmp_path, crop=None, augment=False)[0]
    np.testing.assert_array_equal(item["hazy"], item["clear"])


def test_dataset_rejects_bad_arguments(tmp_path):
    _coordinate_pair(tmp_path)
    with pytest.raises(ValueError, match="needs a crop"):
        PairedFolderDataset(tmp_path, crop=None, augment=True)
    with pytest.raises(InputError, match="no such folder"):
        SyntheticHazeDataset([tmp_path / "nope"], 32, haze_preset("mixed"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        SyntheticHazeDataset([tmp_path / "empty"], 32, haze_preset("mixed"))


# ----------------------------------------------------------------------------- synthetic dataset


@pytest.fixture
def clean_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(80, 100), (100, 70), (40, 50)]):  # the last one is smaller than the crop
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
        _write(tmp_path / "clean" / f"p{i}.png", img)
    return tmp_path / "clean"


def test_synthetic_items(clean_dir):
    ds = SyntheticHazeDataset([clean_dir], 64, haze_preset("mixed"), seed=0)
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert item["hazy"].shape == item["clear"].shape == (3, 64, 64)
        assert item["hazy"].dtype == torch.float32 and item["name"] == f"p{i}"
        assert item["hazy"].min() >= -1 and item["hazy"].max() <= 1
        assert not torch.equal(item["hazy"], item["clear"])
        assert set(item["meta"]) == {"A", "beta", "prior", "mean_t", "exposure"}
    assert len(SyntheticHazeDataset(clean_dir, 64, haze_preset("indoor"), samples_per_epoch=10)) == 10


def test_synthetic_exposure_gain_brightens_and_clips(clean_dir):
    outdoor = haze_preset("outdoor")
    plain = SyntheticHazeDataset([clean_dir], 64, outdoor, seed=3)
    bright = SyntheticHazeDataset([clean_dir], 64, replace(outdoor, exposure=(1.6, 1.6)), seed=3)
    a, b = (plain[0]["clear"] + 1) / 2, (bright[0]["clear"] + 1) / 2
    assert torch.allclose(b, (a * 1.6).clamp(max=1.0), atol=1e-5)  # same crop, a fixed gain, clipped at white
    assert bright[0]["meta"]["exposure"] == 1.6 and plain[0]["meta"]["exposure"] == 1.0
    ranged = SyntheticHazeDataset([clean_dir], 64, replace(outdoor, exposure=(1.0, 1.5)), seed=3)
    ratios = []
    for i in range(3):
        p, r = (plain[i]["clear"] + 1) / 2, (ranged[i]["clear"] + 1) / 2
        assert r.max() <= 1 and r.mean() >= p.mean() - 1e-6
        ratios.append(float(r.mean() / p.mean()))
    assert max(ratios) > 1.01  # a random gain, not always 1
    with pytest.raises(ConfigError, match="exposure"):
        replace(outdoor, exposure=(1.5, 1.0))


def test_exposure_belongs_to_the_scene_type_of_a_mixture(clean_dir):
    mix = HazeMixture((haze_preset("indoor"), replace(haze_preset("outdoor"), exposure=(1.2, 1.5))))
    ds = SyntheticHazeDataset([clean_dir], 48, mix, samples_per_epoch=24, seed=1)
    metas = [ds[i]["meta"] for i in range(24)]
    gained = [m for m in metas if m["exposure"] != 1.0]
    assert gained and len(gained) < len(metas)  # both scene types were drawn
    assert all(1.2 <= m["exposure"] <= 1.5 for m in gained)
    assert all(m["beta"] < 0.5 for m in gained)  # only outdoor haze (beta <= 0.25 x spatial variation)


def test_synthetic_items_with_airlight_and_transmission(clean_dir):
    plain = SyntheticHazeDataset([clean_dir], 64, haze_preset("mixed"), seed=3)[1]
    item = SyntheticHazeDataset([clean_dir], 64, haze_preset("mixed"), seed=3, with_asm=True)[1]
    assert torch.equal(item["hazy"], plain["hazy"])  # same draw, two more fields
    assert item["A"].shape == (3,) and item["t"].shape == (1, 64, 64)
    assert item["A"].tolist() == pytest.approx(item["meta"]["A"])
    assert 0 < item["t"].min() and item["t"].max() <= 1
    J, hazy = (item["clear"] + 1) / 2, (item["hazy"] + 1) / 2
    model = J * item["t"] + item["A"][:, None, None] * (1 - item["t"])  # I = J·t + A·(1 − t)
    assert torch.allclose(model.clamp(0, 1), hazy, atol=1e-4)  # meta A is rounded to 4 decimals


def test_synthetic_deterministic_for_a_seed(clean_dir):
    a = SyntheticHazeDataset([clean_dir], 48, haze_preset("mixed"), samples_per_epoch=6, seed=5)
    b = SyntheticHazeDataset([clean_dir], 48, haze_preset("mixed"), samples_per_epoch=6, seed=5)
    c = SyntheticHazeDataset([clean_dir], 48, haze_preset("mixed"), samples_per_epoch=6, seed=6)
    for i in range(6):
        ia, ib = a[i], b[i]
        assert torch.equal(ia["hazy"], ib["hazy"]) and torch.equal(ia["clear"], ib["clear"])
        assert ia["meta"] == ib["meta"]
    assert any(not torch.equal(a[i]["hazy"], c[i]["hazy"]) for i in range(6))
    first = a[0]["hazy"]
    a.set_epoch(1)
    assert not torch.equal(a[0]["hazy"], first)


def test_synthetic_cache_gives_same_items(clean_dir):
    a = SyntheticHazeDataset([clean_dir], 48, haze_preset("outdoor"), seed=2)
    b = SyntheticHazeDataset([clean_dir], 48, haze_preset("outdoor"), seed=2, cache=True)
    assert b.cache is not None and len(b.cache) == 3
    for i in range(3):
        assert torch.equal(a[i]["hazy"], b[i]["hazy"])


def test_dataloader_with_two_workers(clean_dir, tmp_path):
    ds = SyntheticHazeDataset([clean_dir], 32, haze_preset("mixed"), samples_per_epoch=8, seed=0)

    def load() -> list[dict]:
        torch.manual_seed(0)
        return list(DataLoader(ds, batch_size=2, num_workers=2, timeout=60))

    batches = load()
    assert len(batches) == 4
    assert batches[0]["hazy"].shape == (2, 3, 32, 32) and len(batches[0]["name"]) == 2
    flat = torch.cat([b["hazy"] for b in batches])
    # no two items alike: the workers do not repeat each other's random draws
    assert len({x.numpy().tobytes() for x in flat}) == 8
    again = torch.cat([b["hazy"] for b in load()])
    assert torch.equal(flat, again)  # reproducible under torch.manual_seed
    torch.manual_seed(1)
    other = torch.cat([b["hazy"] for b in DataLoader(ds, batch_size=2, num_workers=2, timeout=60)])
    assert not torch.equal(flat, other)  # a new epoch (new torch seed) gives new haze

    _coordinate_pair(tmp_path / "pairs")
    pairs = DataLoader(
        PairedFolderDataset(tmp_path / "pairs", crop=32), batch_size=1, num_workers=2, timeout=60
    )
    item = next(iter(pairs))
    assert item["hazy"].shape == (1, 3, 32, 32) and item["name"] == ["5_1"]


def test_persistent_workers_draw_new_haze_every_epoch(clean_dir):
    ds = SyntheticHazeDataset([clean_dir], 32, haze_preset("mixed"), samples_per_epoch=4, seed=0)
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True, timeout=60)
    first, second = (torch.cat([b["hazy"] for b in loader]) for _ in range(2))
    assert not any(torch.equal(a, b) for a, b in zip(first, second))


def test_random_resized_crop_sizes():
    rng = np.random.default_rng(0)
    assert random_resized_crop(np.zeros((300, 400, 3), np.uint8), 128, rng).shape == (128, 128, 3)
    assert random_resized_crop(np.zeros((50, 60, 3), np.uint8), 64, rng).shape == (64, 64, 3)
    # the window is never smaller than the crop: an exact-size image comes back unchanged
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(random_resized_crop(img, 64, rng), img)


def test_to_tensor_range():
    x = to_tensor(np.array([[[0, 128, 255]]], np.uint8))
    assert x.shape == (3, 1, 1) and x[0].item() == -1 and x[2].item() == 1
    with pytest.raises(ValueError, match="HxWx3"):
        to_tensor(np.zeros((2, 2), np.uint8))


def test_epoch_keys_give_the_same_items_in_workers_and_in_the_main_process(clean_dir, tmp_path):
    """(index, epoch) keys, as the trainers' step sampler yields them: items are a pure function of the key
    (no worker seed, no call count), new in every epoch; a concatenation passes them on."""
    from dehaze.train.dist import StepBatchSampler

    ds = SyntheticHazeDataset([clean_dir], 32, haze_preset("mixed"), samples_per_epoch=4, seed=0)
    main = [ds[(i, e)]["hazy"] for e in (0, 1) for i in range(4)]
    assert not torch.equal(main[0], main[4])  # another epoch, another draw
    sampler = StepBatchSampler(4, 2, seed=0, steps=4, with_epoch=True)
    for workers in (0, 2):
        torch.manual_seed(workers)  # the workers' seeds must not matter
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, timeout=60 if workers else 0)
        got = [b["hazy"] for b in loader]
        keys = [k for batch in sampler for k in batch]
        for (i, e), x in zip(keys, torch.cat(got)):
            assert torch.equal(x, main[e * 4 + i])
    _coordinate_pair(tmp_path / "pairs")
    pairs = PairedFolderDataset(tmp_path / "pairs", crop=32, seed=1)
    both = ConcatKeyed([ds, pairs])
    assert len(both) == 5 and both[4]["name"] == "5_1"
    assert torch.equal(both[(2, 1)]["hazy"], main[6]) and torch.equal(both[(4, 3)]["hazy"], pairs[(0, 3)]["hazy"])
    assert not torch.equal(pairs[(0, 3)]["hazy"], pairs[(0, 4)]["hazy"])  # a new crop in another epoch
    with pytest.raises(IndexError):
        both[(5, 0)]
