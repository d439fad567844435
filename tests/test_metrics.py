import pytest
import torch

from dehaze.metrics import psnr, spectral_distance, ssim


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
