"""ImageNet streamed from its image folders (`train/<class>/*`, `val/<class>/*`): only the file
list is held in memory; worker processes decode and augment each step's batch.

A step's batch is a pure function of (seed, step, rank): its indices come from `batch_indices`
and every sample's crop and flip from a generator seeded by (seed, step, rank, position), so a
resumed run sees exactly the batches of an uninterrupted one, whatever the number of workers.
A file that cannot be decoded is skipped with a warning: in training the next readable file of
the list takes its place (the batch keeps its size, so BN and data-parallel shares stay
intact); in evaluation it is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ddi_energy.errors import DDIError, warn

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SCALE = (0.08, 1.0)  # random-resized crop: area fraction and aspect ratio (Inception)
CROP_RATIO = (3 / 4, 4 / 3)
LAYOUT = "layout: <data_dir>/{train,val}/<class>/*.JPEG|jpg|png|bmp|webp"
RESIZE_FOR_CROP = 256 / 224  # evaluation: shorter side to 256, centre crop 224
# Transparent pixels are composited onto the mean colour: they normalize to 0, not to black.
BACKGROUND = tuple(round(255 * m) for m in IMAGENET_MEAN)


@dataclass
class ImageFolderStream:
    """The file list of one split; images are read per batch (`stream_batches`)."""

    name: str
    paths: list[Path]
    labels: Tensor  # (N,) int64
    num_classes: int
    image_size: int
    classes: list[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    difficulty: Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)


def _split_dir(root: Path, split: str) -> Path:
    """train → <root>/train; test → <root>/val, else <root>/test."""
    names = ("train",) if split == "train" else ("val", "test")
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DDIError(f"folder dataset {root}: no {' or '.join(names)} directory for split "
                   f"{split!r} ({LAYOUT})")  # fmt: skip


def _class_dirs(split_dir: Path) -> list[str]:
    """Sorted class directory names (hidden ones, e.g. .ipynb_checkpoints, are not classes)."""
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name[0] != ".")
    if not names:
        raise DDIError(f"folder dataset {split_dir}: no class directories ({LAYOUT})")
    return names


def scan_folder(split: str, data_dir: str | Path | None, extensions: tuple[str, ...],
                name: str) -> tuple[list[Path], list[int], list[str]]:  # fmt: skip
    """(files, labels, classes) of a split of `<data_dir>/{train,val}/<class>/*`, sorted.

    Classes are the sorted sub-directories of `train` (if present, so both splits number them
    alike), else of the split's own directory.
    """
    if data_dir is None:
        raise DDIError(f"data = {name!r} needs data_dir ({LAYOUT})")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DDIError(f"folder dataset directory {root} does not exist")
    split_dir = _split_dir(root, split)
    classes = _class_dirs(root / "train" if (root / "train").is_dir() else split_dir)
    unknown = sorted(set(_class_dirs(split_dir)) - set(classes))
    if unknown:
        raise DDIError(f"folder dataset {split_dir}: classes {unknown} are not in "
                       f"{root / 'train'} (allowed: {', '.join(classes)})")  # fmt: skip
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        if (split_dir / cls).is_dir():
            files = sorted(p for p in (split_dir / cls).iterdir()
                           if p.suffix.lower() in extensions and p.is_file())  # fmt: skip
            paths += files
            labels += [label] * len(files)
    if not paths:
        raise DDIError(f"folder dataset {split_dir}: no images ({', '.join(extensions)}) "
                       "in its class directories")  # fmt: skip
    return paths, labels, classes


def scan_image_folder(split: str, data_dir: str | Path | None, *,
                      image_size: int = 224) -> ImageFolderStream:  # fmt: skip
    """The file list of a split, to be streamed."""
    paths, labels, classes = scan_folder(split, data_dir, IMAGE_EXTENSIONS, "imagenet")
    return ImageFolderStream("imagenet", paths, torch.tensor(labels), len(classes), image_size,
                             classes)  # fmt: skip


# --- decoding and augmentation (run in the workers) -----------------------------------------


def read_rgb(path: Path):
    """The image as 8-bit RGB, whatever its mode: grey, 16-bit grey, palette, CMYK, with alpha
    (composited onto `BACKGROUND`). Raises OSError or ValueError if it cannot be decoded."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: scale to 8 bits
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr * 255 / top, 0, 255).astype(np.uint8), "L")
        if im.mode == "P" and "transparency" in im.info or im.mode in ("LA", "PA", "La"):
            im = im.convert("RGBA")
        if im.mode in ("RGBA", "RGBa"):
            background = Image.new("RGB", im.size, BACKGROUND)
            background.paste(im, mask=im.getchannel("A"))
            return background
        return im.convert("RGB")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def random_resized_box(width: int, height: int, g: torch.Generator
                       ) -> tuple[int, int, int, int]:  # fmt: skip
    """(left, top, right, bottom) of an Inception-style crop: 8-100 % of the area, aspect ratio
    3/4-4/3 (log-uniform), 10 tries, else the centre crop at the nearest allowed ratio."""
    area = width * height
    for _ in range(10):
        target = area * _uniform(g, *CROP_SCALE)
        ratio = math.exp(_uniform(g, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            return left, top, left + w, top + h
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        w, h = round(height * CROP_RATIO[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def train_view(im, size: int, g: torch.Generator) -> np.ndarray:
    """Random-resized crop to size×size (bilinear) and a random horizontal flip: (3, S, S)."""
    from PIL import Image

    box = random_resized_box(*im.size, g)
    im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if float(torch.rand((), generator=g)) < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def eval_view(im, size: int) -> np.ndarray:
    """Shorter side to size·256/224 (bilinear), centre crop size×size: (3, S, S)."""
    return resize_centre_crop(im, round(size * RESIZE_FOR_CROP), size)


def resize_centre_crop(im, short: int, size: int) -> np.ndarray:
    """Shorter side to `short` (bilinear), centre crop size×size: (3, size, size) uint8."""
    from PIL import Image

    w, h = im.size
    scale = short / min(w, h)
    nw, nh = max(short, round(w * scale)), max(short, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


class _BatchReader(torch.utils.data.Dataset):
    """Item = one whole batch, keyed by (indices, augmentation seed or None): one worker reads
    it all, so its content never depends on which worker or how many there are."""

    def __init__(self, ds: ImageFolderStream) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[tuple[int, ...], int | None]):
        indices, seed = key
        images, labels, skipped = [], [], []
        for pos, index in enumerate(indices):
            for tries in range(len(self.ds)):
                i = (index + tries) % len(self.ds)
                try:
                    im = read_rgb(self.ds.paths[i])
                except Exception as exc:  # noqa: BLE001 - a decoder can raise almost anything
                    skipped.append(f"{self.ds.paths[i]}: {type(exc).__name__}: {exc}")
                    if seed is None:
                        break  # evaluation: left out
                    continue  # training: the next file takes its place
                if seed is None:
                    images.append(eval_view(im, self.ds.image_size))
                else:
                    g = torch.Generator().manual_seed(seed * 4099 + pos)
                    images.append(train_view(im, self.ds.image_size, g))
                labels.append(int(self.ds.labels[i]))
                break
            else:
                raise DDIError(f"imagenet: no readable image among the {len(self.ds)} files")
        size = self.ds.image_size
        stacked = np.stack(images) if images else np.zeros((0, 3, size, size), np.uint8)
        return torch.from_numpy(stacked), torch.tensor(labels, dtype=torch.long), skipped


def stream_batches(ds: ImageFolderStream, keys: Iterable[tuple[tuple[int, ...], int | None]],
                   workers: int) -> Iterator[tuple[Tensor, Tensor]]:  # fmt: skip
    """(uint8 images, labels) of each key's batch, read by `workers` processes (0: this one),
    in the order of `keys`; files skipped are warned about once each."""
    loader = torch.utils.data.DataLoader(_BatchReader(ds), sampler=keys, batch_size=None,
                                         num_workers=workers, prefetch_factor=2 if workers
                                         else None, persistent_workers=False)  # fmt: skip
    warned: set[str] = set()
    for images, labels, skipped in loader:
        for message in skipped:
            if message not in warned:
                warned.add(message)
                warn(f"skipped unreadable image {message}")
        yield images, labels
