import pytest
import torch

from dehaze.nets import PatchDiscriminator


@pytest.mark.parametrize("h,w", [(64, 64), (70, 96)])
def test_conditional_patch_logits(h, w):
    D = PatchDiscriminator(width=8)
    y = D(torch.rand(2, 3, h, w), cond=torch.rand(2, 3, h, w))
    assert y.shape[:2] == (2, 1) and y.shape[-1] >= 2


def test_unconditional_and_spectral_norm():
    D = PatchDiscriminator(in_channels=3, width=8, n_layers=2, norm="none", spectral_norm=True)
    assert D(torch.rand(1, 3, 32, 32)).shape == (1, 1, 6, 6)
    assert any("weight_orig" in n for n, _ in D.named_parameters())


def test_shape_errors_are_clear():
    D = PatchDiscriminator(width=8)
    with pytest.raises(ValueError, match="does not match"):
        D(torch.rand(2, 3, 64, 64), cond=torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="input channels"):
        D(torch.rand(2, 3, 64, 64))
