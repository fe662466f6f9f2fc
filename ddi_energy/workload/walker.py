"""Turn a PyTorch model into the list of conv/FC `Layer`s it runs, in execution order, and the
FLOP-carrying ops that no layer handle prices.

Shapes come from one batch-1 forward pass with hooks rather than from static inspection, so
whatever the model's forward does (strides, pooling, concatenation, reshapes into tokens) is
reflected exactly. Modules become layers through the handles of `ddi_energy.workload.handles`;
gate annotations come from each module's `ddi_gate` attribute (`ddi_energy.workload.annotations`).
During the same pass `OpRecorder` sees every aten op with the module running it, so the FLOPs a
handled module runs are checked against the layer it became, and every other FLOP-carrying op
is reported (`Walk.unpriced`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ddi_energy.errors import DDIError
from ddi_energy.workload.handles import HANDLES, LayerHandle, handle_for
from ddi_energy.workload.shapes import Layer
from ddi_energy.workload.unpriced import OpRecord, OpRecorder, UnpricedKind, unpriced_kinds


@dataclass(frozen=True)
class Walk:
    """What one forward pass runs: the priced layers and every FLOP-carrying op."""

    layers: tuple[Layer, ...]
    ops: tuple[OpRecord, ...]
    unpriced: tuple[UnpricedKind, ...]  # ops outside handled modules, by kind

    @property
    def flops(self) -> int:
        """Counted FLOPs of the whole forward, priced or not (unknown ones excluded)."""
        return sum(op.flops or 0 for op in self.ops)


def _check_priced(layers: dict[str, Layer], ops: tuple[OpRecord, ...]) -> None:
    """Each handled module ran exactly the FLOPs of the layer it became (2 × its MACs)."""
    seen: dict[str, int | None] = dict.fromkeys(layers, 0)
    for op in ops:
        if op.scope in seen:
            before = seen[op.scope]
            seen[op.scope] = None if before is None or op.flops is None else before + op.flops
    for scope, layer in layers.items():
        if seen[scope] != 2 * layer.macs:
            raise DDIError(f"layer {layer.name}: its forward ran {seen[scope]} FLOPs, but as a "
                           f"{layer.kind} layer it is priced at {2 * layer.macs} (2 x MACs); "
                           "a module type with its own forward needs its own handle")  # fmt: skip


def walk_model(
    model: nn.Module,
    input_size: tuple[int, int, int] | None = None,
    prefix: str = "",
    handles: dict[type[nn.Module], LayerHandle] = HANDLES,
) -> Walk:
    """Layers of `model` in execution order and its FLOP-carrying ops, from one batch-1 forward
    on zeros.

    Layer names are module names, `prefix.`-qualified if a prefix is given (for submodules).
    Runs on the device the model's parameters live on (a model built on the meta device costs
    no arithmetic). The model is put in eval mode for the pass, so BN statistics are untouched,
    and restored afterwards. A handled module called more than once is an error: layer names
    are keys.
    """
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise DDIError(f"{type(model).__name__} has no input_size; pass input_size=(C, H, W)")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32

    layers: dict[str, Layer] = {}
    scopes: list[str] = []  # the modules running, outermost first; the model itself is ""

    def enter(name: str):
        def hook(_module: nn.Module, _args: tuple) -> None:
            scopes.append(name)

        return hook

    def leave(name: str, handle: LayerHandle | None):
        full = ".".join(part for part in (prefix, name) if part)

        def hook(module: nn.Module, args: tuple, out: object) -> None:
            scopes.pop()
            if handle is None:
                return
            if name in layers:
                raise DDIError(f"layer {full} runs more than once per forward; cannot walk it")
            if not args:
                raise DDIError(f"layer {full}: called without a positional input")
            layers[name] = handle(full, module, args[0], out)  # type: ignore[arg-type]

        return hook

    hooks = []
    for name, m in model.named_modules():
        hooks.append(m.register_forward_pre_hook(enter(name)))
        hooks.append(m.register_forward_hook(leave(name, handle_for(m, handles))))
    recorder = OpRecorder(lambda: scopes[-1] if scopes else "")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), recorder:
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    ops = tuple(recorder.records)
    _check_priced(layers, ops)
    root = f"<{type(model).__name__}.forward>"
    return Walk(tuple(layers.values()), ops, unpriced_kinds(ops, set(layers), root))


def walk_layers(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, prefix: str = ""
) -> list[Layer]:
    """The conv and FC layers of `model` in execution order (see `walk_model`)."""
    return list(walk_model(model, input_size, prefix).layers)
