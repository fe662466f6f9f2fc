"""Hardware configs: bundled ones load, SCALE-Sim sizes convert, every bad key is named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import bundled_configs, from_dict, load_hw

GOOD = {
    "name": "tiny",
    "word_bits": 16,
    "array": {"rows": 4, "cols": 6},
    "dataflow": "ws",
    "sram_kB": {"ifmap": 4, "filter": 2, "ofmap": 2},
    "energy_pj": {"dram": 100.0, "sram": 2.0, "rf": 0.5, "mac": 0.5},
}


def test_bundled_configs_load_and_differ_in_shape():
    names = bundled_configs()
    assert {"eyeriss", "edge_npu", "tpu_like"} <= set(names)
    shapes = set()
    for name in names:
        hw, note = load_hw(f"{name}.yaml")
        assert hw.name == name and name in note
        shapes.add((hw.rows, hw.cols, hw.dataflow))
    assert len(shapes) == len(names)


def test_eyeriss_matches_the_chip():
    hw, _ = load_hw("eyeriss")
    assert (hw.rows, hw.cols, hw.word_bits) == (12, 14, 16)
    assert sum(hw.sram_kB.values()) == 108
    # 16-bit words: 54 kB = 27 K words, in SCALE-Sim's 1024-word "kB".
    assert hw.scalesim_kb() == (27, 14, 13)
    e = hw.energy_pj
    assert e["dram"] / e["mac"] == pytest.approx(200) and e["sram"] / e["mac"] == pytest.approx(6)
    # One shared 108 KB global buffer; `auto` would price each third-sized buffer from it.
    assert hw.sram_ref.pj == e["sram"] and hw.sram_ref.kB == 108
    assert hw.sram_pj() == dict.fromkeys(("ifmap", "filter", "ofmap"), 1.26)
    auto = from_dict({**hw.to_dict(), "energy_pj": {**e, "sram": "auto"}}, "x")
    assert auto.sram_pj() == {"ifmap": 0.9078, "filter": 0.6654, "ofmap": 0.6425}


def test_sram_auto_follows_each_buffer():
    hw = from_dict(_broken(["energy_pj", "sram"], "auto"), "x")
    # Horowitz fit, 16-bit words: 3.80 pJ x kB^0.473 x 16/64.
    expect = {op: 3.80 * kb**0.473 / 4 for op, kb in GOOD["sram_kB"].items()}
    assert hw.sram_pj() == pytest.approx(expect, abs=1e-4)
    assert expect["ifmap"] == pytest.approx(1.83, abs=0.005)
    assert from_dict(hw.to_dict(), "again") == hw and "auto" in hw.sram_model()
    fixed = from_dict(GOOD, "x")
    assert fixed.sram_pj() == dict.fromkeys(("ifmap", "filter", "ofmap"), 2.0)
    assert fixed.digest() != hw.digest()
    anchored = from_dict({**hw.to_dict(), "sram_ref": {"kB": 4, "word_bits": 16, "pj": 3}}, "x")
    assert anchored.sram_pj()["ifmap"] == 3.0 and from_dict(anchored.to_dict(), "y") == anchored


def test_order_is_checked_on_resolved_energies(tmp_path: Path):
    """rf 1.5 pJ is below a fixed 2 pJ SRAM but above the 1.32 pJ the 2 kB buffers resolve to."""
    data = _broken(["energy_pj", "rf"], 1.5)
    assert from_dict(data, "x")
    data["energy_pj"]["sram"] = "auto"
    with pytest.raises(DDIError, match=r"dram >= sram >= rf .*sram=auto -> 1\.83\d*/1\.31"):
        from_dict(data, "x")


def test_scalesim_cfg_accepts_auto_sram(tmp_path: Path):
    cfg = tmp_path / "mine.cfg"
    cfg.write_text("[architecture_presets]\nArrayHeight : 8\nArrayWidth : 8\n"
                   "IfmapSramSzkB : 64\nFilterSramSzkB : 8\nOfmapSramSzkB : 8\nDataflow : ws\n")
    hw, note = load_hw(cfg, {"sram": "auto"})
    # 8-bit words (a .cfg): 3.80 pJ x kB^0.473 / 8: 3.40 pJ at 64 kB, 1.27 pJ at 8 kB.
    assert hw.sram_pj() == {"ifmap": 3.3964, "filter": 1.2702, "ofmap": 1.2702}
    assert "sram=auto" in note


def test_path_and_name_give_the_same_config(tmp_path: Path):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(GOOD))
    hw, _ = load_hw(tmp_path / "mine.yaml")
    assert hw == from_dict(GOOD, "x") and hw.digest() == from_dict(GOOD, "y").digest()
    assert from_dict({**GOOD, "dataflow": "os"}, "z").digest() != hw.digest()
    assert from_dict(hw.to_dict(), "again") == hw


def test_scalesim_cfg_is_accepted_with_default_or_flag_energies(tmp_path: Path):
    cfg = tmp_path / "mine.cfg"
    cfg.write_text(
        "[general]\nrun_name = my_array\n[architecture_presets]\nArrayHeight : 8\n"
        "ArrayWidth : 16\nIfmapSramSzkB : 64\nFilterSramSzkB : 32\nOfmapSramSzkB : 16\n"
        "Dataflow : is\n"
    )
    hw, note = load_hw(cfg)
    assert (hw.name, hw.rows, hw.cols, hw.dataflow) == ("my_array", 8, 16, "is")
    assert hw.scalesim_kb() == (64, 32, 16) and "defaults" in note
    hw2, note2 = load_hw(cfg, {"dram": 300.0})
    assert hw2.energy_pj["dram"] == 300.0 and "flags" in note2


def _broken(path: list[str], value, delete: bool = False) -> dict:
    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_broken(["word_bits"], None, delete=True), ["missing key word_bits"]),
        (_broken(["array", "cols"], None, delete=True), ["missing key array.cols"]),
        (_broken(["energy_pj", "rf"], None, delete=True), ["energy_pj.rf"]),
        (_broken(["colour"], "red"), ["unknown key colour", "allowed"]),
        (_broken(["sram_kB", "psum"], 3), ["unknown key sram_kB.psum"]),
        (_broken(["array", "rows"], -4), ["array.rows", "-4", "> 0"]),
        (_broken(["energy_pj", "dram"], -1.0), ["energy_pj.dram", "> 0"]),
        (_broken(["array", "rows"], "twelve"), ["array.rows", "'twelve'", "whole number"]),
        (_broken(["array", "rows"], 4.5), ["array.rows", "whole number"]),
        (_broken(["sram_kB", "ifmap"], "big"), ["sram_kB.ifmap", "a number"]),
        (_broken(["word_bits"], 12), ["word_bits", "4, 8, 16, 32"]),
        (_broken(["dataflow"], "rs"), ["dataflow", "'rs'", "os, ws, is"]),
        (_broken(["sram_kB", "filter"], 3), ["sram_kB.filter", "multiple of 2"]),
        (_broken(["energy_pj", "sram"], 500.0), ["dram >= sram >= rf"]),
        (_broken(["energy_pj", "sram"], "big"), ["energy_pj.sram", "a number or auto"]),
        (_broken(["sram_ref"], {"kB": 8, "pj": 1}), ["missing key sram_ref.word_bits"]),
        (_broken(["sram_ref"], {"kB": 8, "word_bits": 16, "pj": -1}), ["sram_ref.pj", "> 0"]),
        (_broken(["array"], [4, 6]), ["array must be a mapping"]),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, data: dict, words: list[str]):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DDIError) as err:
        load_hw(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    for word in words:
        assert word in msg


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("name: [unclosed\n", ["not valid YAML", "line"]),
        ("- just\n- a list\n", ["must be a YAML mapping"]),
        (b"\xff\xfe\x00binary", ["cannot read"]),
    ],
)
def test_unreadable_or_non_yaml_files(tmp_path: Path, content, words):
    path = tmp_path / "hw.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DDIError) as err:
        load_hw(path)
    for word in words:
        assert word in str(err.value)


def test_unknown_config_name_lists_bundled():
    with pytest.raises(DDIError, match=r"nosuch\.yaml: no such file.*eyeriss"):
        load_hw("nosuch.yaml")


def test_directory_is_not_a_config(tmp_path: Path):
    with pytest.raises(DDIError, match="cannot read"):
        load_hw(tmp_path)
