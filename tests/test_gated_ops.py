"""The lean-backward gate ops compute the plain formulas' values and gradients."""

from __future__ import annotations

import pytest
import torch
from dynamic_helpers import set_bias
from torch import nn

import ddi_energy
from ddi_energy.models import dynamic_resnet, gates
from ddi_energy.models.gated_ops import gated_residual, spatial_mean
from ddi_energy.models.gates import straight_through

PLAIN = {  # the formulas the Functions replace, as autograd differentiates them
    "gated_residual": lambda s, g, b: torch.relu_(torch.addcmul(s, g[:, None, None, None], b)),
    "spatial_mean": lambda x: x.mean((2, 3)),
}


def _gate(shape: tuple[int, ...]) -> torch.Tensor:
    """Straight-through decisions: exact 0s and ~1s forward, with gradients to p."""
    p = torch.rand(shape).requires_grad_()
    return straight_through(p)


def _value_and_grads(fn, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = fn(*leaves)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return (out.detach(), *torch.autograd.grad((out * weight).sum(), leaves))


@pytest.mark.parametrize("name, shapes", [
    ("gated_residual", [(6, 4, 5, 5), (6,), (6, 4, 5, 5)]),
    ("spatial_mean", [(6, 4, 5, 7)]),
])  # fmt: skip
def test_op_matches_its_formula(name: str, shapes: list[tuple[int, ...]]):
    torch.manual_seed(0)
    inputs = [torch.randn(s) if len(s) > 2 else _gate(s).detach() for s in shapes]
    ops = {"gated_residual": gated_residual, "spatial_mean": spatial_mean}
    new = _value_and_grads(ops[name], inputs)
    ref = _value_and_grads(PLAIN[name], inputs)
    assert torch.equal(new[0], ref[0])  # same ATen forward: bit-identical values
    for a, b in zip(new[1:], ref[1:], strict=True):
        assert a.shape == b.shape and b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # inference: the plain op, no graph
        assert torch.equal(ops[name](*inputs), ref[0])


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = nn.functional.cross_entropy(out.logits, y) + out.probs.layer.mean()
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _graph_names(t: torch.Tensor) -> set[str]:
    names, todo, seen = set(), [t.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def test_training_step_matches_the_plain_formulas(monkeypatch: pytest.MonkeyPatch):
    """resnet14 MGL2S in train mode, gates biased so that units and channels are skipped:
    logits and decisions bit-identical, every backbone and gate gradient equal up to rounding
    whether the step runs the Functions or the plain formulas."""
    torch.manual_seed(0)
    model = set_bias(ddi_energy.get_model("resnet14", gating="mgl2s"), 0.0).train()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out, grads = _step(model, x, y)
    assert {"_GatedResidualBackward", "_SpatialMeanBackward"} <= _graph_names(out.logits)
    d = out.decisions
    assert 0 < int(d.executed.sum()) < d.executed.numel()  # some units skipped, some run
    runs = zip(d.channels, d.executed.T, strict=True)
    assert any(0 < int(c[e].sum()) < c[e].numel() for c, e in runs)
    model.load_state_dict(state)  # BN running statistics as before the first step
    monkeypatch.setattr(dynamic_resnet, "gated_residual", PLAIN["gated_residual"])
    monkeypatch.setattr(gates, "spatial_mean", PLAIN["spatial_mean"])
    ref, ref_grads = _step(model, x, y)
    assert {"AddcmulBackward0", "MeanBackward1"} <= _graph_names(ref.logits)
    assert torch.equal(out.logits, ref.logits)
    assert torch.equal(d.executed, ref.decisions.executed)
    assert all(torch.equal(a, b) for a, b in zip(d.channels, ref.decisions.channels, strict=True))
    groups = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    for group in ("backbone", "gates"):
        checked = [names[id(p)] for p in groups[group] if names[id(p)] in ref_grads]
        assert len(checked) > 10
        for n in checked:
            scale = float(ref_grads[n].abs().max())
            assert scale > 0, n
            torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-4, atol=1e-5 * scale)
