"""Layer handles: how one forward call of a module becomes a `Layer` (fvcore-style op handles).

`HANDLES` maps a module type to the function that turns a call (module, input, output) into the
layer a cost table prices. The walker looks a module's type up along its MRO, so subclasses
(`NonDynamicallyQuantizableLinear`, a user's `Conv2d` subclass) are handled too. Whatever FLOPs
run outside a handled module are reported by `ddi_energy.workload.unpriced`, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.workload.annotations import get_gate
from ddi_energy.workload.shapes import Layer

LayerHandle = Callable[[str, nn.Module, torch.Tensor, torch.Tensor], Layer]


def _gate_fields(m: nn.Module) -> dict[str, str | None]:
    gate = get_gate(m) or (None, None, None)
    return dict(zip(("layer_gate", "channel_gate", "channel_axis"), gate, strict=True))


def _width(h: int, w: int) -> int | None:
    """The `_w` field of a `Layer`: None when the width value equals the height value."""
    return None if w == h else w


def _padding(name: str, m: nn.Conv2d) -> tuple[int, int]:
    """Per-side padding (h, w); 'same' only where PyTorch pads both sides alike."""
    if m.padding == "valid":
        return 0, 0
    if m.padding == "same":
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise DDIError(f"layer {name}: padding='same' with kernel {m.kernel_size} pads one "
                           "side more than the other; not supported (pad explicitly)")  # fmt: skip
        return total[0] // 2, total[1] // 2
    h, w = m.padding  # type: ignore[misc]
    return int(h), int(w)


def conv2d_layer(name: str, m: nn.Conv2d, x: torch.Tensor, y: torch.Tensor) -> Layer:
    """Any `nn.Conv2d`: stride, padding, dilation and groups per axis as PyTorch has them.

    Whether SCALE-Sim can run it (one stride for both axes) is checked here, so the walk stops
    at the layer with its name.
    """
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != m.in_channels:
        raise DDIError(f"layer {name}: input shape {tuple(x.shape)} is not (1, {m.in_channels}, "
                       "H, W)")  # fmt: skip
    (ph, pw), (sh, sw), (dh, dw) = _padding(name, m), m.stride, m.dilation
    layer = Layer(
        name=name, kind="conv", in_h=int(x.shape[2]), in_w=int(x.shape[3]), padding=ph,
        filter_h=m.kernel_size[0], filter_w=m.kernel_size[1], in_channels=m.in_channels,
        out_channels=m.out_channels, stride=sh, **_gate_fields(m), groups=m.groups, dilation=dh,
        padding_w=_width(ph, pw), stride_w=_width(sh, sw), dilation_w=_width(dh, dw),
    )  # fmt: skip
    if (layer.out_h, layer.out_w) != tuple(y.shape[-2:]):
        raise DDIError(f"layer {name}: output {tuple(y.shape)} is not the {layer.out_h}x"
                       f"{layer.out_w} its stride, padding and dilation give")  # fmt: skip
    layer.sim_layers()
    return layer


def linear_layer(name: str, m: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> Layer:
    """`nn.Linear` on input of any rank: T = numel / in_features tokens (a batch-1 input has
    T = 1), as a 1×1 conv with in_features channels on a T×1 input (SCALE-Sim's GEMM form
    M = T, K = in_features, N = out_features)."""
    tokens = x.numel() // m.in_features
    return Layer(name=name, kind="fc", in_h=tokens, in_w=1, padding=0, filter_h=1, filter_w=1,
                 in_channels=m.in_features, out_channels=m.out_features, stride=1,
                 **_gate_fields(m))  # fmt: skip


HANDLES: dict[type[nn.Module], LayerHandle] = {
    nn.Conv2d: conv2d_layer,  # type: ignore[dict-item]
    nn.Linear: linear_layer,  # type: ignore[dict-item]
}


def handle_for(module: nn.Module, handles: dict[type[nn.Module], LayerHandle] = HANDLES
               ) -> LayerHandle | None:  # fmt: skip
    """The handle of the module's type or its nearest handled base class, if any."""
    for cls in type(module).__mro__:
        if cls in handles:
            return handles[cls]
    return None
