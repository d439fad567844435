from pathlib import Path

import numpy as np
import pytest
import torch

from dehaze.io import read_photo
from dehaze.metrics import psnr, psnr_np, spectral_distance, spectral_distance_np, ssim, ssim_np
from dehaze.pairs import find_pairs, fit_clear

SOTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sots-dev"


def test_psnr_known_value_and_identity():
    x = torch.rand(2, 3, 16, 16)
    assert psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))[0].item() == pytest.approx(20.0, abs=1e-4)
    assert torch.all(psnr(x, x) > 100)


def test_ssim_orders_degradations():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    slightly, badly = (x + 0.02 * torch.randn_like(x)).clamp(0, 1), (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(x, slightly) > ssim(x, badly)
    assert ssim(torch.rand(2, 3, 5, 7), torch.rand(2, 3, 5, 7)).shape == (2,)


def test_spectral_distance_sees_blur():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    blur = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert torch.all(spectral_distance(x, x) < 1e-6)
    assert torch.all(spectral_distance(x, blur) > 0.05)
    with pytest.raises(ValueError, match="equal shape"):
        spectral_distance(x, x[:, :, :16])


# ----------------------------------------------------------------------------- NumPy (evaluation) = torch (training)


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()


def _assert_numpy_matches_torch(x: np.ndarray, y: np.ndarray) -> None:
    tx, ty = _tensor(x), _tensor(y)
    assert psnr_np(x, y) == pytest.approx(float(psnr(tx, ty)[0]), abs=1e-4)
    assert ssim_np(x, y) == pytest.approx(float(ssim(tx, ty)[0]), abs=1e-4)
    assert spectral_distance_np(x, y) == pytest.approx(float(spectral_distance(tx, ty)[0]), abs=1e-4)


# square, non-square (the bins in cycles per short side), odd, and small enough to shrink the SSIM window
@pytest.mark.parametrize("shape", [(32, 32), (48, 64), (61, 37), (9, 14), (5, 7), (2, 3)])
def test_numpy_metrics_equal_torch_on_random_images(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.random((*shape, 3)).astype(np.float32)
    for y in (np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1), rng.random(x.shape), x * 0.6 + 0.3):
        _assert_numpy_matches_torch(x, y.astype(np.float32))


@pytest.mark.parametrize("subset", ["indoor", "outdoor"])
def test_numpy_metrics_equal_torch_on_real_pairs(subset):
    root = SOTS / subset
    if not root.is_dir():
        pytest.skip(f"shared data not present: {root}")
    for hp, cp in find_pairs(root)[:2]:
        hazy = read_photo(hp).rgb
        _assert_numpy_matches_torch(hazy, fit_clear(hazy, read_photo(cp).rgb, hp, cp))


def test_numpy_metrics_known_values_and_checks():
    x = np.random.default_rng(0).random((24, 40, 3))
    assert psnr_np(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)) == pytest.approx(20.0, abs=1e-9)
    assert psnr_np(x, x) > 100 and ssim_np(x, x) == pytest.approx(1.0, abs=1e-6)
    assert spectral_distance_np(x, x) == 0.0
    assert ssim_np(x, 1 - x) < 0 < ssim_np(x, x * 0.5 + 0.2) < 1
    with pytest.raises(ValueError, match="equal shape"):
        ssim_np(x, x[:, :20])
