"""The fast paths of the gates and of the eval forward compute what the reference ones do."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from dynamic_helpers import eval_model
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import ddi_energy
from ddi_energy.costs.budget import set_budget
from ddi_energy.costs.cost_model import cost_model, sample_costs
from ddi_energy.models.dynamic import Decisions
from ddi_energy.models.gates import LinearLSTMCell, RecurrentGate, fc_layer
from ddi_energy.models.inference import for_inference


def test_lstm_cell_is_torch_lstm_cell_and_counts_its_two_layers():
    """The gate's cell is nn.LSTMCell with a zero recurrent bias, and FlopCounterMode sees in
    one step exactly the `ih` and `hh` layers the cost accounting lists."""
    torch.manual_seed(0)
    ref = nn.LSTMCell(10, 10)
    with torch.no_grad():
        ref.bias_hh.zero_()
    cell = LinearLSTMCell(10, 10)
    cell.load_state_dict({"ih.weight": ref.weight_ih, "ih.bias": ref.bias_ih,
                          "hh.weight": ref.weight_hh})  # fmt: skip
    x, h, c = torch.randn(5, 10), torch.randn(5, 10), torch.randn(5, 10)
    h_ref, c_ref = ref(x, (h, c))
    with FlopCounterMode(display=False) as counter:
        h_new, (h2, c_new) = cell(x, (h, c))
    torch.testing.assert_close(h_new, h_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c_new, c_ref, rtol=1e-6, atol=1e-6)
    assert h2 is h_new
    layers = [fc_layer("ih", cell.ih), fc_layer("hh", cell.hh)]
    assert counter.get_total_flops() == 5 * sum(2 * layer.macs for layer in layers)


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


@pytest.mark.parametrize(("arch", "gating"), [("resnet14", "mgl2s"), ("resnet14", "layer"),
                                              ("resnet14", "channel-rnn"), ("resnet20", None),
                                              ("densenet100", "mgl2s"),
                                              ("resnet50", "mgl2s")])  # fmt: skip
def test_for_inference_computes_what_the_model_computes(arch: str, gating: str | None):
    """BN folded and gate weights channels-last: the same outputs and decisions, batched and at
    batch 1, and FlopCounterMode still counts what `sample_costs` prices; the original is
    untouched. Every other unit keeps no channel: its body outputs the folded conv's bias.
    DenseNet's BNs come before their convs: nothing of its backbone folds (nor of ResNet-50's
    light channel gates)."""
    if gating is None:
        model = ddi_energy.get_model(arch).eval()
    else:
        model = eval_model(arch, gating, exits=True)
        set_budget(model, math.inf)  # every exit runs
        for unit in model.units[1::2]:  # no channel kept: the output is the folded bias
            if unit.cgate is not None:
                with torch.no_grad():
                    unit.cgate.fc.weight.zero_()
                    unit.cgate.fc.bias.fill_(-30.0)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    fast = for_inference(model)
    side = 64 if arch == "resnet50" else 32  # as in test_real_skipping_computes_what_masking_…
    x = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(2))
    x = x * torch.tensor([0.2, 1.0, 3.0, 8.0])[:, None, None, None]
    with torch.no_grad():
        ref, out = model(x), fast(x)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == bns
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    if gating is None:
        assert left == 0
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        return
    tol = {"rtol": 1e-4, "atol": 1e-4 * max(1.0, float(ref.logits.abs().max()))}
    torch.testing.assert_close(out.logits, ref.logits, **tol)
    for a, b in zip(out.exit_logits, ref.exit_logits, strict=True):
        torch.testing.assert_close(a, b, **tol)
    _same_decisions(out.decisions, ref.decisions)
    if arch.startswith("densenet"):
        assert 0 < left < bns  # the gates' and exits' conv-BN pairs fold, the backbone's not
    else:  # resnet50's light channel gates: BN-ReLU-conv, two BNs each
        assert left == (2 * len(fast.units) if arch == "resnet50" else 0)
    if model.units[1].cgate is not None:
        d = out.decisions
        assert not any(c.any() for c in d.channels[1::2]) and d.executed[:, 1::2].any()
    for unit in fast.units:
        if unit.cgate is not None and hasattr(unit.cgate, "conv"):
            assert unit.cgate.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for i in range(4):
        single = x[i:i + 1]
        with FlopCounterMode(display=False) as counter:
            one = fast(single)
        if side == fast.input_size[1]:  # costs are priced at the arch's input size
            assert counter.get_total_flops() == sample_costs(fast, one.decisions)["flops"][0]
        torch.testing.assert_close(one.logits, out.logits[i:i + 1], **tol)
