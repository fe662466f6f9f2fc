"""MGL2S networks: real skipping, exact per-input costs, differentiable resource losses, budgets."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import torch
from dynamic_helpers import eval_model, gate_heads, set_bias
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import ddi_energy
from ddi_energy.costs.budget import min_budget, set_budget
from ddi_energy.costs.cost_model import cost_model, sample_costs
from ddi_energy.costs.poisson_binomial import count_pmf, expected_cost
from ddi_energy.errors import DDIError
from ddi_energy.models.dynamic import GATINGS, Decisions, GateProbs
from ddi_energy.tables.columns import network_totals

GATED = [g for g in GATINGS if g != "none"]


@pytest.mark.parametrize("exits", [False, True], ids=["no-exits", "exits"])
@pytest.mark.parametrize("gating", GATINGS)
@pytest.mark.parametrize("arch", ["resnet20", "densenet100"])
def test_flop_counter_equals_sample_costs(arch: str, gating: str, exits: bool):
    model = eval_model(arch, gating, exits)
    executed, skipped = [], []
    for seed in range(3):
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        with FlopCounterMode(display=False) as counter:
            out = model(x)
        costs = sample_costs(model, out.decisions)
        assert counter.get_total_flops() == costs["flops"][0]
        executed.append(out.decisions.executed.double().mean().item())
        skipped.append(costs["channel_skip_ratio"][0])
    if gating in ("layer", "mgl2s"):
        assert 0.15 < sum(executed) / 3 < 0.85  # really skipping blocks
    if gating in ("channel-cnn", "channel-rnn"):
        assert 0.25 < sum(skipped) / 3 < 0.75  # and channels
    if gating == "mgl2s":  # skipped blocks count as skipped channels too
        assert 0.4 < sum(skipped) / 3 < 0.9


@pytest.mark.parametrize(("arch", "gating"), [
    *((arch, g) for arch in ("resnet14", "densenet100") for g in GATED), ("resnet50", "mgl2s")])
def test_real_skipping_computes_what_masking_computes(arch: str, gating: str):
    """Eval (sliced, sub-batched) and train-mode (masked) forwards agree for the same decisions,
    at batch 1 and for a batch whose inputs decide differently. (resnet50, whose bottlenecks
    gate a chain of three convs, at 64×64: the semantics do not depend on the input size.)"""
    model = eval_model(arch, gating, exits=True)
    set_budget(model, math.inf)  # every exit runs (without a budget none does)
    contrast = torch.tensor([0.2, 1.0, 3.0, 8.0])[:, None, None, None]  # inputs that differ
    side = 64 if arch == "resnet50" else 32
    x = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(1)) * contrast
    batched = model(x)
    masked_model = model.train()
    for m in masked_model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # running statistics, as in eval mode
    with torch.no_grad():
        masked = masked_model(x)
    model.eval()
    # float32 rounding differs between a sub-batch's and the whole batch's convolutions; it
    # grows with the logits (large in a deep random network)
    tol = {"rtol": 1e-4, "atol": 1e-5 * max(1.0, float(masked.logits.abs().max()))}
    torch.testing.assert_close(batched.logits, masked.logits, **tol)
    for j, exit_logits in enumerate(batched.exit_logits):
        torch.testing.assert_close(exit_logits, masked.exit_logits[j], **tol)
    assert torch.equal(batched.decisions.executed, masked.decisions.executed)
    for a, b in zip(batched.decisions.channels, masked.decisions.channels, strict=True):
        assert torch.equal(a, b)
    # The batch exercises sub-batching: inputs disagree on some unit or some channel.
    executed = batched.decisions.executed
    if model.layer_gated:
        assert (executed.any(0) & ~executed.all(0)).any()
    if model.channel_kind is not None:
        assert any((c.any(0) & ~c.all(0)).any() for c in batched.decisions.channels)
    for i in range(4):  # batch-1 runs agree with the batched run
        single = model(x[i:i + 1])
        torch.testing.assert_close(single.logits, batched.logits[i:i + 1], **tol)
        assert torch.equal(single.decisions.executed[0], batched.decisions.executed[i])


def test_plain_and_dynamic_share_backbone_names():
    plain = dict(ddi_energy.get_model("resnet20").named_parameters())
    dynamic = dict(ddi_energy.get_model("resnet20", gating="mgl2s").named_parameters())
    assert set(plain) <= set(dynamic)  # a trained backbone loads into the gated model
    assert ddi_energy.get_model("resnet20", gating="none").gating == "none"
    with pytest.raises(DDIError, match="unknown gating 'lstm'.*mgl2s"):
        ddi_energy.get_model("resnet20", gating="lstm")


@pytest.mark.parametrize(
    ("arch", "gating"), [*(("resnet20", g) for g in GATINGS), ("densenet100", "mgl2s")]
)
def test_every_gate_on_costs_the_table_total(arch: str, gating: str):
    table = ddi_energy.load_cost_table(f"{arch}_eyeriss")
    model = eval_model(arch, gating, exits=True, bias=1000.0)
    out = model(torch.randn(2, 3, 32, 32))
    costs = sample_costs(model, out.decisions, table)
    totals = network_totals(table)
    backbone = costs["flops"] - costs["overhead_flops"]
    assert (backbone == 2 * totals["macs"]).all()
    backbone_energy = costs["energy_pj"] - costs["overhead_energy_pj"]
    assert backbone_energy.tolist() == pytest.approx([totals["energy_pj"]] * 2, rel=1e-12)
    cm = cost_model(model, table)
    full_no_exits = float(cm.full()[1] - cm.exits[:, 1].sum())  # no budget: exits idle
    assert costs["energy_pj"].tolist() == pytest.approx([full_no_exits] * 2, rel=1e-12)
    assert (costs["exit"] == 6).all() and (costs["channel_skip_ratio"] == 0).all()
    if gating == "none":
        assert (costs["overhead_flops"] == 0).all()


@pytest.mark.parametrize("mode", ["flops", "energy", "latency"])
@pytest.mark.parametrize("gating", GATED)
def test_resource_loss_gradients_reach_every_gate(gating: str, mode: str):
    table = ddi_energy.load_cost_table("resnet14_eyeriss")
    torch.manual_seed(0)
    model = ddi_energy.get_model("resnet14", gating=gating).train()
    set_bias(model, 0.5)
    loss_fn = ddi_energy.ResourceLoss(model, table, mode=mode)
    x = torch.randn(3, 3, 32, 32)
    loss = loss_fn(model(x))
    assert 0 < loss.item() < 1.5
    loss.backward()
    gates = [model.layer_gate, model.channel_gate, *(u.cgate for u in model.units)]
    for gate in filter(None, gates):
        for name, p in gate.named_parameters():
            if name.startswith("bn.") or name.endswith("hh.weight"):
                continue  # BN affine under ReLU can be dead; hh sees h=0 at the first unit
            assert p.grad is not None and p.grad.abs().sum() > 0, (type(gate).__name__, name)
    # Lowering the gates' probabilities lowers the surrogate (the tables' curves rise with the
    # channel count), which is what the gradient descends.
    with torch.no_grad():
        before = loss_fn.costs.expected(model(x).probs, loss_fn.metric)
        for head in gate_heads(model):
            head.bias -= 1.0
        after = loss_fn.costs.expected(model(x).probs, loss_fn.metric)
    assert (after < before).all()


@pytest.mark.parametrize("arch,table_name", [("resnet14", "resnet14_edge_npu"),
                                              ("resnet8", "resnet8_eyeriss_physical")])
def test_resource_loss_value_is_the_hard_cost_and_gradient_the_surrogate(arch: str,
                                                                         table_name: str):
    """Saturated gates: loss = sample_costs / plain. Any gates: the value is still the hard
    decisions' cost, and the gradient is exactly that of the expected cost. Under either count
    model (SCALE-Sim's, physical)."""
    table = ddi_energy.load_cost_table(table_name)
    totals = network_totals(table)
    plain = {"flops": 2 * totals["macs"], "energy_pj": totals["energy_pj"],
             "cycles": totals["cycles"]}  # fmt: skip
    loss_fns = {mode: ddi_energy.ResourceLoss(ddi_energy.get_model(arch, gating="mgl2s",
                                                                   exits=True), table, mode=mode)
                for mode in ("flops", "energy", "latency")}  # fmt: skip
    for bias in (1000.0, 0.0):
        torch.manual_seed(0)
        model = set_bias(ddi_energy.get_model(arch, gating="mgl2s", exits=True), bias).train()
        out = model(torch.randn(4, 3, 32, 32))
        for mode, column in (("flops", "flops"), ("energy", "energy_pj"), ("latency", "cycles")):
            loss_fn = loss_fns[mode]
            loss = loss_fn(out)
            hard = sample_costs(model, out.decisions, table)[column]
            assert loss_fn.scale == pytest.approx(plain[column], rel=1e-12)
            assert loss.item() == pytest.approx(hard.mean() / plain[column], rel=1e-12)
            soft = loss_fn.costs.expected(out.probs, loss_fn.metric)
            if bias == 1000.0:  # saturated: the surrogate is the hard cost too
                assert soft.tolist() == pytest.approx(hard.tolist(), rel=1e-6)
                continue
            leaves = [out.probs.layer, *out.probs.channels]
            got = torch.autograd.grad(loss, leaves, retain_graph=True)
            want = torch.autograd.grad(soft.mean() / plain[column], leaves, retain_graph=True)
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, rtol=1e-6, atol=0)


def random_probs(costs, batch: int, seed: int) -> GateProbs:
    gen = torch.Generator().manual_seed(seed)
    return GateProbs(torch.rand(batch, len(costs.widths), generator=gen, dtype=torch.float64),
                     [torch.rand(batch, int(k), generator=gen, dtype=torch.float64)
                      for k in costs.widths])  # fmt: skip


def sample_decisions(probs: GateProbs, samples: int, exits: int, seed: int) -> Decisions:
    """`samples` random decisions of input 0 (mgl2s: coarse to fine), every exit run."""
    gen = torch.Generator().manual_seed(seed)
    units = probs.layer.shape[1]
    executed = torch.rand(samples, units, generator=gen, dtype=torch.float64) < probs.layer[0]
    channels = [(torch.rand(samples, c.shape[1], generator=gen, dtype=torch.float64) < c[0])
                & executed[:, u, None] for u, c in enumerate(probs.channels)]  # fmt: skip
    full = torch.full((samples,), exits, dtype=torch.long)
    return Decisions(torch.ones_like(executed), executed, channels, executed.clone(), full,
                     full.clone())  # fmt: skip


def test_surrogate_is_the_expected_cost_of_random_decisions():
    """Monte Carlo: the mean cost (`sample_costs`) of 40,000 decisions drawn with the gates'
    probabilities matches the surrogate within 1 % (and within 4 standard errors)."""
    table = ddi_energy.load_cost_table("resnet20_eyeriss")
    model = ddi_energy.get_model("resnet20", gating="mgl2s", exits=True)
    costs = cost_model(model, table)
    probs = random_probs(costs, 1, seed=5)
    sampled = sample_costs(model, sample_decisions(probs, 40_000, len(model.exits), seed=6), table)
    for column in ("flops", "energy_pj", "cycles"):
        expected = costs.expected(probs, column).item()
        mean, sem = sampled[column].mean(), sampled[column].std() / len(sampled) ** 0.5
        assert abs(mean / expected - 1) < 0.01
        assert abs(mean - expected) < 4 * sem


def test_surrogate_gradient_matches_finite_differences():
    table = ddi_energy.load_cost_table("resnet20_eyeriss")
    costs = cost_model(ddi_energy.get_model("resnet20", gating="mgl2s"), table)
    probs = random_probs(costs, 2, seed=7)
    leaves = [probs.layer.requires_grad_(), *(c.requires_grad_() for c in probs.channels)]
    for column in ("flops", "energy_pj", "cycles"):
        grads = torch.autograd.grad(costs.expected(probs, column).sum(), leaves)
        # a layer gate, and channels of a 16-, 32- and 64-wide unit
        for leaf, idx in ((0, (1, 4)), (1, (0, 3)), (5, (1, 30)), (9, (0, 60))):
            tensor, eps = leaves[leaf], 1e-6
            with torch.no_grad():
                tensor[idx] += eps
                up = costs.expected(probs, column).sum()
                tensor[idx] -= 2 * eps
                down = costs.expected(probs, column).sum()
                tensor[idx] += eps
            fd = ((up - down) / (2 * eps)).item()
            assert grads[leaf][idx].item() == pytest.approx(fd, rel=1e-6)


def test_expected_cost_against_enumeration():
    """Every subset of 10 channels enumerated: E[c(N)] and E[c(N_-j + 1) - c(N_-j)], with
    probabilities at 0, 1/2 and 1 (where the two deconvolution directions meet) among them."""
    gen = torch.Generator().manual_seed(0)
    k = 10
    p = torch.rand(3, 1, k, generator=gen, dtype=torch.float64)
    p[0, 0, :3] = torch.tensor([0.0, 0.5, 1.0])
    curve = torch.rand(1, k + 1, generator=gen, dtype=torch.float64).cumsum(1) ** 2
    curve[0, 7:] += 5.0  # a cliff
    subsets = torch.tensor([[(s >> j) & 1 for j in range(k)] for s in range(2**k)],
                           dtype=torch.float64)  # fmt: skip
    counts = subsets.sum(1).long()
    for b in range(3):
        weight = (subsets * p[b, 0] + (1 - subsets) * (1 - p[b, 0])).prod(1)
        leaf = p[b:b + 1].clone().requires_grad_()
        value = expected_cost(leaf, curve)
        assert value.item() == pytest.approx(float((weight * curve[0, counts]).sum()), rel=1e-12)
        (grad,) = torch.autograd.grad(value.sum(), leaf)
        for j in range(k):
            off = subsets[:, j] == 0  # each subset of the other channels once
            rest = torch.arange(k) != j
            sub, q = subsets[off][:, rest], p[b, 0, rest]
            w_others = (sub * q + (1 - sub) * (1 - q)).prod(1)
            others = counts[off]
            slope = (w_others * (curve[0, others + 1] - curve[0, others])).sum()
            assert grad[0, 0, j].item() == pytest.approx(float(slope), rel=1e-9, abs=1e-12)
    assert count_pmf(p).sum(-1).flatten().tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize("table_name,energy_ratio", [("resnet20_eyeriss", 0.90),
                                                     ("resnet20_eyeriss_physical", 0.895)])
def test_surrogate_follows_the_staircase(table_name: str, energy_ratio: float):
    """resnet20 stage3.1 on Eyeriss, every channel at p = 0.2: the expected cost is 0.90×
    (energy; 0.895× under physical counts) and 1.13× (cycles) the curve interpolated at
    Σp = 12.8 channels."""
    table = ddi_energy.load_cost_table(table_name)
    costs = cost_model(ddi_energy.get_model("resnet20", gating="channel-cnn"), table)
    u = [unit.name for unit in costs.structure.units].index("stage3.1")
    for column, ratio in (("energy_pj", energy_ratio), ("cycles", 1.134)):
        curve = costs.curve[u:u + 1, :65, costs.index(column)]
        p = torch.full((1, 1, 64), 0.2, dtype=torch.float64)
        interpolated = curve[0, 12] + 0.8 * (curve[0, 13] - curve[0, 12])
        assert (expected_cost(p, curve) / interpolated).item() == pytest.approx(ratio, abs=0.005)


def test_foreign_or_incomplete_tables_are_refused(tmp_path):
    model = ddi_energy.get_model("resnet38", gating="mgl2s")
    with pytest.raises(DDIError, match="built for arch 'resnet20', but the model is 'resnet38'"):
        ddi_energy.ResourceLoss(model, ddi_energy.load_cost_table("resnet20_eyeriss"))
    model = ddi_energy.get_model("resnet20", gating="mgl2s")
    table = ddi_energy.load_cost_table("resnet20_eyeriss")
    gap = table[~((table["layer"] == "stage2.1.conv1") & (table["out_channels"] == 7))]
    gap.attrs = table.attrs
    with pytest.raises(DDIError, match="'stage2.1.conv1' with in_channels=32, out_channels=7"):
        ddi_energy.ResourceLoss(model, gap, mode="energy")
    layer_only = table[table["is_full"]]
    layer_only.attrs = table.attrs
    with pytest.raises(DDIError, match="granularity channel"):
        sample_costs(model, model.eval()(torch.randn(1, 3, 32, 32)).decisions, layer_only)
    reshaped = table.copy()
    reshaped.loc[reshaped["layer"] == "stage1.0.conv1", "ifmap_h"] = 66
    reshaped.attrs = table.attrs
    with pytest.raises(DDIError, match="'stage1.0.conv1' has ifmap_h=66 but the model's layer"):
        ddi_energy.ResourceLoss(model, reshaped, mode="energy")
    with pytest.raises(DDIError, match="needs a cost table"):
        ddi_energy.ResourceLoss(model, mode="latency")


@pytest.mark.parametrize(
    ("arch", "mode"), [("resnet20", "flops"), ("resnet20", "energy"), ("densenet100", "energy")]
)
def test_budget_halts_inputs_within_it(arch: str, mode: str):
    """No input exceeds a feasible budget; each halts at an output no deeper than the deepest
    whose real cost fits (the eval report's oracle), and costs what `output_costs` says."""
    table = ddi_energy.load_cost_table(f"{arch}_eyeriss")
    model = eval_model(arch, "mgl2s", exits=True, bias=0.5)
    column = "flops" if mode == "flops" else "energy_pj"
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    free = sample_costs(model, model(x).decisions, table)[column]
    cm = cost_model(model, table)
    set_budget(model, math.inf, costs=cm)
    reach = cm.output_costs(model(x).decisions)[..., cm.index(column)]  # (6, 7)
    exits_used = []
    for fraction in (0.3, 0.6, 0.9):
        limit = fraction * free.max()
        set_budget(model, limit, mode, table)
        out = model(x)
        costs = sample_costs(model, out.decisions, table)
        assert (costs[column] <= limit).all()
        used = torch.tensor(costs["exit"].to_numpy())
        assert costs[column].tolist() == pytest.approx(
            reach[torch.arange(6), used].tolist(), rel=1e-12)
        assert (used <= (reach <= limit).sum(1) - 1).all()
        assert not out.logits.isnan().any()
        exits_used.append(costs["exit"].to_numpy())
        with FlopCounterMode(display=False) as counter:  # batch 1: halting really stops work
            single = model(x[:1])
        assert counter.get_total_flops() == sample_costs(model, single.decisions)["flops"][0]
    set_budget(model, None)
    assert (exits_used[0] <= exits_used[1]).all() and (exits_used[1] <= exits_used[2]).all()
    assert exits_used[0].max() < 6  # a tight budget stops before the final classifier


def test_budget_needs_exits():
    with pytest.raises(DDIError, match="exits=True"):
        set_budget(ddi_energy.get_model("resnet8", gating="layer"), 1e6)


@pytest.mark.parametrize("mode", ["flops", "energy"])
def test_budgets_below_the_first_exit_are_infeasible_and_the_minimum_holds(mode: str):
    """With every gate on, each input costs the worst case: at the minimum feasible budget all
    halt at the first exit, exactly on budget; just below it the budget is refused."""
    table = ddi_energy.load_cost_table("resnet8_eyeriss")
    model = eval_model("resnet8", "mgl2s", exits=True, bias=1000.0)
    column = "flops" if mode == "flops" else "energy_pj"
    minimum = min_budget(cost_model(model, table), column)
    words = re.escape(f"infeasible: an input can cost {minimum:.6g} up to its first exit")
    with pytest.raises(DDIError, match=words):
        set_budget(model, minimum * 0.999, mode, table)
    set_budget(model, minimum, mode, table)
    costs = sample_costs(model, model(torch.randn(3, 3, 32, 32)).decisions, table)
    assert (costs["exit"] == 0).all()
    assert costs[column].tolist() == pytest.approx([minimum] * 3, rel=1e-12)
    assert (costs[column] <= minimum).all()
    set_budget(model, None)


def test_without_a_budget_exits_neither_run_nor_cost():
    """Batch-1 FLOPs of an exit model equal those of the same weights without exits."""
    model = eval_model("resnet20", "mgl2s", exits=True)
    bare = ddi_energy.get_model("resnet20", gating="mgl2s")
    bare.load_state_dict(model.state_dict(), strict=False)
    bare.eval()
    for seed in range(3):
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        flops = []
        for net in (model, bare):
            with FlopCounterMode(display=False) as counter:
                out = net(x)
            flops.append(counter.get_total_flops())
            assert sample_costs(net, out.decisions)["flops"][0] == flops[-1]
        assert flops[0] == flops[1]
        assert out.decisions.exits_run.tolist() == [0]
        assert all(logits.isnan().all() for logits in model(x).exit_logits)


def test_sample_costs_frame_columns():
    model = eval_model("resnet8", "mgl2s")
    out = model(torch.randn(3, 3, 32, 32))
    frame = sample_costs(model, out.decisions, ddi_energy.load_cost_table("resnet8_tpu_like"))
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    for column in ("flops", "energy_pj", "energy_dram_pj", "energy_sram_pj", "energy_rf_pj",
                   "energy_mac_pj", "cycles"):
        assert (frame[column] > 0).all()
    levels = frame[["energy_dram_pj", "energy_sram_pj", "energy_rf_pj", "energy_mac_pj"]]
    assert levels.sum(axis=1).to_numpy() == pytest.approx(frame["energy_pj"].to_numpy())


def test_gate_overheads_match_the_design():
    """Stage-1 block of a CIFAR ResNet: 2 convs of 32·32·9·16·16 MACs. CNN channel gate: a
    16→16 3×3 conv at stride 2 (1/4 of one conv = 12.5 % of the block) + FC 16×16; LSTM layer
    gate: 1×1 conv 16→10, two 10×40 matmuls, 10→1 readout."""
    from ddi_energy.reporting.overheads import totals_report, unit_report

    costs = cost_model(ddi_energy.get_model("resnet74", gating="mgl2s", exits=True))
    units = unit_report(costs).set_index("unit")
    block = 2 * 2 * 32 * 32 * 9 * 16 * 16
    assert units.loc["stage1.1", "flops"] == block
    assert units.loc["stage1.1", "channel_gate_flops"] == 2 * (16 * 16 * 9 * 16 * 16 + 16 * 16)
    assert units.loc["stage1.1", "layer_gate_flops"] == 2 * (16 * 10 + 2 * 10 * 40 + 10)
    assert units.loc["stage1.1", "channel_gate_flops_%"] == pytest.approx(12.505, abs=1e-3)
    assert units.loc["stage1.1", "layer_gate_flops_%"] == pytest.approx(0.0206, abs=1e-4)
    totals = totals_report(costs)
    assert totals.loc["backbone (plain network)", "flops"] == 2 * 168_215_168
    assert totals.loc["gated network, all on", "flops"] == pytest.approx(
        totals.loc[["backbone (plain network)", "layer gates", "channel gates",
                    "exit branches"], "flops"].sum())
