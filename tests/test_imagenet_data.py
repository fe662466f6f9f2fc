"""Streamed ImageNet folders (`--data imagenet`): every image mode becomes RGB, ImageNet's
augmentation, a corrupt file skipped with a warning, batches that depend on (seed, step) alone,
and `train` + `eval` runs with and without `--amp` from the command line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run
from PIL import Image

from ddi_energy.errors import DDIError, DDIWarning
from ddi_energy.training.batches import eval_batches, train_batches
from ddi_energy.training.checkpoints import Checkpoints
from ddi_energy.training.config import TrainConfig
from ddi_energy.training.data import load_dataset
from ddi_energy.training.imagenet import (
    BACKGROUND,
    IMAGENET_MEAN,
    random_resized_box,
    read_rgb,
    scan_image_folder,
)
from ddi_energy.training.loop import train


def odd_images(seed: int) -> dict[str, Image.Image]:
    """One image per mode, of odd sizes (random pixels, so crops differ)."""
    rng = np.random.default_rng(seed)

    def pixels(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, shape, dtype=np.uint8)

    return {"rgb.jpg": Image.fromarray(pixels(13, 21, 3)),
            "grey.png": Image.fromarray(pixels(7, 9), "L"),
            "grey16.png": Image.fromarray(pixels(9, 6).astype(np.uint16) * 257),
            "palette.png": Image.fromarray(pixels(30, 11, 3)).convert("P"),
            "rgba.png": Image.fromarray(pixels(5, 40, 4), "RGBA"),
            "cmyk.jpg": Image.fromarray(pixels(17, 17, 4), "CMYK")}  # fmt: skip


def image_folder(root: Path) -> Path:
    """2 classes × 6 modes in train and val, and one corrupt JPEG in train/a."""
    for split, seed in (("train", 0), ("val", 1)):
        for c, cls in enumerate(("a", "b")):
            (root / split / cls).mkdir(parents=True)
            for name, im in odd_images(10 * seed + c).items():
                im.save(root / split / cls / name)
    (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return image_folder(tmp_path / "data")


def test_every_mode_becomes_rgb(data: Path):
    modes = {name: Image.open(data / "train" / "a" / name).mode for name in odd_images(0)}
    assert set(modes.values()) == {"RGB", "L", "I;16", "P", "RGBA", "CMYK"}
    for name in modes:
        im = read_rgb(data / "train" / "a" / name)
        assert im.mode == "RGB" and im.size == Image.open(data / "train" / "a" / name).size
    grey16 = np.asarray(read_rgb(data / "train" / "a" / "grey16.png"))
    raw = np.asarray(Image.open(data / "train" / "a" / "grey16.png")).astype(np.int64)
    assert np.array_equal(grey16[..., 0], raw // 257)  # 16 bits scaled, not clipped
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    clear.save(data / "clear.png")
    assert np.asarray(read_rgb(data / "clear.png"))[0, 0].tolist() == list(BACKGROUND)
    with pytest.raises(OSError):
        read_rgb(data / "train" / "a" / "broken.jpg")


def test_scan_and_views(data: Path):
    ds = load_dataset("imagenet", "train", data, image_size=24)
    assert ds.classes == ["a", "b"] and len(ds) == 13 and ds.labels.tolist() == [0] * 7 + [1] * 6
    assert ds.mean == IMAGENET_MEAN
    val = scan_image_folder("test", data, image_size=24)
    (x, y), = eval_batches(val, [torch.arange(len(val))])
    assert x.shape == (12, 3, 24, 24) and y.tolist() == [0] * 6 + [1] * 6
    solid = Image.new("RGB", (50, 31), (10, 200, 30))  # val view of a solid image: that colour
    solid.save(data / "val" / "b" / "solid.png")
    val = scan_image_folder("test", data, image_size=24)
    (x, _), = eval_batches(val, [torch.tensor([len(val) - 1])])
    std = torch.tensor(val.std)[:, None, None]
    pixels = (x[0] * std + torch.tensor(val.mean)[:, None, None]) * 255
    assert torch.allclose(pixels, torch.tensor([10.0, 200, 30])[:, None, None], atol=1e-3)
    with pytest.raises(DDIError, match="nope.*does not exist"):
        load_dataset("imagenet", "train", data / "nope")
    with pytest.raises(DDIError, match="needs data_dir"):
        load_dataset("imagenet", "train", None)


def test_random_resized_box_follows_the_inception_recipe():
    g = torch.Generator().manual_seed(0)
    areas, ratios = [], []
    for _ in range(2000):
        left, top, right, bottom = random_resized_box(240, 240, g)
        assert 0 <= left < right <= 240 and 0 <= top < bottom <= 240
        areas.append((right - left) * (bottom - top) / 240**2)
        ratios.append((right - left) / (bottom - top))
    # 8-100 % of the area (a mean under U(0.08, 1)'s 0.54: large crops of a skewed ratio do
    # not fit and are drawn again), ratios 3/4-4/3 up to rounding
    assert 0.075 < min(areas) < 0.1 and max(areas) > 0.98 and 0.45 < np.mean(areas) < 0.52
    assert min(ratios) > 0.74 and max(ratios) < 1.36
    # 10:1 fits no crop: the centre crop at ratio 4/3
    assert random_resized_box(100, 10, g) == (43, 0, 56, 10)
    assert random_resized_box(10, 100, g) == (0, 43, 10, 56)


def test_corrupt_file_skipped_and_batches_a_function_of_seed_and_step(data: Path):
    ds = load_dataset("imagenet", "train", data, image_size=16)
    steps = range(0, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        serial = list(train_batches(ds, batch=6, seed=3, steps=steps, workers=0))
    messages = {str(w.message) for w in caught if issubclass(w.category, DDIWarning)}
    assert len(messages) == 1 and "broken.jpg" in next(iter(messages))
    assert all(x.shape == (6, 3, 16, 16) for x, _ in serial)  # the batch keeps its size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = list(train_batches(ds, batch=6, seed=3, steps=steps, workers=2))
        resumed = list(train_batches(ds, batch=6, seed=3, steps=range(7, 12), workers=1))
        other = next(train_batches(ds, batch=6, seed=4, steps=range(0, 1)))
    for (x1, y1), (x2, y2) in zip(serial, parallel, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    for (x1, _), (x2, _) in zip(serial[7:], resumed, strict=True):
        assert torch.equal(x1, x2)
    assert not torch.equal(serial[0][0], other[0])
    assert not torch.equal(serial[0][0], serial[2][0])  # new epoch: another order and crops


def test_resume_is_exact(data: Path, tmp_path: Path):
    def cfg(out: str) -> TrainConfig:
        return TrainConfig(arch="resnet8", data="imagenet", data_dir=str(data), batch=4,
                           pretrain_steps=0, gate_steps=1, steps=2, ddi_steps=0, bn_batches=1,
                           workers=0, out=str(tmp_path / out)).validate()  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DDIWarning)
        train(cfg("full"), progress=False)
        train(cfg("cut"), stop_after=2, progress=False)
        train(cfg("cut"), resume=True, progress=False)
    full = Checkpoints.load(tmp_path / "full" / "checkpoints" / "final.pt")["model"]
    cut = Checkpoints.load(tmp_path / "cut" / "checkpoints" / "final.pt")["model"]
    assert all(torch.equal(full[k], cut[k]) for k in full)


def train_and_eval(data: Path, out: Path, capsys, arch: str, amp: bool, workers: int) -> dict:
    """`ddi-energy train` (3 steps, batch 2) and `eval --flops-only` of a gated `arch`."""
    args = ["train", "--arch", arch, "--gating", "mgl2s", "--data", "imagenet", "--data-dir",
            str(data), "--batch", "2", "--pretrain-steps", "0", "--gate-steps", "1", "--steps",
            "1", "--ddi-steps", "1", "--bn-batches", "1", "--workers", str(workers), "--out",
            str(out), *(["--amp"] if amp else [])]  # fmt: skip
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.startswith("ddi-energy: warning:")]
    assert len(warned) <= 1 and all("broken.jpg" in line for line in warned)
    state = Checkpoints.load(out / "checkpoints" / "final.pt")
    assert state["step"] == 3 and state["config"]["amp"] is amp
    code, stdout, err = run(["eval", "--run", str(out), "--flops-only", "--budgets", "0.5,1"],
                            capsys)  # fmt: skip
    assert code == 0, err
    assert "FLOPs / input" in stdout and "energy" not in stdout.split("gates + exits")[0]
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"] == 12 and report["cost_table"] == "FLOPs only (no cost table)"
    assert "energy_pj_per_input" not in report and 0 < report["flops_per_input"]
    assert {b["mode"] for b in report["budgets"]} == {"flops"}  # no energy without a table
    for b in report["budgets"]:  # both budgets are above the first exit's: held per input
        assert b["feasible"] and b["max_cost_fraction"] <= b["budget_fraction"] + 1e-9
        assert 0 <= b["accuracy"] <= 1 and 0 <= b["oracle_accuracy"] <= 1
    return report


@pytest.mark.parametrize(("amp", "workers"), [(False, 2), (True, 0)])
def test_train_and_eval_small_network(data: Path, tmp_path: Path, capsys, amp: bool,
                                      workers: int):  # fmt: skip
    train_and_eval(data, tmp_path / "run", capsys, "resnet8", amp, workers)


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True])
def test_train_and_eval_densenet201(data: Path, tmp_path: Path, capsys, amp: bool):
    """The paper's ImageNet network at 224×224 on the odd images (minutes on a CPU)."""
    report = train_and_eval(data, tmp_path / "run", capsys, "densenet201", amp, 2)
    assert report["plain_network"]["flops"] == pytest.approx(8.583e9, rel=1e-3)


def test_bad_options(data: Path, tmp_path: Path, capsys):
    code, _, err = run(["train", "--data", "imagenet", "--data-dir", str(data), "--workers",
                        "-1", "--out", str(tmp_path / "x")], capsys)  # fmt: skip
    assert code == 2 and "workers = -1: must be >= 0" in err
    (tmp_path / "run.yaml").write_text("amp: maybe\n")
    code, _, err = run(["train", "--config", str(tmp_path / "run.yaml"), "--out",
                        str(tmp_path / "y")], capsys)  # fmt: skip
    assert code == 2 and "amp = 'maybe': must be true or false" in err
