"""Every FLOP-carrying op of a forward pass, with the module that ran it: what a cost table
prices and what it cannot (matmul, attention, conv3d, ...), so nothing is silently counted as 0.

`OpRecorder` is a `TorchDispatchMode` that sees each aten op of the forward. FLOPs are
`torch.utils.flop_counter`'s formulas, so priced layers match `FlopCounterMode` exactly; like
`FlopCounterMode`, an op without a formula is first decomposed into the ops it is made of.
Beyond `FlopCounterMode` it knows ops that it counts as 0 on the CPU: matrix-vector products,
`scaled_dot_product_attention`'s CPU kernel, `nn.MultiheadAttention`'s fast path (formulas
below), and LSTM/RNN/bilinear/FFT kernels (FLOPs unknown: reported as such, never as 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, sdpa_flop_count

aten = torch.ops.aten


def _heads(t: torch.Tensor) -> tuple[int, int, int, int]:
    """(batch, heads, sequence, features) of an attention operand of rank 2 or more."""
    if t.dim() >= 4:
        return prod(t.shape[:-3]), t.shape[-3], t.shape[-2], t.shape[-1]
    return prod(t.shape[:-2]), 1, t.shape[-2], t.shape[-1]


def _sdpa_cpu(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *_: Any,
              **__: Any) -> int:  # fmt: skip
    """`_scaled_dot_product_flash_attention_for_cpu`: QK^T and AV, as for the GPU kernels."""
    return sdpa_flop_count(_heads(query), _heads(key), _heads(value))


def _native_mha(query: torch.Tensor, key: torch.Tensor, _value: torch.Tensor, embed_dim: int,
                *_: Any, **__: Any) -> int:  # fmt: skip
    """`nn.MultiheadAttention`'s fast path (batch-first B×L×E): the q, k, v and output
    projections (2·E² per token each) and the two attention matmuls (2·Lq·Lk·E each)."""
    e = embed_dim
    b, lq, lk = query.shape[0], query.shape[-2], key.shape[-2]
    return 2 * b * e * (e * (2 * lq + 2 * lk) + 2 * lq * lk)


def _mv(matrix: torch.Tensor, *_: Any, **__: Any) -> int:
    return 2 * matrix.numel()


def _addmv(_self: torch.Tensor, matrix: torch.Tensor, *_: Any, **__: Any) -> int:
    return 2 * matrix.numel()


def _dot(a: torch.Tensor, *_: Any, **__: Any) -> int:
    return 2 * a.numel()


def _addbmm(_self: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor, *_: Any, **__: Any) -> int:
    return 2 * b1.shape[0] * b1.shape[1] * b1.shape[2] * b2.shape[2]


# Ops FlopCounterMode has no formula for, with ours.
EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
    aten._native_multi_head_attention: _native_mha,
    aten.mv: _mv, aten.addmv: _addmv, aten.dot: _dot, aten.vdot: _dot, aten.addbmm: _addbmm,
}  # fmt: skip
# Ops that carry FLOPs we do not count (recurrent cells, bilinear forms, FFTs, fused blocks).
UNKNOWN_FLOPS = frozenset(
    getattr(aten, name) for name in (
        "mkldnn_rnn_layer", "lstm", "gru", "rnn_tanh", "rnn_relu", "_thnn_fused_lstm_cell",
        "_thnn_fused_gru_cell", "_trilinear", "conv_tbc", "_transformer_encoder_layer_fwd",
        "_fft_r2c", "_fft_c2r", "_fft_c2c",
    ) if hasattr(aten, name)
)  # fmt: skip

HINTS = {
    "aten.mm": "matmul: torch.matmul, @, einsum, F.linear outside nn.Linear",
    "aten.addmm": "matmul + bias outside nn.Linear",
    "aten.bmm": "batched matmul: torch.matmul, @, einsum",
    "aten.baddbmm": "batched matmul + bias",
    "aten.mv": "matrix-vector product", "aten.addmv": "matrix-vector product + bias",
    "aten._scaled_dot_product_flash_attention_for_cpu": "attention: scaled_dot_product_attention",
    "aten._native_multi_head_attention": "attention: nn.MultiheadAttention",
    "aten.mkldnn_rnn_layer": "recurrent layer: nn.LSTM",
    "aten._trilinear": "bilinear form: nn.Bilinear",
}  # fmt: skip


@dataclass(frozen=True)
class OpRecord:
    """One FLOP-carrying aten op: the innermost module that ran it, its kind, its FLOPs."""

    scope: str  # module path ("" for the model's own forward)
    kind: str  # "aten.mm", "aten.convolution (conv3d)", ...
    flops: int | None  # None: an op that carries FLOPs we cannot count


def _kind(packet: Any, args: tuple) -> str:
    name = str(packet)
    if "convolution" in name and len(args) > 1 and isinstance(args[1], torch.Tensor):
        transposed = bool(args[6]) if len(args) > 6 else False
        return f"{name} ({'conv_transpose' if transposed else 'conv'}{args[1].dim() - 2}d)"
    return name


class OpRecorder(TorchDispatchMode):
    """Records every FLOP-carrying op with `scope()`, the module running when it is called."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Torch wraps a mode's __torch_dispatch__ in dynamo.disable unless a mode opts out, and
        # that wrapper's first call imports torch._dynamo (~800 modules, 2-5 s here). A walk
        # never runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(self, scope: Callable[[], str]) -> None:
        super().__init__()
        self.scope = scope
        self.records: list[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        packet = func._overloadpacket
        known = packet in flop_registry or packet in EXTRA_FORMULAS or packet in UNKNOWN_FLOPS
        if not known and func is not torch.ops.prim.device.default:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if packet in flop_registry:
            flops = int(flop_registry[packet](*args, **kwargs, out_val=out))
        elif packet in EXTRA_FORMULAS:
            flops = int(EXTRA_FORMULAS[packet](*args, **kwargs))
        elif packet in UNKNOWN_FLOPS:
            flops = None
        else:
            return out
        self.records.append(OpRecord(self.scope(), _kind(packet, args), flops))
        return out


@dataclass(frozen=True)
class UnpricedKind:
    """All unpriced calls of one op kind: how many, their FLOPs and share, and where."""

    kind: str
    calls: int
    flops: int | None  # None if any call's FLOPs are unknown
    share: float | None  # of the forward's counted FLOPs
    modules: tuple[str, ...]

    def line(self) -> str:
        hint = next((f" ({h})" for k, h in HINTS.items() if self.kind == k), "")
        amount = ("FLOPs unknown" if self.flops is None else
                  f"{self.flops:,} FLOPs = {100 * (self.share or 0):.2f} % of the forward's")
        where = ", ".join(self.modules[:6]) + (", ..." if len(self.modules) > 6 else "")
        return f"{self.kind}{hint}: {self.calls} call(s), {amount}, in {where}"

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.kind, "calls": self.calls, "flops": self.flops, "share": self.share,
                "modules": list(self.modules)}  # fmt: skip


def unpriced_kinds(records: Sequence[OpRecord], priced: set[str], root: str
                   ) -> tuple[UnpricedKind, ...]:  # fmt: skip
    """The records outside the `priced` module scopes, by kind, largest FLOPs first.

    `root` names the model's own forward in the module lists (its scope is "").
    """
    total = sum(r.flops or 0 for r in records)
    by_kind: dict[str, list[OpRecord]] = {}
    for r in records:
        if r.scope not in priced:
            by_kind.setdefault(r.kind, []).append(r)
    kinds = []
    for kind, calls in by_kind.items():
        unknown = any(r.flops is None for r in calls)
        flops = None if unknown else sum(r.flops or 0 for r in calls)
        share = None if flops is None or not total else flops / total
        modules = tuple(dict.fromkeys(r.scope or root for r in calls))
        kinds.append(UnpricedKind(kind, len(calls), flops, share, modules))
    return tuple(sorted(kinds, key=lambda k: (k.flops is not None, -(k.flops or 0))))
