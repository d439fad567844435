"""Fixtures shared by the tests of the library (``tests/<area>/``) and of the scripts (``tests/training/``).

No torch at module level: the serving and evaluation tests run without the training stack.
"""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the duration of a test (tiny networks run faster, and the CPU is shared)."""
    import torch

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


def _photo(rng, h=48, w=64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * x + c) * 0.4 + 0.5 for c in range(3)], -1) + rng.normal(0, 0.05, (h, w, 3))
    return (np.clip(base * (0.5 + y[..., None]), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dehazing_data(tmp_path_factory):
    """Six clean 48x64 photos (`clean/`) and two hazy/clear validation pairs (`val/hazy`, `val/clear`)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "clean").mkdir()
    for i in range(6):
        Image.fromarray(_photo(rng)).save(root / "clean" / f"p{i}.png")
    for sub in ("hazy", "clear"):
        (root / "val" / sub).mkdir(parents=True)
    for i in range(2):
        clear = _photo(rng, 40, 56)
        Image.fromarray(clear).save(root / "val" / "clear" / f"{i}.png")
        hazy = (clear * 0.5 + 110).astype(np.uint8)
        Image.fromarray(hazy).save(root / "val" / "hazy" / f"{i}_1.png")
    return root
