"""Time an MGL2S network against its plain backbone in one process: training-step overhead,
the ResourceLoss's share of a step, and batch-1 eval wall-clock against the FLOPs skipped.

    python benchmarks/bench_dynamic.py                      # resnet74, batch 128, 2 threads
    python benchmarks/bench_dynamic.py --arch resnet20 --steps 3 --inputs 16 --levels 0.5
    python benchmarks/bench_dynamic.py --arch densenet201 --eval-only --table none --levels 0.5
    python benchmarks/bench_dynamic.py --quick              # resnet74, 1 thread, ~2 min

Inputs have the arch's size: 3×32×32 for the CIFAR networks, 3×224×224 for densenet201 and
resnet50 (`--table none`: FLOPs only, their channel tables are not shipped; `--eval-only`: (c)).

Only ratios of times measured in this process are reported; nothing is compared with an
absolute time, so another job loading the machine widens the spread but not the method.

(a) Training step: forward, cross-entropy (+ α·ResourceLoss), backward and an SGD step on one
fixed random batch (`--batch` × 3×32×32, train mode) for the plain ResNet (`gating=None`), the
ungated DynamicResNet (`gating="none"`) and MGL2S with loss CE only and CE + α·E in the modes
flops, energy and latency (cost table `<arch>_eyeriss`). After `--warmup` rounds, `--steps`
rounds run one step of every variant each, in an order rotated every round; the median step
per variant is compared with the plain one ("IQR" is the spread of that variant's steps).
(b) ResourceLoss share: its forward on a real MGL2S output, and forward + backward on leaf
copies of the gate probabilities (the loss's own backward: the gates already get gradients from
CE through the straight-through estimator, so that is all it adds), median of `--loss-repeats`,
as a % of the fastest MGL2S CE + α·E step (the smallest denominator: conservative). The
whole-step difference (CE + α·E) − (CE) is also printed; it is the same quantity, but buried in
the step noise shown as IQR.
(c) Batch-1 eval: the MGL2S backbone's BN statistics are set by a train-mode pass over random
inputs (so activations have trained-like scale) and loaded into the plain and ungated models.
Gate readouts (and the LSTM input weights) are scaled ×8 as in tests/test_dynamic.py, so that
decisions vary by input, unit and channel, and one readout bias is found by bisection for each
target fraction of the plain network's FLOPs saved: on both gates ("mixed"), on the layer gate
only (channel gates all on) or the channel gates only (layer gate all on). "all on" zeroes
every readout weight and sets a large bias: everything runs, and every gate is computed.
`--inputs` random inputs run `--repeats` times, every model on the same input back to back in a
rotated order; per input the best (and the median) of the repeats is kept, then times are
averaged over inputs; speedups are plain time / model time. FLOPs per input are
`sample_costs(model, decisions, table)["flops"]` (gates included). Every model timed, the plain
one too, is `ddi_energy.for_inference(model)`: BN folded into the convs (and the CNN gate's
conv weights channels-last; the plain network has no such conv).

`--quick`: (c) for the plain network, the gate-free wrapper and mixed gating at ~50 % FLOPs
saved (`--inputs` inputs, best of 3 interleaved repeats each, mean over inputs), plus the bound
for that mixed network: its backbone work with the same decisions replayed and no gate computed
(`FreeGates`: what the gates cost is the gap between the two rows), the gates' floor (their
convolutions and LSTM cells alone in hot loops, `gate_floor`) beside the time all gate work
would have to fit in for 1.2×, and (a) for the
plain network and MGL2S with CE + α·E (flops) (best of 3 interleaved steps after one warm-up);
it ends with one line: batch-1 speed vs plain at ~50 % FLOPs saved, gate-free wrapper speed vs
plain, MGL2S training step time / plain.

Steps and forwards are also reported as the minimum over repeats: when other jobs load the
machine, the median catches stalls and the minimum is the closer estimate of unloaded time. On
an oversubscribed machine, 2 OpenMP threads stall at every barrier (batch-1 ops are tiny and
many), which inflates the gated rows most; `--threads 1` then gives steadier ratios. The
default run is 36 training steps at batch 128 and about 1,000 batch-1 forwards.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from machine_load import load
from torch import Tensor, nn

import ddi_energy
from ddi_energy.costs.cost_model import CostModel
from ddi_energy.costs.resource_loss import ResourceLoss
from ddi_energy.models.dynamic import DDIOutput, GateProbs
from ddi_energy.models.registry import model_cfg

MODES = ("flops", "energy", "latency")
GATE_SCALE = 8.0  # as tests/test_dynamic.py: decisions vary by input instead of by bias alone
ALL_ON_BIAS = 30.0
BISECT_RANGE = (-6.0, 6.0)
BISECT_STEPS = 12
BISECT_TOL = 0.01  # of the plain network's FLOPs


def median_iqr(times: list[float]) -> tuple[float, float]:
    """(median, interquartile range as a fraction of the median)."""
    med = statistics.median(times)
    if len(times) < 2:
        return med, 0.0
    q1, _, q3 = statistics.quantiles(times, n=4)
    return med, (q3 - q1) / med


def logits_of(out: Tensor | DDIOutput) -> Tensor:
    return out if isinstance(out, Tensor) else out.logits


# (a) + (b): training ------------------------------------------------------------------------


@dataclass
class TrainVariant:
    name: str
    model: nn.Module
    opt: torch.optim.Optimizer
    resource: ResourceLoss | None = None


def train_step(v: TrainVariant, x: Tensor, y: Tensor, alpha: float) -> float:
    """Seconds for forward + loss (+ α·E) + backward + SGD step."""
    start = time.perf_counter()
    out = v.model(x)
    loss = nn.functional.cross_entropy(logits_of(out), y)
    if v.resource is not None:
        loss = loss + alpha * v.resource(out)
    v.opt.zero_grad(set_to_none=True)
    loss.backward()
    v.opt.step()
    return time.perf_counter() - start


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def train_variants(arch: str, table: pd.DataFrame) -> list[TrainVariant]:
    torch.manual_seed(0)
    plain = ddi_energy.get_model(arch, gating=None).train()
    none = ddi_energy.get_model(arch, gating="none").train()
    mgl2s = ddi_energy.get_model(arch, gating="mgl2s").train()
    opt = sgd(mgl2s)  # the MGL2S variants share one model: same weights, same graph
    variants = [TrainVariant(f"plain {arch} (gating=None)", plain, sgd(plain)),
                TrainVariant('gating="none" (DynamicResNet)', none, sgd(none)),
                TrainVariant("mgl2s, CE", mgl2s, opt)]  # fmt: skip
    for mode in MODES:
        loss = ddi_energy.ResourceLoss(mgl2s, table, mode=mode)
        variants.append(TrainVariant(f"mgl2s, CE + a*E ({mode})", mgl2s, opt, loss))
    return variants


def bench_training(variants: list[TrainVariant], x: Tensor, y: Tensor, warmup: int,
                   steps: int, alpha: float) -> dict[str, list[float]]:  # fmt: skip
    """Step times per variant, one step of each variant per round, order rotated per round."""
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    n = len(variants)
    for r in range(warmup + steps):
        for k in range(n):
            v = variants[(r + k) % n]
            seconds = train_step(v, x, y, alpha)
            if r >= warmup:
                times[v.name].append(seconds)
    return times


def timed_median(fn: Callable[[Any], object], repeats: int,
                 setup: Callable[[], Any] = lambda: None) -> float:  # fmt: skip
    """Median seconds of `fn(setup())` (the setup untimed)."""
    samples = []
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def leaf_output(out: DDIOutput) -> DDIOutput:
    """`out` with its gate probabilities replaced by detached leaves that require grad."""
    probs = out.probs
    layer = probs.layer.detach().requires_grad_()
    channels = [c.detach().requires_grad_() for c in probs.channels]
    return DDIOutput(out.logits, out.decisions, out.exit_logits, GateProbs(layer, channels))


def bench_resource_loss(model: nn.Module, resource: ResourceLoss, x: Tensor,
                        repeats: int) -> tuple[float, float]:  # fmt: skip
    """(forward s on a real output, backward s of the loss's own graph)."""
    out = model.train()(x)
    fwd = timed_median(lambda _: resource(out), repeats)
    leaf = leaf_output(out)
    bwd = timed_median(lambda loss: loss.backward(), repeats, lambda: resource(leaf))
    return fwd, bwd


# (c): batch-1 eval ----------------------------------------------------------------------------


def input_shape(arch: str) -> tuple[int, int, int]:
    """(3, H, W) the arch takes: 32×32 for the CIFAR networks, 224×224 for the ImageNet ones."""
    return model_cfg(arch).input_size


def calibrate_bn(model: nn.Module, batch: int, seed: int, shape: tuple[int, int, int]) -> None:
    """BN running statistics = the exact mean/var over one train-mode pass of random inputs."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.train()(x)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def layer_readouts(model: nn.Module) -> list[nn.Linear]:
    return list(model.layer_gate.heads)


def channel_readouts(model: nn.Module) -> list[nn.Linear]:
    return [u.cgate.fc for u in model.units]


@torch.no_grad()
def gated_copy(base: nn.Module, layer_bias: float | None,
               channel_bias: float | None) -> nn.Module:  # fmt: skip
    """A copy of `base` whose layer / channel gates vary by input around `*_bias` (×8 readouts,
    as the tests do), or run everything (None: zero readout weights, bias +30)."""
    model = copy.deepcopy(base)
    if layer_bias is not None:
        gate = model.layer_gate
        for proj in gate.proj:
            proj.weight.mul_(GATE_SCALE)
        gate.cell.ih.weight.mul_(GATE_SCALE)
    for heads, bias in ((layer_readouts(model), layer_bias),
                        (channel_readouts(model), channel_bias)):  # fmt: skip
        for head in heads:
            head.weight.mul_(0.0 if bias is None else GATE_SCALE)
            head.bias.fill_(ALL_ON_BIAS if bias is None else bias)
    return model.eval()


FAMILIES: dict[str, Callable[[float], tuple[float | None, float | None]]] = {
    "mixed": lambda b: (b, b),
    "layer only": lambda b: (b, None),
    "channel only": lambda b: (None, b),
}


def flops_saved(costs: CostModel, model: nn.Module, x: Tensor,
                plain_flops: float) -> float:  # fmt: skip
    total, _ = costs.per_input(model(x).decisions)
    return 1.0 - float(total[:, costs.index("flops")].mean()) / plain_flops


def calibrated(base: nn.Module, family: str, target: float, costs: CostModel,
               x: Tensor, plain_flops: float) -> tuple[nn.Module, float]:  # fmt: skip
    """Bisect the readout bias until about `target` of the plain FLOPs are saved on `x`."""
    lo, hi = BISECT_RANGE  # FLOPs saved falls as the bias rises
    best: tuple[float, nn.Module, float] | None = None
    for _ in range(BISECT_STEPS):
        mid = (lo + hi) / 2
        model = gated_copy(base, *FAMILIES[family](mid))
        saved = flops_saved(costs, model, x, plain_flops)
        if best is None or abs(saved - target) < best[0]:
            best = (abs(saved - target), model, mid)
        if abs(saved - target) <= BISECT_TOL:
            break
        lo, hi = (mid, hi) if saved > target else (lo, mid)
    return best[1], best[2]


@dataclass
class EvalRow:
    name: str
    model: Callable[[Tensor], Any]
    gated: bool


def bench_eval(rows: list[EvalRow], inputs: list[Tensor],
               repeats: int) -> list[list[list[float]]]:  # fmt: skip
    """[row][input][repeat] seconds of a batch-1 eval forward, rows interleaved per input."""
    times: list[list[list[float]]] = [[[] for _ in inputs] for _ in rows]
    n = len(rows)
    with torch.no_grad():
        for row in rows:  # warm-up
            for x in inputs[:3]:
                row.model(x)
        for r in range(repeats):
            for i, x in enumerate(inputs):
                for k in range(n):
                    j = (r + i + k) % n
                    start = time.perf_counter()
                    rows[j].model(x)
                    times[j][i].append(time.perf_counter() - start)
    return times


def eval_rows(arch: str, table: pd.DataFrame | None, levels: list[float], seed: int,
              calib_inputs: int, bn_inputs: int = 64) -> tuple[list[EvalRow], float]:  # fmt: skip
    """The models to time at batch 1, and the plain network's FLOPs per input."""
    torch.manual_seed(seed)
    shape = input_shape(arch)
    base = ddi_energy.get_model(arch, gating="mgl2s")
    calibrate_bn(base, bn_inputs, seed, shape)
    plain = ddi_energy.get_model(arch, gating=None)
    plain.load_state_dict(base.state_dict(), strict=False)  # same backbone weights and stats
    none = ddi_energy.get_model(arch, gating="none")
    none.load_state_dict(base.state_dict(), strict=False)
    none_costs = ddi_energy.cost_model(none, table)
    plain_flops = float(none_costs.backbone_full()[none_costs.index("flops")])
    costs = ddi_energy.cost_model(base, table)
    x = torch.randn(calib_inputs, *shape, generator=torch.Generator().manual_seed(seed + 1))
    rows = [EvalRow(f"plain {arch} (gating=None)", plain, False),
            EvalRow('gating="none" (DynamicResNet)', none, True),
            EvalRow("mgl2s all on", gated_copy(base, None, None), True)]  # fmt: skip
    targets = [("mixed", t) for t in levels]
    targets += [(f, 0.5) for f in ("layer only", "channel only")]
    for family, target in targets:
        model, bias = calibrated(base, family, target, costs, x, plain_flops)
        rows.append(EvalRow(f"mgl2s {family} ~{target:.0%} (bias {bias:+.2f})", model, True))
    for row in rows:  # every model, the plain one too, gets the same inference rewrite
        row.model = ddi_energy.for_inference(row.model)
    return rows, plain_flops


def row_costs(row: EvalRow, batch: Tensor, table: pd.DataFrame | None
              ) -> pd.DataFrame | None:  # fmt: skip
    if not row.gated:
        return None
    with torch.no_grad():  # batched eval reports batch-1 decisions and costs (tested)
        out = row.model(batch)
    return ddi_energy.sample_costs(row.model, out.decisions, table)


# report ---------------------------------------------------------------------------------------


def print_training(times: dict[str, list[float]], arch: str, batch: int,
                   warmup: int) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    steps = len(next(iter(times.values())))
    print(f"(a) training step, {arch}, batch {batch} x 3x32x32, train mode, fwd + CE "
          f"(+ a*E) + bwd + SGD: {steps} interleaved steps per variant after {warmup} warm-up")
    medians = {name: median_iqr(t)[0] for name, t in times.items()}
    mins = {name: min(t) for name, t in times.items()}
    plain_med, plain_min = next(iter(medians.values())), next(iter(mins.values()))
    print(f"{'variant':<32} {'median s':>9} {'IQR %':>6} {'vs plain':>9} {'min s':>7} "
          f"{'vs plain':>9}")
    for name, t in times.items():
        med, iqr = median_iqr(t)
        print(f"{name:<32} {med:>9.3f} {100 * iqr:>6.1f} {med / plain_med:>9.3f} "
              f"{mins[name]:>7.3f} {mins[name] / plain_min:>9.3f}")
    return medians, mins


def print_resource(medians: dict[str, float], mins: dict[str, float],
                   loss_times: dict[str, tuple[float, float]], repeats: int) -> None:  # fmt: skip
    print(f"\n(b) ResourceLoss share of an mgl2s training step: its fwd on a real output and "
          f"the bwd of its own graph (median of {repeats}) over the fastest CE + a*E step "
          f"(conservative); target <= 2 %. Step diff = (CE + a*E) - (CE), whole steps")
    print(f"{'mode':<8} {'fwd ms':>7} {'bwd ms':>7} {'step s':>7} {'share':>7} {'target':>7} "
          f"{'step diff (median)':>19} {'(min)':>7}")
    for mode, (fwd, bwd) in loss_times.items():
        name = f"mgl2s, CE + a*E ({mode})"
        share = (fwd + bwd) / mins[name]
        diff_med = (medians[name] - medians["mgl2s, CE"]) / medians[name]
        diff_min = (mins[name] - mins["mgl2s, CE"]) / mins[name]
        print(f"{mode:<8} {1e3 * fwd:>7.2f} {1e3 * bwd:>7.2f} {mins[name]:>7.3f} {share:>7.3%} "
              f"{'met' if share <= 0.02 else 'MISSED':>7} {diff_med:>+19.1%} {diff_min:>+7.1%}")


def print_eval(rows: list[EvalRow], times: list[list[list[float]]],
               costs: list[pd.DataFrame | None], plain_flops: float) -> None:  # fmt: skip
    n_inputs, repeats = len(times[0]), len(times[0][0])
    print(f"\n(c) batch-1 eval (no_grad), {n_inputs} random inputs x {repeats} repeats, "
          f"interleaved; per input the best (and median) of {repeats}, mean over inputs; "
          f"ratios vs the plain network (first row)")
    best = [statistics.mean(min(t) for t in row_t) for row_t in times]
    med = [statistics.mean(statistics.median(t) for t in row_t) for row_t in times]
    print(f"{'model':<38} {'units':>5} {'ch skip':>7} {'MFLOPs':>7} {'FLOPs':>7} {'best':>6} "
          f"{'time':>7} {'speedup':>7} {'FLOP':>6} {'median':>6} {'speedup':>7}")
    print(f"{'':<38} {'run':>5} {'':>7} {'':>7} {'saved':>7} {'ms':>6} {'saved':>7} "
          f"{'(best)':>7} {'ratio':>6} {'ms':>6} {'(med)':>7}")
    for row, c, b, m in zip(rows, costs, best, med, strict=True):
        flops = plain_flops if c is None else float(c["flops"].mean())
        units = "-" if c is None else f"{c['units_executed'].mean():.1f}"
        skip = "-" if c is None else f"{c['channel_skip_ratio'].mean():.0%}"
        print(f"{row.name:<38} {units:>5} {skip:>7} {flops / 1e6:>7.1f} "
              f"{1 - flops / plain_flops:>7.1%} {1e3 * b:>6.2f} {1 - b / best[0]:>7.1%} "
              f"{best[0] / b:>6.2f}x {plain_flops / flops:>5.2f}x {1e3 * m:>6.2f} "
              f"{med[0] / m:>6.2f}x")


# --quick --------------------------------------------------------------------------------------

QUICK_REPEATS = 3


class FreeGates:
    """A gated network's batch-1 backbone work with its gates' decisions given, not computed:
    the time its eval forward would take if the gates cost nothing, the bound that faster
    gates can approach (what stays above plain is the sliced convolutions themselves)."""

    def __init__(self, model: nn.Module, inputs: list[Tensor]) -> None:
        self.model = model
        self.plans = {id(x): self._plan(x) for x in inputs}  # decisions per input, untimed

    def _plan(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        with torch.no_grad():
            d = self.model(x).decisions
        ran, idle = torch.arange(1), torch.arange(0)
        return [(ran if d.executed[0, u] else idle, d.channels[u])
                for u in range(len(self.model.units))]  # fmt: skip

    def __call__(self, x: Tensor) -> Tensor:
        model, states = self.model, {}
        h = model.stem(x)
        for unit, (run, mask) in zip(model.units, self.plans[id(x)], strict=True):
            h = unit.eval_step(unit.enter(h, states), states, run, mask)
        return model.head(h)


def hot_seconds(fn: Callable[[], object], calls: int = 200) -> float:
    """Seconds per call of `fn()` called `calls` times in a row (hot caches), best of 5."""
    fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


@torch.no_grad()
def gate_floor(free: FreeGates, inputs: list[Tensor]) -> float:
    """Mean seconds per input of the operators no gate can do without, each timed alone in a hot
    loop: the convolutions of the channel gates of the units the input executes, and one LSTM
    cell per unit for the layer gate. What the gates cost inside the forward is more."""
    model = free.model
    recorded: dict[int, dict[nn.Conv2d, Tensor]] = {}  # per unit, each gate conv's input
    hooks = [conv.register_forward_hook(
                 lambda m, i, o, u=u: recorded.setdefault(u, {}).setdefault(m, i[0]))
             for u, unit in enumerate(model.units) if unit.cgate is not None
             for conv in unit.cgate.modules() if isinstance(conv, nn.Conv2d)]  # fmt: skip
    for x in inputs:  # the real forwards: every unit some input executes runs its gate
        model(x)
    for hook in hooks:
        hook.remove()
    conv_s = {u: sum(hot_seconds(lambda m=m, x=x: nn.functional.conv2d(
                         x, m.weight, m.bias, m.stride, m.padding)) for m, x in convs.items())
              for u, convs in recorded.items()}  # fmt: skip
    cell_s = 0.0
    if model.layer_gate is not None:
        cell = model.layer_gate.cell
        e = torch.zeros(1, cell.ih.in_features)
        state = cell.zero_state(1, e)
        cell_s = hot_seconds(lambda: torch.lstm_cell(e, state, cell.ih.weight, cell.hh.weight,
                                                     cell.ih.bias))  # fmt: skip
    per_input = [sum(conv_s.get(u, 0.0) for u, (run, _) in enumerate(free.plans[id(x)])
                     if run.numel()) + cell_s * len(model.units) for x in inputs]  # fmt: skip
    return statistics.mean(per_input)


def quick_eval(arch: str, table: pd.DataFrame | None, inputs: int, seed: int,
               calib_inputs: int) -> tuple[list[str], list[float], float]:  # fmt: skip
    """Batch-1 seconds (best of 3 interleaved repeats per input, mean over inputs) of the plain
    network, the gate-free wrapper, MGL2S with ~50 % of the FLOPs saved (mixed bias) and the
    same MGL2S with its decisions replayed without computing gates (`FreeGates`)."""
    rows, _ = eval_rows(arch, table, [0.5], seed, calib_inputs)
    rows = rows[:2] + [r for r in rows if r.name.startswith("mgl2s mixed")]
    gen = torch.Generator().manual_seed(seed + 2)
    xs = [torch.randn(1, *input_shape(arch), generator=gen) for _ in range(inputs)]
    free = FreeGates(rows[2].model, xs)
    rows.append(EvalRow("  same decisions, gates free (bound)", free, False))
    times = bench_eval(rows, xs, QUICK_REPEATS)
    best = [statistics.mean(min(t) for t in row_t) for row_t in times]
    return [r.name for r in rows], best, gate_floor(free, xs)


def quick_train(arch: str, table: pd.DataFrame | None, batch: int, alpha: float,
                seed: int) -> tuple[float, float]:  # fmt: skip
    """Best of 3 interleaved training steps (after one warm-up) of the plain network and of
    MGL2S with CE + α·ResourceLoss (flops)."""
    torch.manual_seed(seed)
    plain = ddi_energy.get_model(arch, gating=None).train()
    mgl2s = ddi_energy.get_model(arch, gating="mgl2s").train()
    variants = [TrainVariant("plain", plain, sgd(plain)),
                TrainVariant("mgl2s", mgl2s, sgd(mgl2s), ResourceLoss(mgl2s, table, mode="flops"))]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *input_shape(arch), generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    times = bench_training(variants, x, y, 1, QUICK_REPEATS, alpha)
    return min(times["plain"]), min(times["mgl2s"])


def quick(args: argparse.Namespace) -> None:
    """The three figures of the issue-20 targets in a few minutes, one line at the end."""
    torch.set_num_threads(args.threads or 1)
    start = time.perf_counter()
    table_name = args.table or f"{args.arch}_eyeriss"
    table = None if table_name == "none" else ddi_energy.load_cost_table(table_name)
    names, best, floor = quick_eval(args.arch, table, args.inputs, args.seed,
                                    args.calib_inputs)  # fmt: skip
    plain_step, mgl2s_step = quick_train(args.arch, table, args.batch, args.alpha, args.seed)
    print(f"{args.arch}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"best of {QUICK_REPEATS} interleaved repeats; {load()}")
    for name, b in zip(names, best, strict=True):
        print(f"  batch-1 eval  {name:<38} {1e3 * b:8.2f} ms  {best[0] / b:5.2f}x")
    print(f"  gates' floor  their convs + LSTM cells alone, hot loop     {1e3 * floor:8.2f} ms; "
          f"for 1.2x all gate work must fit in {1e3 * (best[0] / 1.2 - best[3]):.2f} ms")
    print(f"  train step    plain, batch {args.batch:<26} {plain_step:8.3f} s")
    print(f"  train step    mgl2s, CE + a*E (flops){'':<16} {mgl2s_step:8.3f} s  "
          f"{mgl2s_step / plain_step:5.2f}x")
    print(f"  total {time.perf_counter() - start:.0f} s")
    print(f"batch-1 speed vs plain at ~50% FLOPs saved: {best[0] / best[2]:.2f}x; "
          f"gate-free wrapper: {best[0] / best[1]:.2f}x; "
          f"training step: {mgl2s_step / plain_step:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet74")
    parser.add_argument("--table", default=None,
                        help="cost table (default <arch>_eyeriss); none: FLOPs only")
    parser.add_argument("--eval-only", action="store_true",
                        help="only (c), e.g. for densenet201 / resnet50 at 224x224")
    parser.add_argument("--bn-inputs", type=int, default=64,
                        help="random inputs of the BN-statistics pass")
    parser.add_argument("--steps", type=int, default=5, help="timed training rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training rounds")
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the ResourceLoss")
    parser.add_argument("--loss-repeats", type=int, default=20)
    parser.add_argument("--inputs", type=int, default=24, help="batch-1 eval inputs")
    parser.add_argument("--repeats", type=int, default=5, help="timings per eval input")
    parser.add_argument("--levels", default="0.25,0.5,0.75",
                        help="target fractions of the plain FLOPs saved (mixed gating)")
    parser.add_argument("--calib-inputs", type=int, default=16,
                        help="inputs the gate bias is bisected on")
    parser.add_argument("--threads", type=int, default=None, help="default 2 (--quick: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="batch-1 eval (plain, gate-free, ~50%% FLOPs saved) and training "
                             "step ratios only, best of 3; ends with one summary line")
    args = parser.parse_args()
    if args.quick:
        quick(args)
        return
    args.threads = args.threads or 2
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    table_name = args.table or f"{args.arch}_eyeriss"
    table = None if table_name == "none" else ddi_energy.load_cost_table(table_name)
    levels = [float(s) for s in args.levels.split(",") if s]
    shape = input_shape(args.arch)

    gen = torch.Generator().manual_seed(args.seed)
    if not args.eval_only:
        x = torch.randn(args.batch, *shape, generator=gen)
        y = torch.randint(0, 10, (args.batch,), generator=gen)
        variants = train_variants(args.arch, table)
        times = bench_training(variants, x, y, args.warmup, args.steps, args.alpha)
        mgl2s = variants[2].model
        loss_times = {mode: bench_resource_loss(mgl2s, v.resource, x, args.loss_repeats)
                      for mode, v in zip(MODES, variants[3:], strict=True)}  # fmt: skip
        del variants, mgl2s

    rows, plain_flops = eval_rows(args.arch, table, levels, args.seed, args.calib_inputs,
                                  args.bn_inputs)
    inputs = [torch.randn(1, *shape, generator=gen) for _ in range(args.inputs)]
    eval_times = bench_eval(rows, inputs, args.repeats)
    batch = torch.cat(inputs)
    costs = [row_costs(row, batch, table) for row in rows]

    print(f"{args.arch} at {shape[1]}x{shape[2]}, torch {torch.__version__}, {args.threads} "
          f"threads, table {table_name}, a = {args.alpha}, {load()}\n")
    if not args.eval_only:
        medians, mins = print_training(times, args.arch, args.batch, args.warmup)
        print_resource(medians, mins, loss_times, args.loss_repeats)
    print_eval(rows, eval_times, costs, plain_flops)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
