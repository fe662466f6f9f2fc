"""Datasets and the input pipeline: synthetic data with known difficulty, the CIFAR-10 and
class-folder loaders on tiny directories written here, batch selection and augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ddi_energy.errors import DDIError
from ddi_energy.training.data import (
    CIFAR_MEAN,
    CIFAR_URL,
    CROP_PADDING,
    IMAGENET_MEAN,
    SYNTHETIC_LEVELS,
    Dataset,
    _max_shift,
    batch_indices,
    load_dataset,
    synthetic_templates,
    to_input,
)
from ddi_energy.training.imagenet import BACKGROUND

N_TRAIN, N_TEST = 400, 800


def synthetic(split: str = "train", seed: int = 0, **kw) -> Dataset:
    return load_dataset("synthetic", split, synthetic_train=N_TRAIN, synthetic_test=N_TEST,
                        seed=seed, **kw)  # fmt: skip


# --- synthetic ------------------------------------------------------------------------------


def test_synthetic_shapes_and_dtypes():
    ds = synthetic()
    assert len(ds) == N_TRAIN and ds.name == "synthetic" and ds.num_classes == 10
    assert ds.images.shape == (N_TRAIN, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (N_TRAIN,) and ds.labels.dtype == torch.int64
    assert ds.difficulty is not None and ds.difficulty.dtype == torch.int64
    assert 0 <= int(ds.labels.min()) and int(ds.labels.max()) < 10
    assert ds.classes is not None and len(ds.classes) == 10
    assert len(ds.mean) == 3 and len(ds.std) == 3 and all(0.05 < s < 0.5 for s in ds.std)
    assert len(synthetic("test")) == N_TEST
    assert synthetic(image_size=24).images.shape == (N_TRAIN, 3, 24, 24)


def test_synthetic_deterministic_and_split_dependent():
    a, b = synthetic(), synthetic()
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.difficulty, b.difficulty) and a.mean == b.mean
    test = synthetic("test")
    assert not torch.equal(test.images[:N_TRAIN], a.images)
    assert test.mean == a.mean and test.std == a.std  # one normalization for both splits
    other = synthetic(seed=1)
    assert not torch.equal(other.images, a.images)
    assert not torch.equal(synthetic_templates(32, 0), synthetic_templates(32, 1))


def test_synthetic_levels_and_classes_balanced():
    ds = synthetic()
    assert torch.bincount(ds.difficulty).tolist() == [N_TRAIN // SYNTHETIC_LEVELS] * 4
    assert torch.bincount(ds.labels).tolist() == [N_TRAIN // 10] * 10
    # levels are not tied to labels: every class occurs at every level
    pairs = torch.bincount(ds.labels * SYNTHETIC_LEVELS + ds.difficulty, minlength=40)
    assert int(pairs.min()) > 0


def test_synthetic_difficulty_is_real():
    """Nearest class template (correlation) is near-perfect on level 0, much worse on level 3."""
    ds = synthetic("test")
    s = _max_shift(32)
    templates = synthetic_templates(32, 0)[:, :, s:-s, s:-s].reshape(10, -1)
    x = ds.images.float().div(255).sub(0.5).reshape(len(ds), -1)
    correct = (x @ templates.T).argmax(1) == ds.labels
    acc = [float(correct[ds.difficulty == d].float().mean()) for d in range(SYNTHETIC_LEVELS)]
    assert acc[0] >= 0.95
    assert acc[0] - acc[3] >= 0.15, acc
    assert acc[0] >= acc[1] >= acc[2] - 0.02 and acc[2] > acc[3], acc
    assert acc[3] > 0.3, acc  # hard, not hopeless (chance is 0.1)


def test_unknown_name_or_split():
    with pytest.raises(DDIError, match="synthetic, cifar10, folder"):
        load_dataset("mnist", "train")
    with pytest.raises(DDIError, match="train, test"):
        load_dataset("synthetic", "val")


# --- cifar10 --------------------------------------------------------------------------------


def write_cifar(root: Path, n: int = 4, meta: bool = True) -> Path:
    """A tiny cifar-10-batches-py in the official format: sample i of batch b has label
    (i + b) % 10 and pixel (channel 1, row 2, col 3) = 10·b + i."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        data = np.zeros((n, 3072), dtype=np.uint8)
        data[:, 1 * 1024 + 2 * 32 + 3] = 10 * b + np.arange(n)
        labels = [(i + b) % 10 for i in range(n)]
        with (d / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    if meta:
        with (d / "batches.meta").open("wb") as f:
            pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return d


def test_cifar_layout_and_labels(tmp_path):
    d = write_cifar(tmp_path)
    train = load_dataset("cifar10", "train", d)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [(i + b) % 10 for b in range(5) for i in range(4)]
    assert train.images[:, 1, 2, 3].tolist() == [10 * b + i for b in range(5) for i in range(4)]
    assert int(train.images.sum()) == int(train.images[:, 1, 2, 3].sum())  # nowhere else
    assert train.mean == CIFAR_MEAN and train.classes == [f"c{i}" for i in range(10)]
    assert train.num_classes == 10 and train.difficulty is None
    test = load_dataset("cifar10", "test", tmp_path)  # the parent directory works too
    assert test.images[:, 1, 2, 3].tolist() == [50, 51, 52, 53]
    assert test.labels.tolist() == [5, 6, 7, 8]


def test_cifar_without_meta_uses_standard_names(tmp_path):
    d = write_cifar(tmp_path, meta=False)
    assert load_dataset("cifar10", "test", d).classes[0] == "airplane"


def test_cifar_missing_dir_or_file(tmp_path):
    with pytest.raises(DDIError, match=r"does not exist.*cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", "train", tmp_path / "nope")
    with pytest.raises(DDIError, match="needs data_dir"):
        load_dataset("cifar10", "train", None)
    d = write_cifar(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(DDIError, match="data_batch_3") as info:
        load_dataset("cifar10", "train", d)
    assert CIFAR_URL in str(info.value)
    load_dataset("cifar10", "test", d)  # the test split does not need it


def test_cifar_corrupt_file(tmp_path):
    d = write_cifar(tmp_path)
    (d / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DDIError, match="test_batch.*corrupt"):
        load_dataset("cifar10", "test", d)
    with (d / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DDIError, match="test_batch.*corrupt"):
        load_dataset("cifar10", "test", d)


# --- folder ---------------------------------------------------------------------------------


def write_png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


COLORS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}


def test_folder_dataset(tmp_path):
    for name, color in COLORS.items():
        write_png(tmp_path / "train" / name / "a.png", (40, 24), color)  # non-square: crop
        write_png(tmp_path / "train" / name / "b.PNG", (16, 16), color)  # small: upscaled
        write_png(tmp_path / "val" / name / "a.png", (32, 32), color)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    train = load_dataset("folder", "train", tmp_path, image_size=20)
    assert train.classes == ["cat", "dog", "emu"] and train.num_classes == 3
    assert train.images.shape == (6, 3, 20, 20) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for img, label in zip(train.images, train.labels, strict=True):
        color = COLORS[train.classes[label]]
        assert img[:, 10, 10].tolist() == list(color)
    assert train.mean == IMAGENET_MEAN
    assert len(load_dataset("folder", "test", tmp_path)) == 3


def test_folder_reads_every_mode_as_imagenet_does(tmp_path):
    """16-bit grey is scaled to 8 bits (not clipped), alpha composited onto the mean colour."""
    from PIL import Image

    (tmp_path / "train" / "a").mkdir(parents=True)
    grey = np.full((12, 9), 100 * 257, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "train" / "a" / "grey16.png")
    Image.new("RGBA", (9, 12), (200, 10, 10, 0)).save(tmp_path / "train" / "a" / "clear.png")
    ds = load_dataset("folder", "train", tmp_path, image_size=8)
    assert ds.images[0, :, 4, 4].tolist() == list(BACKGROUND)  # clear.png sorts first
    assert ds.images[1, :, 4, 4].tolist() == [100, 100, 100]


def test_folder_test_dir_and_errors(tmp_path):
    with pytest.raises(DDIError, match="does not exist"):
        load_dataset("folder", "train", tmp_path / "nope")
    with pytest.raises(DDIError, match="no train directory"):
        load_dataset("folder", "train", tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DDIError, match="no class directories"):
        load_dataset("folder", "train", tmp_path)
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(DDIError, match="no images"):
        load_dataset("folder", "train", tmp_path)
    write_png(tmp_path / "train" / "cat" / "a.png", (8, 8), (1, 2, 3))
    write_png(tmp_path / "test" / "cat" / "a.png", (8, 8), (1, 2, 3))  # "test" if no "val"
    assert len(load_dataset("folder", "test", tmp_path, image_size=8)) == 1
    write_png(tmp_path / "test" / "cow" / "a.png", (8, 8), (1, 2, 3))
    with pytest.raises(DDIError, match="cow"):
        load_dataset("folder", "test", tmp_path, image_size=8)
    (tmp_path / "train" / "cat" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DDIError, match="bad.png"):
        load_dataset("folder", "train", tmp_path, image_size=8)


# --- batch_indices --------------------------------------------------------------------------


def test_batch_indices_ranks_partition_the_global_batch():
    n, batch, seed = 103, 12, 5
    spe = n // batch
    for step in (0, 3, spe + 1):
        whole = batch_indices(n, batch, step, seed)
        parts = [batch_indices(n, batch, step, seed, rank, 4) for rank in range(4)]
        assert all(len(p) == 3 for p in parts)
        assert torch.equal(torch.cat(parts), whole)
        assert len(set(whole.tolist())) == batch
        assert torch.equal(batch_indices(n, batch, step, seed, 2, 4), parts[2])  # pure
        epoch = step // spe
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        start = (step % spe) * batch
        assert torch.equal(whole, perm[start:start + batch])


def test_batch_indices_epochs():
    n, batch, seed = 50, 8, 0
    spe = n // batch
    epoch0 = torch.cat([batch_indices(n, batch, s, seed) for s in range(spe)])
    epoch1 = torch.cat([batch_indices(n, batch, s, seed) for s in range(spe, 2 * spe)])
    assert len(set(epoch0.tolist())) == spe * batch  # no sample twice within an epoch
    assert not torch.equal(epoch0, epoch1)  # reshuffled
    assert not torch.equal(batch_indices(n, batch, 0, 1), batch_indices(n, batch, 0, 0))


def test_batch_indices_errors():
    with pytest.raises(DDIError, match="divisible"):
        batch_indices(100, 10, 0, 0, 0, 3)
    with pytest.raises(DDIError, match="larger than the dataset"):
        batch_indices(5, 8, 0, 0)
    with pytest.raises(DDIError, match="rank"):
        batch_indices(100, 8, 0, 0, 2, 2)


# --- to_input -------------------------------------------------------------------------------


def test_to_input_eval_is_plain_normalization():
    ds = synthetic()
    x = to_input(ds.images, ds, None)
    assert x.dtype == torch.float32 and x.shape == ds.images.shape
    mean = torch.tensor(ds.mean)[:, None, None]
    std = torch.tensor(ds.std)[:, None, None]
    assert torch.allclose(x, (ds.images.float() / 255 - mean) / std, atol=1e-5)
    per_channel = x.transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 0.05
    assert (per_channel.std(1) - 1).abs().max() < 0.05


def test_to_input_augmentation_deterministic_per_generator():
    ds = synthetic()
    images = ds.images[:64]

    def aug(seed: int) -> torch.Tensor:
        return to_input(images, ds, torch.Generator().manual_seed(seed))

    assert torch.equal(aug(3), aug(3))
    assert not torch.equal(aug(3), aug(4))
    assert not torch.equal(aug(3), to_input(images, ds, None))
    assert aug(3).shape == images.shape


def test_to_input_is_a_crop_of_the_padded_image_or_its_mirror():
    """Every augmented sample is one of the 9×9 crops of the 4-px padded image, flipped or
    not, the padding being the dataset mean (0 once normalized, not black); over a batch both
    flips and off-centre crops occur."""
    ds = Dataset("t", torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64),
                 1, (0.5, 0.4, 0.3), (0.25, 0.2, 0.1))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (32, 3, 8, 8), generator=g, dtype=torch.uint8)
    out = to_input(images, ds, torch.Generator().manual_seed(7))
    p = CROP_PADDING
    mean, std = torch.tensor(ds.mean)[:, None, None], torch.tensor(ds.std)[:, None, None]
    padded = torch.nn.functional.pad((images.float() / 255 - mean) / std, (p, p, p, p))
    seen = set()
    for i in range(len(images)):
        matches = [(dy, dx, flip) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   for flip in (False, True)
                   if torch.equal(out[i], _crop(padded[i], dy, dx, flip))]  # fmt: skip
        assert len(matches) == 1, i
        seen.add(matches[0])
    assert {flip for _, _, flip in seen} == {False, True}
    assert any((dy, dx) != (p, p) for dy, dx, _ in seen)


def _crop(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    out = img[:, dy:dy + 8, dx:dx + 8]
    return out.flip(2) if flip else out


def test_to_input_rejects_float_images():
    ds = synthetic()
    with pytest.raises(TypeError, match="uint8"):
        to_input(ds.images.float(), ds, None)
