"""A training run's configuration: every knob, with defaults for a few CPU minutes and the
paper's schedule as a named preset, validated at the edge (preset + YAML file + command-line
overrides -> `TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ddi_energy.costs.channel_groups import AUTO, parse_channel_group
from ddi_energy.costs.cost_model import MODES
from ddi_energy.engines.registry import COUNT_MODELS
from ddi_energy.errors import DDIError
from ddi_energy.files import check_keys, load_mapping
from ddi_energy.models.dynamic import GATINGS
from ddi_energy.models.zoo import list_models
from ddi_energy.training.data import DATASETS

STAGES = ("pretrain", "gates", "joint", "ddi")
LR_SCHEDULES = ("cosine", "constant")

# The paper's α = 2e-4 (CIFAR) weighs E in MFLOPs (our reading: the one unit in which α·E is of
# the order of the cross-entropy). Here E is a fraction of the plain backbone's cost, so the
# same pull on the gates of the paper's ResNet-74 (336.4 MFLOPs) is α = 2e-4 × 336.4.
PAPER_ALPHA = round(2e-4 * 336.4, 4)
# The paper's ImageNet α = 4e-6 per MFLOP on DenseNet-201 (8,582.7 MFLOPs plain).
PAPER_IMAGENET_ALPHA = round(4e-6 * 8582.7, 4)
IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012's training set
IMAGENET_EPOCH_STEPS = IMAGENET_TRAIN_IMAGES / 512  # at the paper's batch

# Named schedules under the config file and the options. `quick` is the defaults: a few CPU
# minutes. `paper-cifar` is the paper's Sec. IV-A schedule: 2,000 gate steps (IADI step 1, as
# in the authors' DFS/E2-Train code) + 50,000 joint steps + 50,000 DDI steps at batch 128, from a
# pre-trained backbone (`--init RUN` or `--pretrain-steps N`). `paper-imagenet` is its ImageNet
# recipe: DenseNet-201 (MGL2S) at batch 512, lr 0.05, IADI and DDI 90 epochs each, from
# torchvision's weights (`--pretrained FILE`); `epochs` sets both stages' steps from the data's
# size, `steps` / `ddi_steps` are those of 90 ImageNet epochs (and switch the exits on).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "paper-cifar": {"batch": 128, "pretrain_steps": 0, "gate_steps": 2000, "steps": 50000,
                    "ddi_steps": 50000, "alpha": PAPER_ALPHA, "checkpoint_every": 1000,
                    "log_every": 50},
    "paper-imagenet": {"arch": "densenet201", "gating": "mgl2s", "data": "imagenet",
                       "batch": 512, "lr": 0.05, "alpha": PAPER_IMAGENET_ALPHA,
                       "pretrain_steps": 0, "gate_steps": 2000, "epochs": 90,
                       "steps": round(90 * IMAGENET_EPOCH_STEPS),
                       "ddi_steps": round(90 * IMAGENET_EPOCH_STEPS),
                       "checkpoint_every": 1000, "log_every": 50},
}


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults (preset `quick`) train in a few CPU minutes; the
    paper's settings (Sec. IV-A) are presets `paper-cifar` and `paper-imagenet`."""

    preset: str = "quick"  # a named schedule under the other values (PRESETS)
    arch: str = "resnet20"
    gating: str = "mgl2s"
    data: str = "synthetic"
    data_dir: str | None = None
    loss: str = "flops"  # flops | energy | latency
    hw: str | None = None  # hardware config: a table is profiled at start (analytic engine)
    cost_table: str | None = None  # or a cost table (name or path)
    counts: str = "scalesim"  # count model of a table profiled from hw: scalesim | physical
    # Channels switched by one channel-gate output, or "auto": the array dimension the gated
    # convs' filters map to on the run's hardware (columns for os/ws; 1 for is). A run records
    # the number it resolved to.
    channel_group: int | str = 1
    target_skip: float = 0.5  # fraction of the backbone's cost, in the loss's metric, to skip
    alpha: float = 1.5  # weight of E, a fraction of the plain backbone's cost
    lr: float = 0.05
    lr_schedule: str = "cosine"  # cosine (to 0 over each stage) | constant
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch: int = 64
    pretrain_steps: int = 300
    gate_steps: int = 25  # IADI step 1; none under gating = none
    steps: int = 300  # IADI step 2
    ddi_steps: int = 0  # DDI stage with exits; 0: no exits
    epochs: float = 0.0  # if > 0: IADI step 2 and the DDI stage (if on) take this many epochs
    checkpoint_every: int = 100
    bn_batches: int = 32  # precise BN at the end: batches to recompute BN statistics; 0: off
    log_every: int = 25
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/run"
    init: str | None = None  # a checkpoint or run directory of the same arch/gating to start from
    pretrained: str | None = None  # torchvision-layout backbone weights (a .pth state dict)
    workers: int = 2  # processes decoding images (data = imagenet); 0: in the main process
    amp: bool = False  # autocast: bfloat16 on CPU, float16 with a grad scaler on CUDA

    def validate(self) -> TrainConfig:
        """Check ranges and combinations; raises DDIError naming the key."""
        def bad(key: str, allowed: str) -> DDIError:
            return DDIError(f"{key} = {getattr(self, key)!r}: {allowed}")

        if self.preset not in PRESETS:
            raise bad("preset", f"allowed: {', '.join(PRESETS)}")
        if self.arch not in list_models():
            raise bad("arch", f"allowed: {', '.join(list_models())}")
        if self.gating not in GATINGS:
            raise bad("gating", f"allowed: {', '.join(GATINGS)}")
        if self.data not in DATASETS:
            raise bad("data", f"allowed: {', '.join(DATASETS)}")
        if self.loss not in MODES:
            raise bad("loss", f"allowed: {', '.join(MODES)}")
        if self.loss != "flops" and not (self.hw or self.cost_table):
            raise DDIError(f"loss = {self.loss!r} needs --hw or --cost-table (a hardware model)")
        if self.hw and self.cost_table:
            raise DDIError("give hw or cost_table, not both")
        self.channel_group = parse_channel_group(self.channel_group)
        if self.channel_group == AUTO and not (self.hw or self.cost_table):
            raise DDIError("channel_group = 'auto' needs --hw or --cost-table (the array it "
                           "aligns with)")  # fmt: skip
        if self.counts not in COUNT_MODELS:
            raise bad("counts", f"allowed: {', '.join(COUNT_MODELS)}")
        if self.cost_table and self.counts != "scalesim":
            raise DDIError(f"counts = {self.counts!r} applies to a table profiled from hw; a "
                           "cost table brings its own (e.g. resnet20_eyeriss_physical)")
        if self.init and self.pretrained:
            raise DDIError("give init or pretrained, not both (init holds a whole network)")
        if not 0 <= self.target_skip < 1:
            raise bad("target_skip", "must be in [0, 1)")
        for key in ("alpha", "weight_decay", "momentum"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if self.lr <= 0:
            raise bad("lr", "must be > 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"allowed: {', '.join(LR_SCHEDULES)}")
        for key in ("batch", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        if not isinstance(self.amp, bool):
            raise bad("amp", "must be true or false")
        for key in ("pretrain_steps", "gate_steps", "steps", "ddi_steps", "epochs",
                    "bn_batches", "workers"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if self.total_steps == 0:
            raise DDIError("nothing to train: every stage has 0 steps")
        return self

    @property
    def stages(self) -> list[tuple[str, int, int]]:
        """(stage, first step, end step) of every stage with steps, in order."""
        gate_steps = self.gate_steps if self.gating != "none" else 0  # no gates to train
        counts = (self.pretrain_steps, gate_steps, self.steps, self.ddi_steps)
        out, begin = [], 0
        for stage, n in zip(STAGES, counts, strict=True):
            if n:
                out.append((stage, begin, begin + n))
                begin += n
        return out

    @property
    def total_steps(self) -> int:
        return sum(end - begin for _, begin, end in self.stages)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """A YAML run config (keys = `TrainConfig` fields) with explicit overrides on top, both on
    top of the preset they name (`quick` by default). Steps given without epochs drop the
    preset's epochs (which would set the steps from the data's size instead)."""
    allowed = {f.name for f in fields(TrainConfig)}
    data = load_mapping(path, "run config", allowed)
    data.update({k: v for k, v in overrides.items() if v is not None})
    check_keys(data, allowed, str(path or "run config"))
    preset = data.get("preset", TrainConfig.preset)
    if preset not in PRESETS:
        raise DDIError(f"{path or 'config'}: preset = {preset!r}: allowed: {', '.join(PRESETS)}")
    base = dict(PRESETS[preset])
    if "epochs" not in data and data.keys() & {"steps", "ddi_steps"}:
        base.pop("epochs", None)  # steps given: a preset's epochs would override them
    cfg = TrainConfig(**{**base, **data})
    for f in fields(TrainConfig):  # types at the edge: YAML gives strings for typos like 1e-4x
        value, default = getattr(cfg, f.name), getattr(TrainConfig, f.name)
        if f.name == "channel_group":  # a number or "auto": `validate` parses it
            continue
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DDIError(f"{path or 'config'}: {f.name} = {value!r} must be a number")
            if isinstance(default, int) and value != int(value):
                raise DDIError(f"{path or 'config'}: {f.name} = {value!r} must be an integer")
            setattr(cfg, f.name, type(default)(value))
    return cfg.validate()
