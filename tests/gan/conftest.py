import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory):
    """16 smooth-ish 32x32 PNGs in two class folders, plus one non-square image elsewhere."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    for i in range(16):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(exist_ok=True)
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), xx * yy], -1)
        img = np.clip((base * 0.4 + 0.5 + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    return root
