"""Channel groups: one channel-gate output switches G channels (the last group smaller when G
does not divide a width). Real skipping, exact costs, the resource term's grouped
Poisson-binomial surrogate, `auto` per dataflow, and runs that start from single-channel
backbones."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from cli_helpers import run
from dynamic_helpers import eval_model, set_bias
from torch.utils.flop_counter import FlopCounterMode

import ddi_energy
from ddi_energy.costs.budget import min_budget, set_budget
from ddi_energy.costs.channel_groups import aligned_group, resolve_channel_group
from ddi_energy.costs.cost_model import cost_model, sample_costs
from ddi_energy.costs.poisson_binomial import grouped_expected_cost
from ddi_energy.errors import DDIError, DDIWarning
from ddi_energy.hardware.config import load_hw
from ddi_energy.models.dynamic import GateProbs, group_sizes
from ddi_energy.training.checkpoints import Checkpoints
from ddi_energy.training.config import load_config
from ddi_energy.training.loop import train


def test_group_sizes_and_gate_outputs():
    assert group_sizes(16, 14) == [14, 2]
    assert group_sizes(64, 14) == [14, 14, 14, 14, 8]
    assert group_sizes(32, 32) == [32] and group_sizes(16, 32) == [16]
    assert group_sizes(5, 1) == [1] * 5
    model = ddi_energy.get_model("resnet8", gating="mgl2s", channel_group=14)
    assert [u.cgate.fc.out_features for u in model.units] == [2, 3, 5]
    rnn = ddi_energy.get_model("resnet8", gating="channel-rnn", channel_group=14)
    assert [h.out_features for h in rnn.channel_gate.heads] == [2, 3, 5]
    with pytest.raises(DDIError, match="channel_group = 0: must be an integer >= 1"):
        ddi_energy.get_model("resnet8", gating="mgl2s", channel_group=0)


@pytest.mark.parametrize(("arch", "gating", "group"), [
    ("resnet8", "mgl2s", 14), ("resnet8", "channel-cnn", 5), ("resnet8", "channel-rnn", 14),
    ("densenet100", "mgl2s", 14)])
def test_flop_counter_equals_sample_costs_with_groups(arch: str, gating: str, group: int):
    """Batch-1 eval forwards: counted FLOPs = sample_costs; every group is all on or all off,
    so each unit runs a sum of group sizes, priced from the table at that count."""
    table = ddi_energy.load_cost_table(f"{arch}_eyeriss") if arch == "resnet8" else None
    model = eval_model(arch, gating, channel_group=group)
    partial = 0
    for seed in range(4 if arch == "resnet8" else 2):
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        with FlopCounterMode(display=False) as counter:
            out = model(x)
        costs = sample_costs(model, out.decisions, table)
        assert counter.get_total_flops() == costs["flops"][0]
        for unit, mask in zip(model.units, out.decisions.channels, strict=True):
            sizes = group_sizes(unit.width, group)
            starts = [sum(sizes[:j]) for j in range(len(sizes))]
            for start, size in zip(starts, sizes, strict=True):
                block = mask[0, start:start + size]
                assert bool(block.all()) or not bool(block.any())
            partial += 0 < int(mask.sum()) < unit.width
    assert partial > 0  # some unit ran only some of its groups
    if table is not None:  # energy priced at the grouped counts, as the table has them
        n = out.decisions.active_channels()[0]
        model_costs = cost_model(model, table)
        assert all(model_costs.reachable[u, int(c)] for u, c in enumerate(n))


@pytest.mark.parametrize("group", [14, 32])
def test_resource_term_with_groups(group: int):
    """Saturated gates: the surrogate is sample_costs (all three metrics); any gates: the loss's
    value is the hard cost, its gradient the grouped surrogate's."""
    table = ddi_energy.load_cost_table("resnet8_eyeriss")
    modes = (("flops", "flops"), ("energy", "energy_pj"), ("latency", "cycles"))
    structure = ddi_energy.get_model("resnet8", gating="mgl2s", channel_group=group)
    loss_fns = {mode: ddi_energy.ResourceLoss(structure, table, mode=mode) for mode, _ in modes}
    for bias in (1000.0, -1000.0, 0.0):
        torch.manual_seed(0)
        model = set_bias(ddi_energy.get_model("resnet8", gating="mgl2s", channel_group=group),
                         bias).train()  # fmt: skip
        out = model(torch.randn(4, 3, 32, 32))
        assert [p.shape[1] for p in out.probs.channels] == [len(group_sizes(w, group))
                                                            for w in (16, 32, 64)]  # fmt: skip
        for mode, column in modes:
            loss_fn = loss_fns[mode]
            loss = loss_fn(out)
            hard = sample_costs(model, out.decisions, table)[column]
            assert loss.item() == pytest.approx(hard.mean() / loss_fn.scale, rel=1e-12)
            soft = loss_fn.costs.expected(out.probs, loss_fn.metric)
            if bias != 0.0:
                assert soft.tolist() == pytest.approx(hard.tolist(), rel=1e-6)
                continue
            leaves = [out.probs.layer, *out.probs.channels]
            got = torch.autograd.grad(loss, leaves, retain_graph=True)
            want = torch.autograd.grad(soft.mean() / loss_fn.scale, leaves, retain_graph=True)
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, rtol=1e-6, atol=0)


@pytest.mark.parametrize(("width", "group"), [(16, 14), (64, 14), (12, 4), (10, 3), (5, 7)])
def test_grouped_expected_cost_against_enumeration(width: int, group: int):
    """Every subset of groups enumerated (N = the sum of the sizes of the groups on): E[c(N)]
    and ∂/∂p_j = E[c(N_-j + size_j) - c(N_-j)], with probabilities 0, 1/2 and 1 among them."""
    sizes = torch.tensor(group_sizes(width, group), dtype=torch.long)
    k = len(sizes)
    gen = torch.Generator().manual_seed(width * 100 + group)
    p = torch.rand(2, 1, k, generator=gen, dtype=torch.float64)
    p[0, 0, :min(k, 3)] = torch.tensor([0.0, 0.5, 1.0])[:min(k, 3)]
    curve = torch.rand(1, width + 1, generator=gen, dtype=torch.float64).cumsum(1) ** 2
    curve[0, width // 2:] += 5.0  # a cliff
    subsets = torch.tensor(list(itertools.product([0, 1], repeat=k)), dtype=torch.float64)
    counts = (subsets * sizes).sum(1).long()
    for b in range(2):
        q = p[b, 0]
        weight = (subsets * q + (1 - subsets) * (1 - q)).prod(1)
        leaf = p[b:b + 1].clone().requires_grad_()
        value = grouped_expected_cost(leaf, curve, group)
        assert value.item() == pytest.approx(float((weight * curve[0, counts]).sum()), rel=1e-12)
        (grad,) = torch.autograd.grad(value.sum(), leaf)
        for j in range(k):
            off = subsets[:, j] == 0
            rest = torch.arange(k) != j
            w_others = (subsets[off][:, rest] * q[rest]
                        + (1 - subsets[off][:, rest]) * (1 - q[rest])).prod(1)  # fmt: skip
            others = counts[off]
            slope = (w_others * (curve[0, others + sizes[j]] - curve[0, others])).sum()
            assert grad[0, 0, j].item() == pytest.approx(float(slope), rel=1e-9, abs=1e-12)


def test_grouped_surrogate_matches_monte_carlo():
    """The mean cost of 20,000 grouped decisions drawn with the gates' probabilities (expanded
    to channels, priced by sample_costs) is the surrogate within 4 standard errors."""
    table = ddi_energy.load_cost_table("resnet8_eyeriss")
    model = ddi_energy.get_model("resnet8", gating="mgl2s", channel_group=14)
    costs = cost_model(model, table)
    gen = torch.Generator().manual_seed(3)
    probs = GateProbs(torch.rand(1, 3, generator=gen, dtype=torch.float64),
                      [torch.rand(1, u.groups, generator=gen, dtype=torch.float64)
                       for u in model.units])  # fmt: skip
    n = 20_000
    executed = torch.rand(n, 3, generator=gen, dtype=torch.float64) < probs.layer[0]
    channels = [u.to_channels(torch.rand(n, u.groups, generator=gen, dtype=torch.float64)
                              < probs.channels[i][0]) & executed[:, i, None]
                for i, u in enumerate(model.units)]  # fmt: skip
    zeros = torch.zeros(n, dtype=torch.long)
    d = ddi_energy.models.dynamic.Decisions(torch.ones_like(executed), executed, channels,
                                            executed.clone(), zeros, zeros.clone())  # fmt: skip
    sampled = sample_costs(model, d, table)
    for column in ("flops", "energy_pj", "cycles"):
        expected = costs.expected(probs, column).item()
        mean, sem = sampled[column].mean(), sampled[column].std() / n**0.5
        assert abs(mean - expected) < 4 * sem


def test_auto_is_the_filter_dimension_of_the_dataflow():
    eyeriss, edge = load_hw("eyeriss")[0], load_hw("edge_npu")[0]
    assert (eyeriss.dataflow, aligned_group(eyeriss)) == ("os", eyeriss.cols) == ("os", 14)
    assert (edge.dataflow, aligned_group(edge)) == ("ws", edge.cols)
    input_stationary = dataclasses.replace(eyeriss, dataflow="is")
    with pytest.warns(DDIWarning, match="input stationary.*single channels"):
        assert aligned_group(input_stationary) == 1
    table = ddi_energy.load_cost_table("resnet8_edge_npu")
    assert resolve_channel_group("auto", table) == edge.cols
    assert resolve_channel_group("6", None) == 6
    with pytest.raises(DDIError, match="'auto' needs a hardware config"):
        resolve_channel_group("auto", None)
    for bad in ("0", "x", 2.5):
        with pytest.raises(DDIError, match="integer >= 1 or 'auto'"):
            resolve_channel_group(bad, table)
    with pytest.raises(DDIError, match="needs --hw or --cost-table"):
        load_config(None, {"channel_group": "auto"})


TINY = {"arch": "resnet8", "batch": 8, "gate_steps": 1, "steps": 1, "checkpoint_every": 2,
        "log_every": 1, "bn_batches": 0}  # fmt: skip


def test_runs_record_the_resolved_group_and_start_from_single_channel_backbones(tmp_path: Path):
    base = load_config(None, {**TINY, "pretrain_steps": 1, "gate_steps": 0, "steps": 0,
                              "out": str(tmp_path / "base")})  # fmt: skip
    train(base, progress=False)
    run = load_config(None, {**TINY, "pretrain_steps": 0, "hw": "eyeriss", "loss": "energy",
                             "channel_group": "auto", "init": base.out, "lr": 1e-12,
                             "out": str(tmp_path / "run")})  # fmt: skip
    train(run, stop_after=1, progress=False)
    state = Checkpoints.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["config"]["channel_group"] == 14
    parent = Checkpoints.load(tmp_path / "base" / "checkpoints" / "final.pt")["model"]
    conv = "stage2.0.conv1.weight"
    assert torch.allclose(parent[conv], state["model"][conv], atol=1e-9)
    assert parent["stage1.0.cgate.fc.weight"].shape == (16, 16)
    assert state["model"]["stage1.0.cgate.fc.weight"].shape == (2, 16)  # a fresh gate
    with pytest.raises(DDIError, match="checkpoint has channel_group = 14, the run asks for 7"):
        train(load_config(None, {**run.__dict__, "channel_group": 7}), resume=True,
              progress=False)  # fmt: skip


def test_inspect_shows_groups_and_says_when_auto_means_single_channels(tmp_path: Path, capsys):
    code, out, _ = run(["inspect", "--arch", "resnet8", "--gating", "mgl2s", "--hw", "eyeriss",
                        "--channel-group", "auto"], capsys)  # fmt: skip
    assert code == 0
    assert "14 channels per channel-gate output" in out
    assert "14+2" in out and "14+14+4" in out and "14+14+14+14+8" in out
    text = (Path(__file__).parents[1] / "hw_configs" / "eyeriss.yaml").read_text()
    (tmp_path / "is.yaml").write_text(text.replace("dataflow: os", "dataflow: is"))
    code, out, err = run(["inspect", "--arch", "resnet8", "--gating", "mgl2s", "--hw",
                          str(tmp_path / "is.yaml"), "--channel-group", "auto"], capsys)
    assert code == 0
    assert "ddi-energy: warning: channel_group auto on eyeriss" in err
    assert "1 channel per channel-gate output" in out
    code, _, err = run(["inspect", "--arch", "resnet8", "--gating", "mgl2s",
                        "--channel-group", "auto"], capsys)  # fmt: skip
    assert code == 2 and "'auto' needs a hardware config" in err


@pytest.mark.parametrize("mode", ["flops", "energy"])
def test_budgets_with_groups_hold_and_their_worst_case_is_a_reachable_count(mode: str):
    """Grouped exit models under hard budgets: the worst case is taken over the channel counts
    a grouped unit can run (so it is the table's cost at one of them), no input exceeds a
    feasible budget, and at the minimum budget an everything-on input lands exactly on it."""
    table = ddi_energy.load_cost_table("resnet20_eyeriss")
    column = "flops" if mode == "flops" else "energy_pj"
    model = eval_model("resnet20", "mgl2s", exits=True, bias=0.5, channel_group=14)
    cm = cost_model(model, table)
    for u, unit in enumerate(model.units):  # reachable: the sums of any subset of groups
        sizes = group_sizes(unit.width, 14)
        sums = {sum(c) for k in range(len(sizes) + 1) for c in itertools.combinations(sizes, k)}
        assert {int(n) for n in cm.reachable[u].nonzero().flatten()} == sums
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    free = sample_costs(model, model(x).decisions, table)[column]
    for fraction in (0.4, 0.7, 1.0):
        limit = max(fraction * free.max(), min_budget(cm, column))
        set_budget(model, limit, mode, costs=cm)
        costs = sample_costs(model, model(x).decisions, table)
        assert (costs[column] <= limit * (1 + 1e-12)).all()
    on = eval_model("resnet20", "mgl2s", exits=True, bias=1000.0, channel_group=14)
    minimum = min_budget(cm, column)
    set_budget(on, minimum, mode, table)
    costs = sample_costs(on, on(x[:3]).decisions, table)
    assert (costs["exit"] == 0).all()
    assert costs[column].tolist() == pytest.approx([minimum] * 3, rel=1e-12)
    set_budget(model, None)
    set_budget(on, None)
