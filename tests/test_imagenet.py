"""ImageNet networks: gated densenet201 and resnet50, exact FLOPs at 224×224, and pretrained
torchvision-layout weights (checked against layout-faithful reference models)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from cli_helpers import run
from dynamic_helpers import eval_model, gate_heads, set_bias
from torch.utils.flop_counter import FlopCounterMode
from torchvision_layout import TvDenseNet, TvResNet, old_densenet_keys, randomize

import ddi_energy
from ddi_energy.costs.budget import set_budget
from ddi_energy.costs.cost_model import cost_model, sample_costs
from ddi_energy.costs.pricing import Pricer
from ddi_energy.engines.analytic import AnalyticEngine
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import load_hw
from ddi_energy.models.dynamic import GATINGS
from ddi_energy.models.pretrained import backbone_keys, load_pretrained
from ddi_energy.models.zoo import walk_arch
from ddi_energy.reporting.overheads import unit_report
from ddi_energy.tables.build import build_table
from ddi_energy.tables.rows import row_specs
from ddi_energy.training.checkpoints import Checkpoints

SMALL = 64  # input side for the weight-equivalence tests: the layouts do not depend on it

REFERENCES = {"densenet201": TvDenseNet, "resnet50": TvResNet}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these batch-1/2 forwards gain nothing from two, and on a busy machine
    two threads waiting on each other made them 5-30× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def all_gates_on(model: torch.nn.Module) -> torch.nn.Module:
    """Every gate on, whatever the features (a random deep network's are large)."""
    with torch.no_grad():
        for head in gate_heads(model):
            head.weight.zero_()
            head.bias.fill_(5.0)
    return model


@pytest.fixture(scope="module")
def references() -> dict[str, torch.nn.Module]:
    return {arch: randomize(cls(), seed=1) for arch, cls in REFERENCES.items()}


# A batch-1 224×224 forward under FlopCounterMode takes 1-7 s (one thread, busy machine): the
# default suite runs resnet50 in every mode (exits on in three) and densenet201 in mgl2s with
# exits (every kind of gate and its exits); `-m slow` runs all 20 cases.
FAST = [("resnet50", "none", True), ("resnet50", "layer", False),
        ("resnet50", "channel-cnn", False), ("resnet50", "channel-rnn", True),
        ("resnet50", "mgl2s", True), ("densenet201", "mgl2s", True)]  # fmt: skip
GRID = [(a, g, e) for a in ("resnet50", "densenet201") for g in GATINGS for e in (False, True)]
FLOP_CASES = [pytest.param(*case, marks=() if case in FAST else pytest.mark.slow) for case in GRID]


@pytest.mark.parametrize(("arch", "gating", "exits"), FLOP_CASES)
def test_flop_counter_equals_sample_costs_at_224(arch: str, gating: str, exits: bool):
    model = eval_model(arch, gating, exits)
    if exits:
        set_budget(model, math.inf)  # every exit runs (without a budget none does)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    costs = sample_costs(model, out.decisions)
    assert counter.get_total_flops() == costs["flops"][0]
    d = out.decisions
    if model.layer_gated:
        assert 0.15 < d.executed.double().mean() < 0.85  # really skipping units
    if model.channel_kind is not None:
        assert 0.2 < costs["channel_skip_ratio"][0] < 0.9  # and channels
    if exits:
        assert len(out.exit_logits) == 3 and (d.exits_run == 3).all()


@pytest.mark.parametrize("arch", ["resnet50", "densenet201"])
def test_budget_halts_at_an_exit_and_stops_the_work(arch: str):
    """With every gate on, a FLOPs budget between the worst cases up to exit 1 and up to exit 2
    (0-based) halts the input at exit 1, under the budget: the counted FLOPs are exactly those
    up to exit 1, so nothing after the exit ran."""
    model = all_gates_on(eval_model(arch, "mgl2s", exits=True))
    costs = cost_model(model)
    worst = costs.stem[0] + costs.segment_worst()[:, 0].cumsum(0)  # up to exit j, all gates on
    limit = float(worst[1] + worst[2]) / 2
    set_budget(model, limit, "flops")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    costs = sample_costs(model, out.decisions)
    assert costs["exit"][0] == 1 and costs["flops"][0] <= limit
    assert counter.get_total_flops() == costs["flops"][0] == int(worst[1])
    assert torch.equal(out.logits, out.exit_logits[1]) and out.exit_logits[2].isnan().all()


def test_exit_positions_and_plain_flops():
    """Exits where Sec. IV-A puts them (densenet201) and after stages 1-3 (resnet50); the plain
    networks' FLOPs (2 × MACs): 8.58 G and 8.18 G (torchvision's 4.29 and 4.09 "GFLOPS")."""
    dense = ddi_energy.get_model("densenet201", gating="mgl2s", exits=True)
    assert [dense.unit_names[u] for u in dense.exit_after] == [
        "block1.layer3", "block2.layer3", "block3.layer36"]
    resnet = ddi_energy.get_model("resnet50", gating="mgl2s", exits=True)
    assert [resnet.unit_names[u] for u in resnet.exit_after] == ["stage1.2", "stage2.3", "stage3.5"]
    assert len(resnet.units) == 16 and len(dense.units) == 98
    assert 2 * sum(la.macs for la in walk_arch("densenet201")) == 8_582_731_776
    assert 2 * sum(la.macs for la in walk_arch("resnet50")) == 8_178_368_512


@pytest.mark.parametrize("arch", ["resnet50", pytest.param("densenet201", marks=pytest.mark.slow)])
def test_resource_loss_trains_the_gates(arch: str):
    """Training mode (masked chains): at saturated gates the resource term is the hard cost,
    whose bottleneck `conv2` counts n × n channels; at p ≈ 0.6 every gate weight gets a gradient."""
    x = torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(0)
    model = set_bias(ddi_energy.get_model(arch, gating="mgl2s"), 1000.0).train()
    out = model(x)
    loss_fn = ddi_energy.ResourceLoss(model, mode="flops")
    assert loss_fn.scale == 2 * sum(la.macs for la in walk_arch(arch))  # the plain network's
    assert loss_fn(out).item() == pytest.approx(
        sample_costs(model, out.decisions)["flops"][0] / loss_fn.scale, rel=1e-12)
    torch.manual_seed(0)
    model = ddi_energy.get_model(arch, gating="mgl2s").train()
    with torch.no_grad():  # unsaturated gates (p 0.5-0.75 here): no gradient underflows
        for head in gate_heads(model):
            head.bias.fill_(0.5)
    ddi_energy.ResourceLoss(model, mode="flops")(model(x)).backward()
    for i, gate in enumerate((model.layer_gate, *(u.cgate for u in model.units))):
        for name, p in gate.named_parameters():
            if p.dim() > 1:  # weights; BN affine under ReLU can be dead
                assert p.grad is not None and p.grad.abs().sum() > 0, (i, name)


def test_gate_overheads():
    """Light channel gates: ~1/8 of a dense layer (paper, Fig. 4: "roughly 11 %"), 6.25 % of a
    non-downsampling bottleneck; the LSTM layer gate stays far below 0.1 %."""
    for arch, unit, low, high in (("densenet201", "block3.layer20", 10, 14),
                                  ("resnet50", "stage3.2", 6.2, 6.3)):  # fmt: skip
        model = ddi_energy.get_model(arch, gating="mgl2s")
        units = unit_report(cost_model(model)).set_index("unit")
        assert low < units.loc[unit, "channel_gate_flops_%"] < high
        assert units.loc[unit, "layer_gate_flops_%"] < 0.1


def test_bottleneck_rows_sweep_both_axes_of_conv2():
    """One mask on a bottleneck's inner width: conv1 rows sweep outputs, conv2 rows inputs and
    outputs together, conv3 rows inputs; a cost model adds them per active count."""
    layers = [la for la in walk_arch("resnet50") if la.name.startswith("stage4.1.")]
    assert [(la.name, la.channel_axis) for la in layers] == [
        ("stage4.1.conv1", "out"), ("stage4.1.conv2", "both"), ("stage4.1.conv3", "in")]
    specs = row_specs(layers, "channel")
    conv2 = [(s.in_channels, s.out_channels) for s in specs if s.layer.name == "stage4.1.conv2"]
    assert conv2 == [(n, n) for n in range(1, 513)]
    hw, _ = load_hw("eyeriss")
    table = build_table([s for s in specs if s.in_channels in (1, 100, 512) or
                         s.out_channels in (1, 100, 512)], hw, AnalyticEngine(), progress=False)
    rows = table.set_index(["layer", "in_channels", "out_channels"])
    assert rows.loc[("stage4.1.conv2", 100, 100), "macs"] == 7 * 7 * 9 * 100 * 100
    assert rows.loc[("stage4.1.conv2", 512, 512), "is_full"]
    costs = cost_model(ddi_energy.get_model("resnet50", gating="channel-cnn"))
    u = [x.name for x in costs.structure.units].index("stage4.1")
    expected = 2 * 49 * (2048 * 100 + 9 * 100 * 100 + 100 * 2048)
    assert float(costs.curve[u, 100, 0]) == expected
    table.attrs["meta"] = {"arch": "resnet50"}
    priced = Pricer(costs.structure, table).backbone(layers[1], in_channels=100, out_channels=100)
    assert float(priced[1]) == rows.loc[("stage4.1.conv2", 100, 100), "energy_pj"]


@pytest.mark.parametrize("arch", ["densenet201", "resnet50"])
def test_gated_backbone_is_the_plain_network(arch: str):
    """A gated network's backbone has the plain network's keys and shapes, so plain weights
    (ours or torchvision's) load into it; gates and exits are the rest."""
    plain = ddi_energy.get_model(arch).state_dict()
    gated = ddi_energy.get_model(arch, gating="mgl2s", exits=True)
    backbone = backbone_keys(gated)
    assert {k: v.shape for k, v in backbone.items()} == {k: v.shape for k, v in plain.items()}
    rest = set(gated.state_dict()) - set(backbone)
    assert rest and all(k.startswith(("layer_gate.", "exits.")) or ".cgate." in k for k in rest)


@pytest.mark.parametrize("arch", ["densenet201", "resnet50"])
def test_pretrained_gives_the_reference_logits(arch: str, references):
    ref = references[arch]
    x = torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(x)
        states = [ref.state_dict()]
        if arch == "densenet201":
            states.append(old_densenet_keys(states[0]))
            assert "features.denseblock1.denselayer1.norm.1.weight" in states[1]
        for state in states:
            model = load_pretrained(ddi_energy.get_model(arch), state).eval()
            torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    assert expected.std() > 0.1  # the logits depend on the weights


@pytest.mark.parametrize(("arch", "heads"), [("resnet50", 17), ("densenet201", 99)])
def test_pretrained_backbone_in_a_gated_network(arch: str, heads: int, references,
                                                tmp_path: Path):  # fmt: skip
    """From a file: gates and exits keep their initialization; with every gate on, the gated
    network's output is the reference network's."""
    path = tmp_path / f"{arch}.pth"
    torch.save(references[arch].state_dict(), path)
    model = all_gates_on(eval_model(arch, "mgl2s"))
    fresh = {k: v.clone() for k, v in model.state_dict().items() if "gate" in k}
    load_pretrained(model, path)
    state = model.state_dict()
    for k, v in fresh.items():
        assert torch.equal(state[k], v), k
    x = torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out.logits, references[arch](x), rtol=1e-4, atol=1e-4)
    assert out.decisions.executed.all() and len(gate_heads(model)) == heads


def test_old_densenet_file_in_the_legacy_format(references, tmp_path: Path):
    """torchvision's DenseNet-201 file predates the zip format and BN counters: old keys, saved
    with `_use_new_zipfile_serialization=False`, load weights-only and give the same logits."""
    path = tmp_path / "densenet201-old.pth"
    torch.save(old_densenet_keys(references["densenet201"].state_dict()), path,
               _use_new_zipfile_serialization=False)  # fmt: skip
    model = load_pretrained(ddi_energy.get_model("densenet201"), path).eval()
    x = torch.randn(1, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(x), references["densenet201"](x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("arch", "source", "message"),
    [
        ("densenet201", "resnet50", "densenet201 has no layer1.0.conv1.weight (ours: stage1.0."),
        ("resnet50", "densenet201", "resnet50 has no features.denseblock1.denselayer1.norm1."),
        ("densenet201", "densenet121", "features.transition3.norm.weight (ours: trans3.bn.weight) "
                                       "has shape (1024,), densenet201's (1792,)"),
        ("resnet50", "resnet50-10", "fc.weight has shape (10, 2048), resnet50's (1000, 2048)"),
        ("resnet50", "resnet50-truncated", "no weights for resnet50's stage4.2.conv1.weight"),
    ],
)
def test_foreign_weights_are_refused(arch: str, source: str, message: str):
    tv = {"resnet50": TvResNet, "densenet201": TvDenseNet, "resnet50-10": lambda: TvResNet(
        num_classes=10), "densenet121": lambda: TvDenseNet(blocks=(6, 12, 24, 16))}  # fmt: skip
    state = tv.get(source, TvResNet)().state_dict()
    if source == "resnet50-truncated":
        state = {k: v for k, v in state.items() if not k.startswith("layer4.2.")}
    model = ddi_energy.get_model(arch, gating="layer")
    with pytest.raises(DDIError) as err:
        load_pretrained(model, state)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pretrained_file_errors(tmp_path: Path):
    model = ddi_energy.get_model("resnet50")
    with pytest.raises(DDIError, match="missing.pth: no such PyTorch state dict file"):
        load_pretrained(model, tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(DDIError, match="bad.pth: not a PyTorch state dict file"):
        load_pretrained(model, bad)
    torch.save({"weights": [1, 2]}, bad)
    with pytest.raises(DDIError, match="not a state dict"):
        load_pretrained(model, bad)
    torch.save(TvResNet(), bad)  # a whole pickled network: code, refused by weights_only
    with pytest.raises(DDIError, match=r"bad.pth: not a PyTorch state dict file \(Unpickling"):
        load_pretrained(model, bad)
    load_pretrained(model, {k: v for k, v in TvResNet(num_classes=10).state_dict().items()},
                    classifier=False)  # another number of classes: keep our classifier


def test_train_starts_from_pretrained_weights(references, tmp_path: Path, capsys):
    """`ddi-energy train --pretrained FILE` on 224×224 folder data (2 classes: the classifier
    starts fresh); IADI step 1 trains only the gates, so the backbone stays the file's."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "data" / "train" / cls).mkdir(parents=True)
        for i in range(2):
            colour = (40 + 100 * i, 200 if cls == "a" else 20, 90)
            Image.new("RGB", (12, 10), colour).save(tmp_path / "data" / "train" / cls / f"{i}.png")
    weights = tmp_path / "resnet50.pth"
    torch.save(references["resnet50"].state_dict(), weights)
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--arch", "resnet50", "--gating", "layer", "--data",
                             "folder", "--data-dir", str(tmp_path / "data"), "--batch", "2",
                             "--pretrain-steps", "0", "--gate-steps", "1", "--steps", "0",
                             "--ddi-steps", "0", "--bn-batches", "0", "--pretrained",
                             str(weights), "--out", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    state = Checkpoints.load(out / "checkpoints" / "final.pt")["model"]
    ref = references["resnet50"].state_dict()
    assert torch.equal(state["stage4.2.conv3.weight"], ref["layer4.2.conv3.weight"])
    assert torch.equal(state["stage2.0.shortcut.1.weight"], ref["layer2.0.downsample.1.weight"])
    assert state["fc.weight"].shape == (2, 2048)
    code, _, err = run(["train", "--arch", "resnet50", "--pretrained", str(tmp_path / "no.pth"),
                        "--init", str(out), "--out", str(tmp_path / "x")], capsys)  # fmt: skip
    assert code == 2 and "give init or pretrained, not both" in err
    code, _, err = run(["train", "--arch", "densenet201", "--gating", "layer", "--data", "folder",
                        "--data-dir", str(tmp_path / "data"), "--batch", "2", "--pretrained",
                        str(weights), "--out", str(tmp_path / "y")], capsys)  # fmt: skip
    assert code == 2 and "densenet201 has no layer1.0.conv1.weight" in err
    assert not (tmp_path / "y").exists()
