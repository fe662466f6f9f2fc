"""The fast paths of the gates and of the eval forward compute what the reference ones do."""

from __future__ import annotations

import copy

import torch
from dynamic_helpers import eval_model
from torch import nn

from ddi_energy.costs.budget import set_budget
from ddi_energy.costs.cost_model import cost_model
from ddi_energy.models.dynamic import Decisions
from ddi_energy.models.gates import RecurrentGate, lstm_step


def test_lstm_step_is_torch_lstm_cell():
    """The fused step (two addmm, one sigmoid) is nn.LSTMCell with a zero recurrent bias."""
    torch.manual_seed(0)
    ref = nn.LSTMCell(10, 10)
    with torch.no_grad():
        ref.bias_hh.zero_()
    x, h, c = torch.randn(5, 10), torch.randn(5, 10), torch.randn(5, 10)
    h_ref, c_ref = ref(x, (h, c))
    h_new, (h2, c_new) = lstm_step(x, (h, c), ref.weight_ih.t(), ref.bias_ih, ref.weight_hh.t())
    torch.testing.assert_close(h_new, h_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c_new, c_ref, rtol=1e-6, atol=1e-6)
    assert h2 is h_new


def _steps(gate: RecurrentGate, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    state, out = None, []
    for u, x in enumerate(xs):
        p, state = gate(u, x, state)
        out.append(p)
    return out


def test_cached_gate_weights_follow_the_parameters():
    """Without autograd a gate keeps its weights' views: the result equals the autograd path's,
    and stays equal after an in-place update, on a deep copy, after loading new parameter
    objects and after a dtype change."""
    torch.manual_seed(0)
    gate = RecurrentGate([16, 16, 32], [1, 1, 1], 2.0)
    xs = [torch.randn(3, c, 8, 8) for c in (16, 16, 32)]
    with torch.no_grad():
        cached = _steps(gate, xs)
    fresh = _steps(gate, xs)  # autograd on: weights looked up afresh
    assert fresh[0].requires_grad and not cached[0].requires_grad
    assert all(torch.equal(a, b.detach()) for a, b in zip(cached, fresh, strict=True))
    with torch.no_grad():
        gate.cell.ih.weight.mul_(3.0)  # as an optimizer step does
        gate.proj[1].weight.add_(0.5)
        after = _steps(gate, xs)
    fresh = [p.detach() for p in _steps(gate, xs)]
    assert not torch.equal(after[1], cached[1])
    assert all(torch.equal(a, b) for a, b in zip(after, fresh, strict=True))
    twin = copy.deepcopy(gate)
    with torch.no_grad():
        twin.heads[0].bias.fill_(-1.0)  # the copy's own parameters, not the original's
        assert all(torch.equal(a, b) for a, b in zip(_steps(gate, xs), fresh, strict=True))
        assert not torch.equal(_steps(twin, xs)[0], fresh[0])
    other = RecurrentGate([16, 16, 32], [1, 1, 1], 2.0)
    gate.load_state_dict(other.state_dict(), assign=True)  # new parameter objects
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(_steps(gate, xs), _steps(other, xs),
                                                     strict=True))  # fmt: skip
    gate.double()
    with torch.no_grad():
        doubled = _steps(gate, [x.double() for x in xs])
    assert doubled[0].dtype == torch.float64
    with torch.no_grad():
        ref = _steps(other, xs)
    torch.testing.assert_close(doubled[2].float(), ref[2], rtol=1e-5, atol=1e-6)


def _same_decisions(a: Decisions, b: Decisions) -> None:
    for name in ("reached", "executed", "channel_gate_ran", "exits_run", "exit_index"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert all(torch.equal(x, y) for x, y in zip(a.channels, b.channels, strict=True))


def test_eval_decisions_under_halting_match_batch_1():
    """Decisions assembled at the end of a batched forward in which inputs halt at different
    exits equal those of each input alone (every field, including exits and channels)."""
    model = eval_model("resnet20", "mgl2s", exits=True, bias=0.5)
    contrast = torch.linspace(0.2, 5.0, 6)[:, None, None, None]  # inputs that differ
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * contrast
    cm = cost_model(model)
    free = cm.per_input(model(x).decisions)[0][:, cm.index("flops")]
    mixed = 0
    for fraction in (0.7, 0.95):
        set_budget(model, fraction * float(free.max()), costs=cm)
        batched = model(x)
        d = batched.decisions
        mixed += len(set(d.exit_index.tolist())) > 1
        for i in range(6):
            single = model(x[i:i + 1])
            _same_decisions(single.decisions, Decisions(
                d.reached[i:i + 1], d.executed[i:i + 1], [c[i:i + 1] for c in d.channels],
                d.channel_gate_ran[i:i + 1], d.exits_run[i:i + 1], d.exit_index[i:i + 1]))
            torch.testing.assert_close(single.logits, batched.logits[i:i + 1], rtol=1e-4,
                                       atol=1e-4 * max(1.0, float(batched.logits.abs().max())))
    assert mixed  # some budget halted the inputs at different outputs
