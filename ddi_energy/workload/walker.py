"""Turn a PyTorch model into the list of conv/FC `Layer`s it runs, in execution order.

Shapes come from one batch-1 forward pass with hooks rather than from static inspection, so
whatever the model's forward does (strides, pooling, concatenation) is reflected exactly. Gate
annotations come from each module's `ddi_gate` attribute (see `ddi_energy.workload.annotations`).
"""

from __future__ import annotations

import torch
from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.workload.annotations import get_gate
from ddi_energy.workload.shapes import Layer


def _square(name: str, what: str, value: object) -> int:
    """Collapse a (h, w) pair to one int; `Layer` has a single padding and stride."""
    if isinstance(value, str):
        raise DDIError(f"layer {name}: {what}={value!r} not supported (use an explicit int)")
    if isinstance(value, int):
        return value
    pair = tuple(value)  # type: ignore[call-overload]
    if len(pair) != 2 or pair[0] != pair[1]:
        raise DDIError(f"layer {name}: non-square {what} {pair} not supported")
    return int(pair[0])


def _gate_fields(m: nn.Module) -> dict[str, str | None]:
    gate = get_gate(m) or (None, None, None)
    return dict(zip(("layer_gate", "channel_gate", "channel_axis"), gate, strict=True))


def _conv_layer(name: str, m: nn.Conv2d, x: torch.Tensor) -> Layer:
    if m.groups != 1:
        raise DDIError(f"layer {name}: grouped/depthwise conv (groups={m.groups}) not supported")
    if _square(name, "dilation", m.dilation) != 1:
        raise DDIError(f"layer {name}: dilated conv (dilation={m.dilation}) not supported")
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != m.in_channels:
        raise DDIError(f"layer {name}: unexpected input shape {tuple(x.shape)}")
    kh, kw = m.kernel_size
    if kh != kw:
        raise DDIError(f"layer {name}: non-square kernel {m.kernel_size} not supported")
    return Layer(
        name=name,
        kind="conv",
        in_h=int(x.shape[2]),
        in_w=int(x.shape[3]),
        padding=_square(name, "padding", m.padding),
        filter_h=kh,
        filter_w=kw,
        in_channels=m.in_channels,
        out_channels=m.out_channels,
        stride=_square(name, "stride", m.stride),
        **_gate_fields(m),
    )


def _fc_layer(name: str, m: nn.Linear, x: torch.Tensor) -> Layer:
    if x.numel() != m.in_features:
        # A Linear over extra token/spatial dims would be many 1×1 convs, not one.
        raise DDIError(f"layer {name}: FC input shape {tuple(x.shape)} is not (1, features)")
    return Layer(
        name=name,
        kind="fc",
        in_h=1,
        in_w=1,
        padding=0,
        filter_h=1,
        filter_w=1,
        in_channels=m.in_features,
        out_channels=m.out_features,
        stride=1,
        **_gate_fields(m),
    )


def walk_layers(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, prefix: str = ""
) -> list[Layer]:
    """Conv and FC layers of `model` in execution order, from one batch-1 forward on zeros.

    Layer names are module names, `prefix.`-qualified if a prefix is given (for submodules).

    Runs on the device the model's parameters live on (a model built on the meta device costs
    no arithmetic). The model is put in eval mode for the pass, so BN statistics are untouched,
    and restored afterwards. A module called more than once is an error: layer names are keys.
    """
    prefix = f"{prefix}." if prefix else ""
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise DDIError(f"{type(model).__name__} has no input_size; pass input_size=(C, H, W)")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32

    layers: list[Layer] = []
    seen: set[str] = set()

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, _out: object) -> None:
            if name in seen:
                raise DDIError(f"layer {name} runs more than once per forward; cannot walk it")
            seen.add(name)
            x = args[0]
            if isinstance(module, nn.Conv2d):
                layers.append(_conv_layer(prefix + name, module, x))
            else:
                layers.append(_fc_layer(prefix + name, module, x))  # type: ignore[arg-type]

        return hook

    handles = [
        m.register_forward_hook(hook_for(name))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return layers
