"""Profiling any PyTorch CNN: a user model file end to end (table = FlopCounterMode, analytic =
live SCALE-Sim, emitted files run in SCALE-Sim), unpriced ops refused or recorded, bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from cli_helpers import run, scalesim_cli
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import ddi_energy
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import from_dict
from ddi_energy.models.user import load_model
from ddi_energy.tables.columns import content_digest
from ddi_energy.tables.io import write_table
from ddi_energy.tables.profile_model import UnpricedOpsWarning
from ddi_energy.tables.validate import PHYSICAL_KEPT
from ddi_energy.workload.shapes import REPORT_FIELDS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_cnn.py"
MODEL = f"{EXAMPLE}:build"
WITH_MATMUL = f"{EXAMPLE}:build_with_matmul"
# Small buffers (1 kB ifmap) so DRAM re-fetches show; a 4x3 array so every layer folds.
TINY = {"name": "tiny", "word_bits": 8, "array": {"rows": 4, "cols": 3}, "dataflow": "os",
        "sram_kB": {"ifmap": 1, "filter": 1, "ofmap": 1},
        "energy_pj": {"dram": 100.0, "sram": 2.0, "rf": 0.5, "mac": 0.25}}  # fmt: skip


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def forward_flops(model: nn.Module, size: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *size))
    return counter.get_total_flops()


def test_user_model_table_equals_flop_counter_and_lists_every_layer():
    model, _ = load_model(MODEL)
    table = ddi_energy.profile_model(model, (3, 16, 16), from_dict(TINY, "test"))
    assert 2 * int(table["macs"].sum()) == forward_flops(model, (3, 16, 16)) == 376_448
    modules = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(table["layer"]) == sorted(modules)
    rows = table.set_index("layer")
    # Depthwise: 8 groups of 1 channel -> 1 filter; the dilated grouped conv: 4 groups, each
    # in 3x3 phases (dilation 3 on an 8x8 output); the Linear runs on 8x8 = 64 tokens.
    assert rows.loc["b1.dw", ["groups", "sim_layers", "stride"]].tolist() == [8, 8, 2]
    assert rows.loc["context", ["groups", "dilation", "sim_layers"]].tolist() == [4, 3, 36]
    assert rows.loc["mix", ["ifmap_h", "ifmap_w", "macs"]].tolist() == [64, 1, 64 * 24 * 32]
    assert rows.loc["head", "macs"] == 32 * 10
    meta = table.attrs["meta"]
    assert meta["arch"] == "tokencnn" and meta["input_size"] == [3, 16, 16]
    assert meta["forward_flops"] == 376_448 and "unpriced_ops" not in meta


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One SCALE-Sim cache for the validate runs: both count models compare with the same runs."""
    return tmp_path_factory.mktemp("scalesim_cache")


@pytest.mark.parametrize(("counts", "verdict"), [("scalesim", "0 mismatches"),
                                                 ("physical", "0 violations")])  # fmt: skip
def test_validate_model_against_live_scalesim(counts: str, verdict: str, shared_cache: Path,
                                              tiny_file: Path, capsys):  # fmt: skip
    code, out, err = run(["validate", "--model", MODEL, "--input-size", "3,16,16", "--hw",
                          str(tiny_file), "--counts", counts, "--jobs", "1", "--cache-dir",
                          str(shared_cache)], capsys)  # fmt: skip
    assert code == 0, err
    assert "11 unique shapes (8 of 8 table rows)" in out
    assert verdict in out


def test_physical_table_of_a_user_model(tmp_path: Path, capsys):
    ws = from_dict({**TINY, "dataflow": "ws"}, "test")  # ws: partial sums are read back
    model, _ = load_model(MODEL)
    ours = ddi_energy.profile_model(model, (3, 16, 16), ws, counts="physical")
    ref = ddi_energy.profile_model(model, (3, 16, 16), ws)
    assert ours.attrs["meta"]["counts"] == "physical"
    assert 2 * int(ours["macs"].sum()) == forward_flops(model, (3, 16, 16))
    assert ours[list(PHYSICAL_KEPT)].equals(ref[list(PHYSICAL_KEPT)])
    for column in REPORT_FIELDS:
        assert (ours[column] <= ref[column]).all(), column
    # Padding left out: the 3x3 convs read less; the 1x1 convs and Linears have none.
    rows, refs = ours.set_index("layer"), ref.set_index("layer")
    for layer in ("stem", "b1.dw", "context", "b2.dw"):
        assert rows.loc[layer, "sram_ifmap_reads"] < refs.loc[layer, "sram_ifmap_reads"]
    for layer in ("b1.pw", "b2.pw", "mix", "head"):
        assert rows.loc[layer, "sram_ifmap_reads"] == refs.loc[layer, "sram_ifmap_reads"]
    assert ours["sram_ofmap_reads"].sum() > 0 == ref["sram_ofmap_reads"].sum()
    code, _, err = run(["profile", "--model", MODEL, "--hw", "edge_npu", "--counts", "physical",
                        "--out", str(tmp_path), "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    assert ddi_energy.load_cost_table(tmp_path / "build_edge_npu_physical.csv").attrs["meta"][
        "counts"] == "physical"


def test_emitted_files_run_in_scalesim_and_sum_to_the_table(tmp_path: Path, tiny_file: Path,
                                                            capsys):  # fmt: skip
    emit, tables = tmp_path / "emit", tmp_path / "tables"
    code, out, err = run(["profile", "--model", MODEL, "--hw", str(tiny_file), "--out",
                          str(tables), "--emit", str(emit), "--quiet"], capsys)
    assert code == 0, err
    assert "8 rows (65 SCALE-Sim layers)" in out
    topology = (emit / "topology.csv").read_text().splitlines()[1:]
    names = [line.split(",")[0] for line in topology]
    assert len(names) == 65 and not any("DP" in n for n in names)
    reports = scalesim_cli(emit, tmp_path / "out")
    assert len(reports) == 65
    table = pd.read_csv(tables / "build_tiny.csv")
    summed: dict[str, list[int]] = {}
    for name, report in zip(names, reports, strict=True):
        row = name.split("_in")[0]  # b1_dw_in8_out8_g3 -> b1_dw
        counts = [getattr(report, f) for f in REPORT_FIELDS]
        summed[row] = [a + b for a, b in zip(summed.get(row, [0] * 7), counts, strict=True)]
    for _, row in table.iterrows():
        assert [row[f] for f in REPORT_FIELDS] == summed[row["layer"].replace(".", "_")]


def test_matmul_model_is_refused_naming_the_op(tmp_path: Path, capsys):
    out_dir = tmp_path / "t"
    code, _, err = run(["profile", "--model", WITH_MATMUL, "--hw", "eyeriss", "--out",
                        str(out_dir)], capsys)  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2  # the refusal, then one line per op kind
    assert "--allow-unpriced" in lines[0]
    assert "aten.bmm" in lines[1] and "matmul" in lines[1] and "<TokenCNN.forward>" in lines[1]
    assert "2 call(s), 393,216 FLOPs = 51.09 %" in lines[1]
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_allow_unpriced_profiles_warns_and_records(tmp_path: Path, capsys):
    code, _, err = run(["profile", "--model", WITH_MATMUL, "--hw", "eyeriss", "--out",
                        str(tmp_path), "--quiet", "--allow-unpriced"], capsys)  # fmt: skip
    assert code == 0
    assert "warning" in err and "aten.bmm" in err
    meta = json.loads((tmp_path / "build_with_matmul_eyeriss.json").read_text())
    model, _ = load_model(WITH_MATMUL)
    flops = forward_flops(model, (3, 16, 16))
    (op,) = meta["unpriced_ops"]
    assert op["op"] == "aten.bmm" and op["calls"] == 2
    assert op["modules"] == ["<TokenCNN.forward>"]
    # What the table prices plus what it leaves out is everything FlopCounterMode counts.
    assert 2 * meta["totals_full_network"]["macs"] + op["flops"] == flops == meta["forward_flops"]
    with pytest.warns(UnpricedOpsWarning, match="aten.bmm"):
        ddi_energy.profile_model(model, None, "eyeriss", allow_unpriced=True)
    with pytest.raises(DDIError, match="aten.bmm"):
        ddi_energy.profile_model(model, None, "eyeriss")


def test_shipped_mobilenet_table_has_depthwise_rows():
    table = ddi_energy.load_cost_table("mobilenetv2_eyeriss")
    dw = table[table["layer"].str.endswith(".dw")]
    assert len(dw) == 17
    assert (dw["groups"] == dw["in_channels"]).all() and (dw["groups"] == dw["out_channels"]).all()
    assert (dw["sim_layers"] == dw["groups"]).all()
    model = ddi_energy.get_model("mobilenetv2")
    assert 2 * int(table["macs"].sum()) == forward_flops(model, (3, 32, 32))


def test_model_file_with_a_dataclass_and_a_neighbour_import(tmp_path: Path, capsys):
    # A dataclass needs its module in sys.modules; the file's folder is importable while it runs.
    (tmp_path / "widths.py").write_text("WIDTH = 6\n")
    (tmp_path / "net.py").write_text(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from torch import nn\n"
        "from widths import WIDTH\n\n"
        "@dataclass\n"
        "class Cfg:\n"
        "    width: int = WIDTH\n"
        "    kernel: ClassVar[int] = 3\n\n"
        "def build():\n"
        "    return nn.Conv2d(3, Cfg().width, Cfg.kernel)\n"
    )  # fmt: skip
    code, _, err = run(["profile", "--model", f"{tmp_path / 'net.py'}:build", "--input-size",
                        "3,8,8", "--hw", "eyeriss", "--out", str(tmp_path), "--quiet"], capsys)
    assert code == 0, err
    assert pd.read_csv(tmp_path / "build_eyeriss.csv")["macs"].tolist() == [6 * 6 * 6 * 27]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("examples/user_cnn.py", "expected FILE.py:FACTORY"),
        ("missing.py:build", "missing.py: no such file"),
        (f"{EXAMPLE}:nothing", "no factory 'nothing' (callables defined there: Separable, "),
        ("no_such_package_xyz:build", "cannot import no_such_package_xyz"),
        ("torch.nn:Conv2d", "Conv2d() failed: TypeError"),
        ("math:pi", "no factory 'pi'"),
        ("collections:OrderedDict", "returned OrderedDict, not an nn.Module"),
    ],
)
def test_bad_model_specs_are_one_line(spec: str, words: str, tmp_path: Path, capsys):
    code, _, err = run(["profile", "--model", spec, "--hw", "eyeriss", "--out", str(tmp_path)],
                       capsys)  # fmt: skip
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", MODEL, "--input-size", "3,16"], "expected C,H,W"),
        (["--model", MODEL, "--input-size", "1,16,16"], "forward on a (1, 1, 16, 16) input failed"),
        (["--arch", "resnet8", "--model", MODEL], "one of them"),
        ([], "one of them"),
        (["--arch", "resnet8", "--input-size", "3,32,32"], "go with --model"),
        (["--arch", "resnet8", "--allow-unpriced"], "go with --model"),
    ],
)
def test_bad_model_options_are_one_line(args: list[str], words: str, tmp_path: Path, capsys):
    code, _, err = run(["profile", *args, "--hw", "eyeriss", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1


def test_tables_with_per_axis_values_and_older_tables_load_cleanly(tmp_path: Path):
    # One output row, so a 2x1 stride is one SCALE-Sim stride; the table cell reads "2x1".
    model = nn.Sequential(nn.Conv2d(4, 4, 3, stride=(2, 1), padding=(0, 1)))
    table = ddi_energy.profile_model(model, (4, 3, 9), "eyeriss", name="odd")
    write_table(table, table.attrs["meta"], tmp_path, "odd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ddi_energy.load_cost_table(tmp_path / "odd.csv")
        assert loaded.loc[0, ["stride", "padding", "dilation"]].tolist() == ["2x1", "0x1", 1]
        # A table written before groups/dilation/sim_layers existed: read as dense layers.
        old = ddi_energy.load_cost_table("resnet8_eyeriss").drop(
            columns=["groups", "dilation", "sim_layers"])
        meta = {**old.attrs["meta"], "content_sha256": content_digest(old)}
        write_table(old, meta, tmp_path, "old")
        again = ddi_energy.load_cost_table(tmp_path / "old.csv")
    assert (again[["groups", "dilation", "sim_layers"]] == 1).all().all()
