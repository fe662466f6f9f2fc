"""Model zoo + layer walker: MAC counts checked three independent ways, plus gate annotations.

MACs are checked against (a) closed forms written here from the architecture definitions,
(b) PyTorch's own FlopCounterMode, (c) the paper's quoted FLOPs (= 2 × conv+FC MACs).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ddi_energy import get_model, list_models, walk_layers
from ddi_energy.errors import DDIError
from ddi_energy.models.registry import model_cfg
from ddi_energy.models.zoo import walk_arch

CHECKED = ["resnet20", "resnet38", "resnet74", "densenet100", "mobilenetv2"]


def resnet_macs(n: int, num_classes: int = 10) -> int:
    """Closed form for CIFAR ResNet-(6n+2) with 1×1 projection shortcuts.

    Every 3×3 conv of a block costs 9·w²·HW = 9·16²·32² in each stage (width doubles as the
    map halves), except the first conv of stages 2 and 3, which sees half the channels.
    """
    conv3 = 9 * 16 * 16 * 32 * 32
    stem = 9 * 3 * 16 * 32 * 32
    projections = (16 * 16) * 32 * 16 + (8 * 8) * 64 * 32
    return stem + (6 * n - 1) * conv3 + projections + 64 * num_classes


def densenet_bc_cifar_macs(depth: int = 100, k: int = 12, num_classes: int = 10) -> int:
    """Closed form for CIFAR DenseNet-BC: 3 blocks of L = (depth - 4) / 6 bottleneck layers.

    Layer i of a block with c0 input channels on an HW map costs HW·4k·(c0 + i·k) (1×1) plus
    HW·9·4k·k (3×3); summing i = 0..L-1 gives HW·4k·(L·c0 + k·L(L-1)/2) + L·HW·36k².
    """
    layers = (depth - 4) // 6
    c = 2 * k
    total = 9 * 3 * c * 32 * 32  # stem
    for b, side in enumerate((32, 16, 8)):
        hw = side * side
        total += hw * 4 * k * (layers * c + k * layers * (layers - 1) // 2)
        total += layers * hw * 36 * k * k
        c += layers * k
        if b < 2:  # transition: 1×1 conv at the block's resolution, before the pool
            total += hw * c * (c // 2)
            c //= 2
    return total + c * num_classes


def mobilenetv2_cifar_macs(num_classes: int = 10) -> int:
    """Closed form for CIFAR MobileNetV2: per block, 1×1 expansion c -> t·c on the input map,
    3×3 depthwise on the output map (9 MACs per pixel and channel), 1×1 projection."""
    stages = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
    side, c, total = 32, 32, 32 * 32 * 9 * 3 * 32
    for t, out, n, stride in stages:
        for i in range(n):
            hidden = c * t
            total += side * side * c * hidden if t != 1 else 0
            side //= stride if i == 0 else 1
            total += side * side * 9 * hidden + side * side * hidden * out
            c = out
    return total + side * side * c * 1280 + 1280 * num_classes


HAND = {
    "resnet20": resnet_macs(3),
    "resnet38": resnet_macs(6),
    "resnet74": resnet_macs(12),
    "densenet100": densenet_bc_cifar_macs(),
    "mobilenetv2": mobilenetv2_cifar_macs(),
}


def total_macs(arch: str) -> int:
    return sum(layer.macs for layer in walk_arch(arch))


@pytest.mark.parametrize("arch", CHECKED)
def test_macs_match_hand_formula(arch: str) -> None:
    assert total_macs(arch) == HAND[arch]


@pytest.mark.parametrize("arch", CHECKED)
def test_macs_match_flop_counter(arch: str) -> None:
    model = get_model(arch).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *model.input_size))
    assert counter.get_total_flops() == 2 * total_macs(arch)


# How far our FLOPs may be from the paper's (registered with each model). Our counts reproduce
# the notes' table; the paper's ResNet-14/26 numbers are 9.6 % / 6.0 % above 2 × MACs for no
# reason we can find (no consistent extra term fits all rows), so those two get wider bounds.
PAPER_TOLERANCE = {"resnet14": 0.10, "resnet26": 0.07}
WITH_PAPER_FLOPS = [name for name in list_models() if model_cfg(name).paper_flops]


def test_paper_flops_registered_for_the_checked_models() -> None:
    assert set(CHECKED) - {"mobilenetv2"} <= set(WITH_PAPER_FLOPS)  # the paper has no MobileNet


@pytest.mark.parametrize("arch", WITH_PAPER_FLOPS)
def test_flops_close_to_paper(arch: str) -> None:
    paper = model_cfg(arch).paper_flops
    assert 2 * total_macs(arch) == pytest.approx(paper, rel=PAPER_TOLERANCE.get(arch, 0.05))


def test_densenet201_matches_paper_4g_as_macs() -> None:
    # DenseNet-201 at 224×224 is 4.29 G MACs (8.58 G FLOPs in the 2×MACs convention, the same
    # count torchvision publishes as "4.29 GFLOPS"). The paper's "4G" therefore counts MACs,
    # rounded down: 4.29 G is 7.3 % above it, hence a 10 % bound on MACs rather than 2 × MACs.
    macs = total_macs("densenet201")
    assert macs == 4_291_365_888
    assert macs == pytest.approx(4e9, rel=0.10)


def test_resnet74_layer_counts_and_gates() -> None:
    layers = walk_arch("resnet74")
    convs = [la for la in layers if la.kind == "conv"]
    shortcuts = [la for la in convs if ".shortcut." in la.name]
    assert len(convs) - len(shortcuts) == 73  # the "74" = 73 main-path convs + FC
    assert [la.name for la in shortcuts] == ["stage2.0.shortcut.0", "stage3.0.shortcut.0"]
    assert [la.kind for la in layers].count("fc") == 1
    assert layers[0].name == "conv1" and layers[-1].name == "fc"
    gated = [la for la in layers if la.layer_gate is not None]
    assert len(gated) == 2 * 36  # 3 stages × 12 blocks, conv1 + conv2 each
    for la in layers:
        if la.name in ("conv1", "fc") or la in shortcuts:
            assert (la.layer_gate, la.channel_gate, la.channel_axis) == (None, None, None)
    blocks = [f"stage{s}.{i}" for s in (1, 2, 3) for i in range(12)]
    by_name = {la.name: la for la in layers}
    for block in blocks:
        c1, c2 = by_name[f"{block}.conv1"], by_name[f"{block}.conv2"]
        assert (c1.layer_gate, c1.channel_gate, c1.channel_axis) == (block, block, "out")
        assert (c2.layer_gate, c2.channel_gate, c2.channel_axis) == (block, block, "in")
        assert c1.gated_channels == c2.gated_channels == c1.out_channels == c2.in_channels


def test_stride2_shapes() -> None:
    by_name = {la.name: la for la in walk_arch("resnet20")}
    down = by_name["stage2.0.conv1"]
    assert (down.in_h, down.stride, down.padding, down.filter_h) == (32, 2, 1, 3)
    assert down.out_h == 16 and down.shape().ifmap_h == 33 and down.shape().ofmap_h == 16
    proj = by_name["stage2.0.shortcut.0"]
    assert (proj.in_h, proj.stride, proj.padding, proj.filter_h) == (32, 2, 0, 1)
    assert proj.out_h == 16 and proj.shape().ifmap_h == 31 and proj.shape().ofmap_h == 16
    fc = by_name["fc"]
    assert (fc.kind, fc.in_h, fc.in_channels, fc.out_channels) == ("fc", 1, 64, 10)


def test_densenet100_gates() -> None:
    layers = walk_arch("densenet100")
    assert len(layers) == 1 + 3 * 16 * 2 + 2 + 1
    gated = [la for la in layers if la.layer_gate is not None]
    assert len(gated) == 3 * 16 * 2
    by_name = {la.name: la for la in layers}
    dl = by_name["block2.layer3.conv1"]
    assert (dl.layer_gate, dl.channel_gate, dl.channel_axis) == ("block2.layer3",) * 2 + ("out",)
    assert (dl.in_channels, dl.out_channels, dl.in_h) == (108 + 2 * 12, 48, 16)
    c2 = by_name["block2.layer3.conv2"]
    assert (c2.channel_gate, c2.channel_axis, c2.in_channels, c2.out_channels) == (
        "block2.layer3",
        "in",
        48,
        12,
    )
    for name in ("conv1", "trans1.conv", "trans2.conv", "fc"):
        assert by_name[name].layer_gate is None and by_name[name].channel_axis is None
    assert by_name["fc"].in_channels == 342


def test_unknown_arch() -> None:
    with pytest.raises(DDIError) as err:
        get_model("resnet75")
    msg = str(err.value)
    assert "'resnet75'" in msg and "\n" not in msg
    assert all(name in msg for name in list_models())
    with pytest.raises(DDIError):
        walk_arch("resnet75")


def test_unknown_kwarg_is_type_error() -> None:
    with pytest.raises(TypeError):
        get_model("resnet20", width=2)


@pytest.mark.parametrize("arch", list_models())
def test_every_model_runs(arch: str) -> None:
    cfg = model_cfg(arch)
    default_classes = cfg.num_classes
    model = get_model(arch).eval()
    assert model.input_size == cfg.input_size
    assert cfg.input_size == ((3, 224, 224) if cfg.dataset == "imagenet" else (3, 32, 32))
    with torch.no_grad():
        logits = model(torch.zeros(1, *model.input_size))
    assert logits.shape == (1, default_classes)
    assert walk_arch(arch)[-1].out_channels == default_classes


def test_num_classes_passes_through() -> None:
    model = get_model("resnet20", num_classes=100)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    assert walk_layers(model)[-1].out_channels == 100


def test_walk_leaves_model_untouched() -> None:
    model = get_model("resnet8")
    model.train()
    stats = model.bn1.running_mean.clone()
    walk_layers(model)
    assert model.training and torch.equal(model.bn1.running_mean, stats)


def test_walk_arch_returns_fresh_list() -> None:
    first = walk_arch("resnet8")
    first.clear()
    assert len(walk_arch("resnet8")) == 10


class _Odd(nn.Module):
    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(
    ("conv", "words"),
    [
        # SCALE-Sim has one stride for both axes: 6x3 outputs at stride 1x2 cannot be expressed.
        (nn.Conv2d(4, 4, 3, stride=(1, 2)), "stride 1x2"),
        (nn.Conv2d(4, 4, 2, padding="same"), "padding='same'"),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_walk_rejects_what_scalesim_cannot_express(conv: nn.Conv2d, words: str) -> None:
    with pytest.raises(DDIError, match=f"layer conv: .*{re.escape(words)}"):
        walk_layers(_Odd(conv), input_size=(4, 8, 8))


def test_list_models_filters() -> None:
    assert list_models(dataset="imagenet") == ["densenet201", "resnet50"]
    assert list_models(gated=False) == ["mobilenetv2"]
    assert set(list_models(dataset="cifar")) | {"densenet201", "resnet50"} == {
        *list_models(gated=True), "mobilenetv2"}
    assert sorted(list_models(dataset="cifar") + list_models(dataset="imagenet")) == list_models()
