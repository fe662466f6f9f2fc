"""The model zoo: every built-in architecture registered with its `ModelCfg`, and the one place
that knows which gated class builds which arch (the plain backbones do not know their gated
versions).

`get_model(name, gating=None, exits=False, num_classes=..., channel_group=1)` gives the plain
backbone (what profiling walks) or its dynamic version (`channel_group` channels per
channel-gate output); `walk_arch(name)` lists the plain backbone's layers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.models.densenet import DenseNet
from ddi_energy.models.dynamic_densenet import DynamicDenseNet
from ddi_energy.models.dynamic_resnet import DynamicResNet
from ddi_energy.models.dynamic_resnet50 import DynamicBottleneckResNet
from ddi_energy.models.mobilenet import MobileNetV2
from ddi_energy.models.registry import ModelCfg, model_cfg, register_model, registered
from ddi_energy.models.resnet import ResNet
from ddi_energy.models.resnet50 import BottleneckResNet
from ddi_energy.workload.shapes import Layer
from ddi_energy.workload.walker import walk_layers

CIFAR_INPUT = (3, 32, 32)
IMAGENET_INPUT = (3, 224, 224)


def _resnet_builder(arch: str, n: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, gating: str | None = None, exits: bool = False,
              channel_group: int = 1) -> nn.Module:  # fmt: skip
        if gating is None and not exits:
            return ResNet(n, num_classes)
        return DynamicResNet(n, arch, gating or "none", exits, num_classes, channel_group)

    build.__doc__ = f"CIFAR {arch}: {n} blocks per stage."
    return build


def _mobilenetv2(num_classes: int = 10, gating: str | None = None, exits: bool = False,
                 channel_group: int = 1) -> nn.Module:  # fmt: skip
    """CIFAR MobileNetV2: depthwise-separable inverted residuals. Plain only, for profiling."""
    if gating is not None or exits or channel_group != 1:
        raise DDIError("mobilenetv2 has no gated version (gated: the CIFAR ResNets, "
                       "densenet100, densenet201 and resnet50)")  # fmt: skip
    return MobileNetV2(num_classes)


def _densenet100(num_classes: int = 10, gating: str | None = None, exits: bool = False,
                 channel_group: int = 1) -> nn.Module:  # fmt: skip
    """DenseNet-BC-100, k=12: (100 - 4) / 6 = 16 bottleneck layers per block, 2k stem features.

    `gating` (a mode of `GATINGS`) or `exits` give the MGL2S version (`DynamicDenseNet`).
    """
    if gating is None and not exits:
        return DenseNet(12, (16, 16, 16), 24, num_classes, imagenet_stem=False)
    return DynamicDenseNet("densenet100", 12, (16, 16, 16), 24, num_classes, gating or "none",
                           exits, channel_group=channel_group)  # fmt: skip


# DenseNet-201's exits (Sec. IV-A: "a total of 3 branch classifiers: one at 1/2 depth of the
# first dense block, and the other two at 1/4 and 3/4 depth of the remaining two dense blocks,
# respectively"). Read as: of its 4 blocks, the last ends in the final classifier, so "the
# remaining two" are blocks 2 and 3, and "respectively" puts 1/4 in block 2 and 3/4 in block 3:
# after block1.layer3 (of 6), block2.layer3 (of 12) and block3.layer36 (of 48). 1/4 and 3/4 of
# both blocks would be 5 branches, not 3.
DENSENET201_EXITS = ((2,), (2,), (35,), ())


def _densenet201(num_classes: int = 1000, gating: str | None = None, exits: bool = False,
                 channel_group: int = 1) -> nn.Module:  # fmt: skip
    """DenseNet-201 (ImageNet), k=32, 64 stem features, 224×224 (torchvision's layout).

    `gating` or `exits` give the MGL2S version with the paper's 3 exits.
    """
    if gating is None and not exits:
        return DenseNet(32, (6, 12, 48, 32), 64, num_classes, imagenet_stem=True)
    return DynamicDenseNet("densenet201", 32, (6, 12, 48, 32), 64, num_classes, gating or "none",
                           exits, imagenet_stem=True, exit_layers=DENSENET201_EXITS,
                           channel_group=channel_group)  # fmt: skip


def _resnet50(num_classes: int = 1000, gating: str | None = None, exits: bool = False,
              channel_group: int = 1) -> nn.Module:  # fmt: skip
    """ResNet-50 (ImageNet, torchvision's layout). `gating` or `exits` give the MGL2S version
    (one channel mask on each bottleneck's inner width; exits after stages 1-3)."""
    if gating is None and not exits:
        return BottleneckResNet((3, 4, 6, 3), num_classes)
    return DynamicBottleneckResNet("resnet50", (3, 4, 6, 3), gating or "none", exits, num_classes,
                                   channel_group)


# Paper FLOPs (Table I / Sec. IV, 2 × conv+FC MACs); None where the paper quotes none.
_RESNETS = {"resnet8": (1, None), "resnet14": (2, 59e6), "resnet20": (3, 84e6),
            "resnet26": (4, 117e6), "resnet38": (6, 170e6), "resnet74": (12, 340e6),
            "resnet110": (18, None)}  # fmt: skip

for _arch, (_n, _flops) in _RESNETS.items():
    register_model(ModelCfg(_arch, _resnet_builder(_arch, _n), "cifar", CIFAR_INPUT, 10, True,
                            _flops, f"CIFAR ResNet-{6 * _n + 2}, {_n} blocks per stage"))
register_model(ModelCfg("mobilenetv2", _mobilenetv2, "cifar", CIFAR_INPUT, 10, False, None,
                        "CIFAR MobileNetV2 (depthwise-separable; plain only)"))
register_model(ModelCfg("densenet100", _densenet100, "cifar", CIFAR_INPUT, 10, True, 580e6,
                        "CIFAR DenseNet-BC-100, k=12"))
# The paper's "4G" for DenseNet-201 counts MACs (4.29 G), not 2 × MACs: no paper_flops.
register_model(ModelCfg("densenet201", _densenet201, "imagenet", IMAGENET_INPUT, 1000, True,
                        None, "ImageNet DenseNet-201, k=32"))
register_model(ModelCfg("resnet50", _resnet50, "imagenet", IMAGENET_INPUT, 1000, True, None,
                        "ImageNet ResNet-50 (bottlenecks, torchvision layout)"))


def list_models(dataset: str | None = None, gated: bool | None = None) -> list[str]:
    """Registered architecture names, sorted; optionally only of a dataset or gated ones."""
    return [cfg.name for cfg in registered(dataset, gated)]


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build architecture `name`; the model has `input_size = (C, H, W)`.

    Keyword arguments go straight to the builder, so one it does not know raises `TypeError`.
    """
    model = model_cfg(name).builder(**kwargs)
    if not hasattr(model, "input_size"):
        raise TypeError(f"builder for {name!r} returned a model without input_size")
    return model


@cache
def _walk_arch_cached(name: str) -> tuple[Layer, ...]:
    # One batch-1 forward on the CPU, single-threaded: ~0.03 s for a CIFAR ResNet, where the
    # meta device first spends ~2 s importing torch's reference kernels, and where more threads
    # only contend with whatever else the machine runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return tuple(walk_layers(get_model(name)))
    finally:
        torch.set_num_threads(threads)


def walk_arch(name: str) -> list[Layer]:
    """`walk_layers(get_model(name))`, memoized per name (the result is a fresh list each call)."""
    return list(_walk_arch_cached(name))
