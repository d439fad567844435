import numpy as np
import pytest
import torch
from PIL import Image

from dehaze.errors import ConfigError, InputError
from dehaze.gan.data import ImageFolder, load_dataset
from dehaze.train.dist import StepBatchSampler


def test_image_folder_reads_class_subfolders(tiny_images):
    ds = ImageFolder(tiny_images)
    assert len(ds) == 16 and ds.data is not None  # small: preloaded
    x = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    lazy = ImageFolder(tiny_images, resolution=16, preload=False)
    assert lazy.data is None and lazy[3].shape == (3, 16, 16)


def test_non_square_images_are_centre_cropped(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 10:30] = 255  # the centre square is white
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = ImageFolder(tmp_path, resolution=8)[0]
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.ones_like(x))
    with pytest.raises(InputError, match="need a resolution"):
        ImageFolder(tmp_path)


def test_missing_data_errors(tmp_path):
    with pytest.raises(InputError, match="image folder not found"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(InputError, match="no images"):
        ImageFolder(tmp_path)
    with pytest.raises(InputError, match="cifar-10-batches-py.*nothing is downloaded"):
        load_dataset("cifar10", tmp_path, 32)
    with pytest.raises(ConfigError, match="needs --data-root"):
        load_dataset("stl10", None, 48)


def test_step_sampler_is_a_function_of_the_step():
    a = StepBatchSampler(50, batch=8, seed=3, steps=20)
    batches = list(a)
    assert all(len(b) == 8 for b in batches)
    assert list(StepBatchSampler(50, 8, 3, start_step=13, steps=7)) == batches[13:]  # exact resume
    epoch = sum(batches[:6], [])  # 6 full batches per epoch: no repeats inside an epoch
    assert len(set(epoch)) == 48
    r0 = StepBatchSampler(50, 4, 3, rank=0, world=2).indices(5)
    r1 = StepBatchSampler(50, 4, 3, rank=1, world=2).indices(5)
    assert r0 + r1 == batches[5] and not set(r0) & set(r1)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        StepBatchSampler(5, 4, world=2)
    keyed = list(StepBatchSampler(50, 8, 3, steps=20, with_epoch=True))  # (index, epoch) for the dehazing data
    assert [[i for i, _ in b] for b in keyed] == batches
    assert {e for _, e in keyed[5]} == {0} and {e for _, e in keyed[6]} == {1}  # 6 steps per epoch
