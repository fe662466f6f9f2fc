"""Image classification data held in memory as uint8, plus the two pure functions a resumable,
data-parallel trainer needs: which samples a step sees (`batch_indices`) and how they become
network input (`to_input`, with augmentation fully determined by a generator).

Three sources (`DATASETS`):

* ``synthetic`` (default): offline and deterministic from a seed; 10 classes of smooth coloured
  patterns at 4 difficulty levels, so that input-adaptive inference has real easy and hard
  inputs to tell apart and the level of every sample is known.
* ``cifar10``: the official python pickles (``cifar-10-batches-py``).
* ``folder``: ImageNet-style ``<data_dir>/<split>/<class>/*.png`` trees, loaded into memory at
  the network's input size (small subsets).
* ``imagenet``: the same trees streamed from disk with ImageNet's augmentation
  (`ddi_energy.training.imagenet`); `load_dataset` returns its file list.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ddi_energy.errors import DDIError
from ddi_energy.training.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolderStream,
    read_rgb,
    resize_centre_crop,
    scan_folder,
    scan_image_folder,
)

DATASETS = ("synthetic", "cifar10", "folder", "imagenet")
SPLITS = ("train", "test")

# --- synthetic ------------------------------------------------------------------------------
SYNTHETIC_CLASSES = 10
SYNTHETIC_LEVELS = 4
# Per difficulty level d (0 = easiest): signal a_d (weight of the true class's template),
# distractor b_d (weight of another class's template) and pixel noise σ_d. Templates have unit
# RMS, so these are in units of pixel intensity (0..1). Tuned so that a ResNet-8 trained for 300
# SGD steps (batch 64, lr 0.05, momentum 0.9) is near-perfect on levels 0-1 and clearly worse on
# 2 and 3: measured 1.00 / 0.99 / 0.85 / 0.62 (seed 0), 1.00 / 0.99 / 0.87 / 0.58 (seed 1).
# tests/test_data.py checks a cheaper proxy (nearest class template) that shows the same trend.
SYNTHETIC_SIGNAL = (0.20, 0.12, 0.09, 0.07)
SYNTHETIC_DISTRACTOR = (0.00, 0.065, 0.068, 0.062)
SYNTHETIC_NOISE = (0.05, 0.11, 0.20, 0.30)
SYNTHETIC_COMPONENTS = 4  # gratings/blobs summed per class template
_CHUNK = 1024  # samples generated at once: bounds the float32 working memory to ~15 MB

# --- cifar10 --------------------------------------------------------------------------------
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]  # fmt: skip

# --- folder ---------------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# --- augmentation ---------------------------------------------------------------------------
CROP_PADDING = 4

Stats = tuple[float, float, float]


@dataclass
class Dataset:
    """In-memory image classification data."""

    name: str
    images: Tensor  # (N, 3, H, W) uint8
    labels: Tensor  # (N,) int64
    num_classes: int
    mean: Stats  # per-channel, of images/255, for normalization
    std: Stats
    difficulty: Tensor | None = None  # (N,) int64 level 0 (easiest)..L-1, synthetic only
    classes: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_dataset(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    image_size: int = 32,
    synthetic_train: int = 8192,
    synthetic_test: int = 2048,
    seed: int = 0,
) -> Dataset | ImageFolderStream:
    """Load split "train" or "test" of dataset `name` (see `DATASETS`) into memory (`imagenet`:
    its file list, streamed per batch)."""
    if name not in DATASETS:
        raise DDIError(f"data = {name!r}: allowed: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DDIError(f"split = {split!r}: allowed: {', '.join(SPLITS)}")
    if image_size < 8:
        raise DDIError(f"image_size = {image_size}: must be >= 8")
    if name == "synthetic":
        n = synthetic_train if split == "train" else synthetic_test
        if n < 1:
            raise DDIError(f"synthetic_{split} = {n}: must be >= 1")
        return make_synthetic(split, n, image_size=image_size, seed=seed)
    if name == "cifar10":
        return load_cifar10(split, data_dir, image_size=image_size)
    if name == "imagenet":
        return scan_image_folder(split, data_dir, image_size=image_size)
    return load_folder(split, data_dir, image_size=image_size)


# ============================================================================================
# synthetic
# ============================================================================================


def _sub_seed(seed: int, role: int) -> int:
    """Independent 63-bit seeds for templates / train / test / stats from one user seed."""
    state = np.random.SeedSequence([abs(seed), int(seed < 0), role]).generate_state(2)
    return int((int(state[0]) << 31 ^ int(state[1])) & (2**63 - 1))


def _max_shift(image_size: int) -> int:
    """Random translation of synthetic samples: ±2 px at 32 px, scaled with the image."""
    return max(1, round(image_size / 16))


@lru_cache(maxsize=4)
def synthetic_templates(image_size: int = 32, seed: int = 0) -> Tensor:
    """Class templates (C, 3, S, S) with S = image_size + 2·max_shift, zero mean and unit RMS
    (cached: both splits and the stats use them; treat the result as read-only).

    Each is a sum of a few coloured, oriented low-frequency gratings and Gaussian blobs, drawn
    on a canvas larger than the image so that a sample can be a shifted crop of it.
    """
    g = torch.Generator().manual_seed(_sub_seed(seed, 0))
    s = _max_shift(image_size)
    coords = (torch.arange(image_size + 2 * s, dtype=torch.float64) - s + 0.5) / image_size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    templates = torch.zeros(SYNTHETIC_CLASSES, 3, len(coords), len(coords), dtype=torch.float64)
    for c in range(SYNTHETIC_CLASSES):
        for k in range(SYNTHETIC_COMPONENTS):
            u = torch.rand(4, generator=g, dtype=torch.float64)
            color = torch.randn(3, generator=g, dtype=torch.float64)
            if k % 2 == 0:  # grating: 1..3 cycles per image, any orientation and phase
                freq, angle, phase = 1 + 2 * u[0], math.pi * u[1], 2 * math.pi * u[2]
                proj = xx * torch.cos(angle) + yy * torch.sin(angle)
                pattern = torch.sin(2 * math.pi * freq * proj + phase)
            else:  # blob: anywhere in the image, width 12..30 % of it
                cy, cx, width = 0.15 + 0.7 * u[0], 0.15 + 0.7 * u[1], 0.12 + 0.18 * u[2]
                pattern = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
            templates[c] += color[:, None, None] * pattern
        templates[c] -= templates[c].mean()
    # Symmetric orthogonalization (the orthonormal set nearest the raw patterns): how confusable
    # two classes are is then set by the level constants, not by the luck of the seed.
    flat = templates.reshape(SYNTHETIC_CLASSES, -1)
    u, _, vh = torch.linalg.svd(flat, full_matrices=False)
    flat = (u @ vh) * math.sqrt(flat.shape[1])  # unit RMS per template
    return flat.reshape(templates.shape).float()


def _synthetic_samples(templates: Tensor, n: int, image_size: int, g: torch.Generator
                       ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Draw `n` samples: balanced labels and levels, in a seeded order; images as uint8."""
    labels = (torch.arange(n) % SYNTHETIC_CLASSES)[torch.randperm(n, generator=g)]
    levels = (torch.arange(n) % SYNTHETIC_LEVELS)[torch.randperm(n, generator=g)]
    others = (labels + torch.randint(1, SYNTHETIC_CLASSES, (n,), generator=g)) % SYNTHETIC_CLASSES
    span = 2 * _max_shift(image_size) + 1
    shifts = torch.randint(0, span, (n, 2), generator=g)
    signal = torch.tensor(SYNTHETIC_SIGNAL)[levels]
    distractor = torch.tensor(SYNTHETIC_DISTRACTOR)[levels]
    noise = torch.tensor(SYNTHETIC_NOISE)[levels]
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    ar = torch.arange(image_size)
    channel = torch.arange(3)[None, :, None, None]
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(lo + _CHUNK, n))
        rows = (shifts[sl, 0, None] + ar)[:, None, :, None]
        cols = (shifts[sl, 1, None] + ar)[:, None, None, :]
        true = templates[labels[sl, None, None, None], channel, rows, cols]
        other = templates[others[sl, None, None, None], channel, rows, cols]
        x = torch.randn(true.shape, generator=g).mul_(noise[sl, None, None, None])
        x += signal[sl, None, None, None] * true + distractor[sl, None, None, None] * other
        images[sl] = x.add_(0.5).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return images, labels, levels


def make_synthetic(split: str, n: int, *, image_size: int = 32, seed: int = 0) -> Dataset:
    """The synthetic dataset: same class templates for both splits, samples from per-split seeds.

    Normalization stats come from a separate draw of 1024 samples (its own seed), so the train
    and test splits share them and they do not depend on the split sizes.
    """
    role = 1 + SPLITS.index(split)
    images, labels, levels = _synthetic_samples(
        synthetic_templates(image_size, seed), n, image_size,
        torch.Generator().manual_seed(_sub_seed(seed, role)))  # fmt: skip
    mean, std = _synthetic_stats(image_size, seed)
    return Dataset("synthetic", images, labels, SYNTHETIC_CLASSES, mean, std, difficulty=levels,
                   classes=[f"class{c}" for c in range(SYNTHETIC_CLASSES)])  # fmt: skip


@lru_cache(maxsize=4)
def _synthetic_stats(image_size: int, seed: int) -> tuple[Stats, Stats]:
    probe, _, _ = _synthetic_samples(synthetic_templates(image_size, seed), 1024, image_size,
                                     torch.Generator().manual_seed(_sub_seed(seed, 3)))
    return channel_stats(probe)


def channel_stats(images: Tensor) -> tuple[Stats, Stats]:
    """Per-channel mean and std of images/255 (uint8 (N, 3, H, W))."""
    x = images.double().div_(255).transpose(0, 1).reshape(3, -1)
    mean, std = x.mean(1).tolist(), x.std(1).tolist()
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


# ============================================================================================
# cifar10
# ============================================================================================


def _cifar_dir(data_dir: str | Path | None) -> Path:
    """The `cifar-10-batches-py` directory: `data_dir` itself or that folder inside it."""
    how = (f"download {CIFAR_URL}, extract it and pass the {CIFAR_DIR} directory "
           "(--data-dir / data_dir)")  # fmt: skip
    if data_dir is None:
        raise DDIError(f"data = 'cifar10' needs data_dir: {how}")
    path = Path(data_dir).expanduser()
    if (path / CIFAR_DIR).is_dir() and not (path / "test_batch").exists():
        path = path / CIFAR_DIR
    if not path.is_dir():
        raise DDIError(f"CIFAR-10 directory {path} does not exist: {how}")
    return path


def _read_cifar_pickle(path: Path) -> dict:
    """Unpickle one CIFAR file. Pickle can run code: only use the official (trusted) download."""
    if not path.is_file():
        raise DDIError(f"CIFAR-10 file {path} is missing: download {CIFAR_URL}, extract it and "
                       f"pass the {CIFAR_DIR} directory")  # fmt: skip
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # a truncated/garbled pickle can raise almost anything
        raise DDIError(f"CIFAR-10 file {path} is corrupt ({type(exc).__name__}: {exc}); "
                       f"re-download {CIFAR_URL}") from None  # fmt: skip
    if not isinstance(obj, dict):
        raise DDIError(f"CIFAR-10 file {path} is corrupt: expected a dict, "
                       f"got {type(obj).__name__}")  # fmt: skip
    return obj


def _cifar_batch(path: Path) -> tuple[Tensor, Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file."""
    obj = _read_cifar_pickle(path)
    try:
        data = np.asarray(obj[b"data"], dtype=np.uint8)
        labels = np.asarray(obj[b"labels"], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as exc:
        raise DDIError(f"CIFAR-10 file {path} is corrupt: needs b'data' (N, 3072) uint8 and "
                       f"b'labels' ({type(exc).__name__}: {exc})") from None  # fmt: skip
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise DDIError(f"CIFAR-10 file {path} is corrupt: data shape {data.shape}, "
                       f"{labels.size} labels (expected (N, 3072) and N)")  # fmt: skip
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR_CLASSES)):
        raise DDIError(f"CIFAR-10 file {path} is corrupt: labels outside 0..9")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def _cifar_classes(path: Path) -> list[str]:
    """Class names from the optional `batches.meta`, else the standard names."""
    if not path.is_file():
        return list(CIFAR_CLASSES)
    names = _read_cifar_pickle(path).get(b"label_names")
    if not isinstance(names, list) or len(names) != len(CIFAR_CLASSES):
        raise DDIError(f"CIFAR-10 file {path} is corrupt: b'label_names' must list 10 names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(split: str, data_dir: str | Path | None, *, image_size: int = 32) -> Dataset:
    """CIFAR-10 from the official python pickles (trust only the official download: pickle)."""
    root = _cifar_dir(data_dir)
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_cifar_batch(root / f) for f in files]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    if image_size != 32:
        images = resize_uint8(images, image_size)
    return Dataset("cifar10", images, labels, len(CIFAR_CLASSES), CIFAR_MEAN, CIFAR_STD,
                   classes=_cifar_classes(root / "batches.meta"))  # fmt: skip


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """Bilinear (antialiased) resize of uint8 (N, 3, H, W) images to (size, size)."""
    out = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear",
                                          align_corners=False, antialias=True)  # fmt: skip
    return out.round_().clamp_(0, 255).to(torch.uint8)


# ============================================================================================
# folder
# ============================================================================================


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as (3, size, size) uint8: RGB (any mode, as `read_rgb`), shorter side to `size`
    (bilinear), centre crop."""
    from PIL import UnidentifiedImageError

    try:
        return resize_centre_crop(read_rgb(path), size, size)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DDIError(f"image {path} cannot be read ({type(exc).__name__}: {exc})") from None


def load_folder(split: str, data_dir: str | Path | None, *, image_size: int = 32) -> Dataset:
    """ImageNet-style class folders in memory, normalized with ImageNet's mean/std."""
    paths, labels, classes = scan_folder(split, data_dir, IMAGE_EXTENSIONS, "folder")
    images = [load_image(path, image_size) for path in paths]
    return Dataset("folder", torch.from_numpy(np.stack(images)), torch.tensor(labels),
                   len(classes), IMAGENET_MEAN, IMAGENET_STD, classes=classes)  # fmt: skip


# ============================================================================================
# input pipeline
# ============================================================================================


def to_input(images_uint8: Tensor, ds: Dataset, generator: torch.Generator | None) -> Tensor:
    """uint8 (B, 3, H, W) → normalized float input, on the images' device.

    With a generator: per-sample random crop (H×W from the image padded by 4 px) and
    horizontal flip, drawn only from `generator`, so a step's input is reproducible. Without:
    no augmentation (evaluation). The padding is the dataset mean (0 after normalization), not
    black: black borders shift the input statistics between training and evaluation, which moves
    BN-normalized gate inputs and with them the skip ratio that training held on target.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise TypeError(f"to_input expects uint8 (B, C, H, W) images, got "
                        f"{images_uint8.dtype} {tuple(images_uint8.shape)}")  # fmt: skip
    x = images_uint8.float().div_(255)
    mean = torch.tensor(ds.mean, dtype=x.dtype, device=x.device)[:, None, None]
    std = torch.tensor(ds.std, dtype=x.dtype, device=x.device)[:, None, None]
    x = x.sub_(mean).div_(std)
    return _augment(x, generator) if generator is not None else x


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random crop from the zero-padded (normalized) image and random horizontal flip."""
    b, c, h, w = x.shape
    p = CROP_PADDING
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    offsets = torch.randint(0, 2 * p + 1, (b, 2), generator=g, device=g.device).to(x.device)
    flip = (torch.rand(b, generator=g, device=g.device) < 0.5).to(x.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


@lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


def batch_indices(n: int, batch: int, step: int, seed: int, rank: int = 0, world: int = 1
                  ) -> Tensor:  # fmt: skip
    """Sample indices of global step `step` for process `rank` of `world`.

    A pure function of its arguments (reshuffled each epoch from `seed` and the epoch; the ragged
    last batch dropped), so a resumed run sees exactly the batches of an uninterrupted one.
    """
    if world < 1 or not 0 <= rank < world:
        raise DDIError(f"rank = {rank}, world = {world}: need world >= 1 and 0 <= rank < world")
    if batch < 1 or batch % world:
        raise DDIError(f"batch = {batch} must be >= 1 and divisible by the {world} processes")
    if batch > n:
        raise DDIError(f"batch = {batch} is larger than the dataset ({n} samples)")
    if step < 0:
        raise DDIError(f"step = {step}: must be >= 0")
    steps_per_epoch = n // batch
    epoch, pos = divmod(step, steps_per_epoch)
    share = batch // world
    start = pos * batch + rank * share
    return _epoch_permutation(n, seed, epoch)[start:start + share].clone()
