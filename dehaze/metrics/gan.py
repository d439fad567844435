"""Metrics for unconditional GANs: FID and KID (Inception-v3).

The spectral metrics, which need no weights, are in :mod:`dehaze.metrics.spectral`.

FID and KID
-----------
Features are the 2048-d pool3 activations of Inception-v3 for images resized (bilinear) to
299×299 with pixel values in ``[-1, 1]``. FID is

    ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)

with the matrix square root from :func:`scipy.linalg.sqrtm` (Heusel et al. 2017). KID is the
unbiased MMD² with the kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets
(Bińkowski et al. 2018). Both accept any feature extractor (tests inject a small one).

The Inception weights are never downloaded. They are looked up, in order, in ``--inception``
/ ``eval.inception``, the ``DEHAZE_INCEPTION`` environment variable, then in
``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch/hub/checkpoints/``) under the names
``pt_inception-2015-12-05-6726825d.pth`` (the FID Inception of pytorch-fid, ported from the
TensorFlow original; numbers comparable with papers) and ``inception_v3_google-0cc3c7bd.pth``
(torchvision's ImageNet weights; FIDs are then *not* comparable with published ones). When
none is there, :func:`find_inception_weights` raises :class:`InceptionWeightsError` naming the
files and the folder, and no number is printed.

A KID on other features
-----------------------
Where no Inception weights exist, :class:`CifarFeatures` (a small CNN trained on 32×32 CIFAR-10 by
``training/train_cifar_features.py``; its penultimate layer, 96-d) gives a KID that can still rank
generators trained on the same data. It is **not** comparable with published FID/KID numbers, which
use Inception; results name it ``kid_cifar``. :func:`load_kid_extractor` selects it by file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dehaze.errors import InputError

__all__ = [
    "INCEPTION_FILES", "INCEPTION_ENV", "InceptionWeightsError", "find_inception_weights", "InceptionFeatures",
    "load_inception", "extract_features", "feature_statistics", "frechet_distance", "fid_from_features",
    "kid_from_features", "fid_kid", "CifarFeatures", "load_cifar_features", "load_kid_extractor",
]

INCEPTION_FILES = ("pt_inception-2015-12-05-6726825d.pth", "inception_v3_google-0cc3c7bd.pth")
INCEPTION_ENV = "DEHAZE_INCEPTION"
FEATURE_DIM = 2048


class InceptionWeightsError(InputError):
    """The Inception-v3 weights needed for FID/KID are not on this machine."""


def _checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"  # honours $TORCH_HOME


def find_inception_weights(path: str | Path | None = None) -> Path:
    """The Inception weights file to use (see module docstring for the search order).

    Raises:
        InceptionWeightsError: nothing found; the message names the files and where to put them.
    """
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(f"Inception weights not found at {p} (given by --inception / eval.inception)")
        return p
    env = os.environ.get(INCEPTION_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(f"Inception weights not found at {p} (given by ${INCEPTION_ENV})")
        return p
    folder = _checkpoint_dir()
    for name in INCEPTION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InceptionWeightsError(
        f"FID/KID need Inception-v3 weights, and nothing is downloaded: put {INCEPTION_FILES[0]} (pytorch-fid's "
        f"FID Inception) or {INCEPTION_FILES[1]} (torchvision's) into {folder}/, or pass --inception PATH "
        f"(or set ${INCEPTION_ENV})")


# ------------------------------------------------------------------------------------ Inception


def _fid_blocks():
    """pytorch-fid's variants of the Inception blocks (TensorFlow's pooling) for the FID weights."""
    from torchvision.models import inception as tvi

    class FIDInceptionA(tvi.InceptionA):
        def _forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
            return [self.branch1x1(x), b5, b3, bp]

    class FIDInceptionC(tvi.InceptionC):
        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = self.branch7x7dbl_1(x)
            for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                bd = layer(bd)
            bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
            return [self.branch1x1(x), b7, bd, bp]

    class FIDInceptionE(tvi.InceptionE):
        pool = "avg"

        def _forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
            if self.pool == "avg":
                p = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
            else:  # the last block of the TF graph max-pools (a bug kept for comparability)
                p = F.max_pool2d(x, 3, 1, 1)
            return [self.branch1x1(x), b3, bd, self.branch_pool(p)]

    class FIDInceptionEMax(FIDInceptionE):
        pool = "max"

    return FIDInceptionA, FIDInceptionC, FIDInceptionE, FIDInceptionEMax


def _inception_from_state(state: dict) -> nn.Module:
    """An Inception-v3 built to fit ``state`` (FID variant if its classifier has 1008 outputs)."""
    from torchvision.models import inception as tvi

    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    fc = state.get("fc.weight")
    if fc is None:
        raise InceptionWeightsError("the Inception weights file has no 'fc.weight': not an Inception-v3 state dict")
    net = tvi.Inception3(num_classes=fc.shape[0], aux_logits=False, transform_input=False, init_weights=False)
    if fc.shape[0] == 1008:
        a, c, e, e_max = _fid_blocks()
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = a(192, 32), a(256, 64), a(288, 64)
        net.Mixed_6b, net.Mixed_6c = c(768, 128), c(768, 160)
        net.Mixed_6d, net.Mixed_6e = c(768, 160), c(768, 192)
        net.Mixed_7b, net.Mixed_7c = e(1280), e_max(2048)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise InceptionWeightsError(f"the Inception weights do not fit Inception-v3: {str(exc).splitlines()[0]}") \
            from None
    return net.eval()


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features: ``(B, 3, H, W)`` in ``[-1, 1]`` → ``(B, 2048)``.

    Built by :func:`load_inception`; ``net`` may also be a randomly initialised Inception3
    (tests). Inputs are resized to 299×299 bilinearly.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        n = self.net
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception(path: str | Path | None = None, device: torch.device | str = "cpu") -> InceptionFeatures:
    """The pool3 feature extractor from a local weights file (never downloads; see module docstring)."""
    file = find_inception_weights(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InceptionWeightsError(f"cannot read Inception weights {file}: {exc.__class__.__name__}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return InceptionFeatures(_inception_from_state(state)).to(device)


# ------------------------------------------------------------------------------------ FID / KID

Images = torch.Tensor | Iterable[torch.Tensor]


def image_batches(images: Images, batch: int) -> Iterable[torch.Tensor]:
    """Batches of at most ``batch`` images from a tensor ``(N, C, H, W)``; an iterable of batches as it is."""
    if isinstance(images, torch.Tensor):
        for i in range(0, images.shape[0], batch):
            yield images[i:i + batch]
    else:
        yield from images


@torch.no_grad()
def extract_features(images: Images, extractor: Callable[[torch.Tensor], torch.Tensor], batch: int = 50,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """Features ``(N, d)`` (float64) of images in ``[-1, 1]`` (a tensor or an iterable of batches)."""
    out = [extractor(x.to(device)).double().cpu().numpy() for x in image_batches(images, batch)]
    if not out:
        raise InputError("no images to compute features of")
    return np.concatenate(out)


def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``ddof=1``) of features ``(N, d)``."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, d), got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians (the FID formula), via :func:`scipy.linalg.sqrtm`.

    When the product of covariances is singular, ``eps·I`` is added to both (as pytorch-fid).

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2·(2-1)²
        4.0
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets ``(N, d)``."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid_from_features(real: np.ndarray, fake: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets.

    The subset size is capped at the smaller set's size.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    vals = [_mmd2_unbiased(real[rng.choice(real.shape[0], m, replace=False)],
                           fake[rng.choice(fake.shape[0], m, replace=False)]) for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals))


def fid_kid(real: Images, fake: Images, extractor: Callable[[torch.Tensor], torch.Tensor], batch: int = 50,
            device: torch.device | str = "cpu", kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """FID and KID (mean, std) of two image sets in ``[-1, 1]`` with the given feature extractor."""
    fr = extract_features(real, extractor, batch, device)
    ff = extract_features(fake, extractor, batch, device)
    kid, kid_std = kid_from_features(fr, ff, kid_subsets, kid_subset_size)
    return {"fid": fid_from_features(fr, ff), "kid": kid, "kid_std": kid_std, "n_real": len(fr), "n_fake": len(ff)}


# ------------------------------------------------------------------------------------ CIFAR features


class CifarFeatures(nn.Module):
    """A small CIFAR-10 classifier whose penultimate activations serve as KID features.

    Five 3×3 conv + BatchNorm + ReLU layers (``widths``), max-pooled to 8×8, global average pool to a
    ``widths[-1]``-d feature, then a linear classifier. Images ``(B, 3, H, W)`` in ``[-1, 1]`` are
    resized to 32×32. ``forward`` returns the features; :meth:`logits` the class scores.

    Example:
        >>> f = CifarFeatures()
        >>> f(torch.zeros(2, 3, 32, 32)).shape, f.logits(torch.zeros(2, 3, 32, 32)).shape
        (torch.Size([2, 96]), torch.Size([2, 10]))
    """

    def __init__(self, widths: tuple[int, ...] = (24, 24, 48, 48, 96), classes: int = 10):
        super().__init__()
        layers, c = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2))
            c = w
        self.widths = tuple(widths)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        return self.body(x.float()).mean(dim=(2, 3))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def load_cifar_features(path: str | Path, device: torch.device | str = "cpu") -> CifarFeatures:
    """The :class:`CifarFeatures` extractor saved by ``training/train_cifar_features.py`` (eval mode, frozen).

    Raises:
        InputError: the file is missing or is not such a classifier.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"KID feature classifier not found at {p}")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        net = CifarFeatures(tuple(int(w) for w in blob["widths"]), int(blob["classes"]))
        net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    except Exception as exc:
        raise InputError(f"{p} is not a CIFAR feature classifier from train_cifar_features.py "
                         f"({exc.__class__.__name__})") from None
    for q in net.parameters():
        q.requires_grad_(False)
    return net.eval().to(device)


def load_kid_extractor(spec: str | Path | None, device: torch.device | str = "cpu") -> CifarFeatures | None:
    """The extractor for the extra KID named by ``spec`` (``eval.kid_features``): ``None``/``inception`` mean
    no extra one (KID then comes with FID from Inception); anything else is a :class:`CifarFeatures` file."""
    if spec is None or str(spec) in ("", "inception"):
        return None
    return load_cifar_features(spec, device)
