"""Inference copies of a network: the same function, computed with fewer or faster operators.

`for_inference(model)` applies two rewrites to an eval-mode copy:
- BN folding: a BN that directly follows a conv is an affine map per channel, so it folds into
  the conv (weights scaled, a bias added) and becomes `nn.Identity`. Which conv a BN follows is
  declared by each module class as `conv_bn` pairs of attribute names (pre-activation networks,
  BN before conv, declare none); in an `nn.Sequential` a conv followed by a BN is a pair.
- channels-last weights for the convs a class lists in `channels_last` (the CNN channel gate's
  3×3/2 conv): a channels-last weight makes PyTorch run oneDNN's direct convolution, where a
  batch-1 NCHW conv of a CIFAR-sized map takes the im2col path (1.3-1.6× slower measured
  here, `benchmarks/bench_dynamic.py`). The plain network has no such conv.
Plain and gated networks get the same rewrites (a benchmark comparing them gives both the same
treatment). Gated networks slice the folded weights and biases like the unfolded ones, so
decisions, skipped work and `sample_costs` do not change (nor `FlopCounterMode`'s count: a
conv's bias adds no multiply-accumulates); outputs agree up to float rounding.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

M = TypeVar("M", bound=nn.Module)


def conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """(conv, BN) attribute names of `module` whose BN is applied right after the conv."""
    pairs = list(getattr(module, "conv_bn", ()))
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        pairs += [(a, b) for a, b in zip(names, names[1:], strict=False)
                  if isinstance(module[int(a)], nn.Conv2d)
                  and isinstance(module[int(b)], nn.BatchNorm2d)]  # fmt: skip
    return pairs


def for_inference(model: M) -> M:
    """An eval-mode copy of `model` with BNs folded and gate conv weights channels-last.

    For inference only: the copy has no BN to train (its `train()` would train without it).
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for conv_name, bn_name in conv_bn_pairs(module):
            bn = getattr(module, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), bn))
                setattr(module, bn_name, nn.Identity())
        for conv_name in getattr(module, "channels_last", ()):
            getattr(module, conv_name).to(memory_format=torch.channels_last)
    return model
