"""SCALE-Sim 3.0.0's input and report files: the one place that knows their formats.

The same text drives our library runs and `ddi-energy profile --emit DIR`, so an emitted
directory runs unchanged under
`python -m scalesim.scale -c DIR/scalesim.cfg -t DIR/topology.csv -l DIR/layout.csv -p OUT`.

Layer names: SCALE-Sim splits rows on ',' and treats any name containing "DP" as a depthwise
layer (one layer per channel). `scalesim_name` therefore lowercases names (no "DP" can survive)
and replaces everything but letters, digits, '_' and '-' by '_' ("stage1.block0.conv1" ->
"stage1_block0_conv1"). Reports identify layers by row order only, so names are for readers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.workload.shapes import AccessCounts, ConvShape

TOPOLOGY_HEADER = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
    "Strides,"
)
LAYOUT_CSV = "Layer name,\n"
"""Header-only layout file: SCALE-Sim insists on one even with custom layouts off."""

TOPOLOGY_FILE = "topology.csv"
CONFIG_FILE = "scalesim.cfg"
LAYOUT_FILE = "layout.csv"

# Report columns read by `read_reports`, in AccessCounts field order after `cycles`.
COMPUTE_REPORT = "COMPUTE_REPORT.csv"
DETAIL_REPORT = "DETAILED_ACCESS_REPORT.csv"
CYCLES_COLUMN = "Total Cycles"  # compute cycles; "Total Cycles (incl. prefetch)" is another one
DETAIL_COLUMNS = (
    "SRAM IFMAP Reads",
    "SRAM Filter Reads",
    "SRAM OFMAP Writes",
    "DRAM IFMAP Reads",
    "DRAM Filter Reads",
    "DRAM OFMAP Writes",
)


def scalesim_name(name: str) -> str:
    """A layer or run name SCALE-Sim reads back intact and never mistakes for depthwise."""
    return re.sub(r"[^a-z0-9_-]", "_", name.lower()) or "layer"


def topology_row(name: str, s: ConvShape) -> str:
    """One conv-form topology row; the trailing comma is needed (SCALE-Sim drops the last field)."""
    fields = (s.ifmap_h, s.ifmap_w, s.filter_h, s.filter_w, s.channels, s.filters, s.stride)
    return ", ".join([scalesim_name(name), *map(str, fields)]) + ","


def topology_csv(rows: Sequence[tuple[str, ConvShape]]) -> str:
    """A conv-form topology file with one row per (name, shape), in order."""
    return "\n".join([TOPOLOGY_HEADER, *(topology_row(n, s) for n, s in rows)]) + "\n"


def config_cfg(hw: HardwareConfig, run_name: str) -> str:
    """A complete SCALE-Sim config: every section and key its `scale_config` reads.

    Offsets, request buffers, bank settings and sparsity are SCALE-Sim's own defaults; CALC mode
    is the stall-free bandwidth mode (USER mode stalls and makes DRAM counts erratic). The run
    name is sanitized like layer names; SCALE-Sim writes its reports to <log dir>/<run name>/.
    """
    ifmap_kb, filter_kb, ofmap_kb = hw.scalesim_kb()
    return f"""\
[general]
run_name = {scalesim_name(run_name)}

[architecture_presets]
ArrayHeight : {hw.rows}
ArrayWidth : {hw.cols}
IfmapSramSzkB : {ifmap_kb}
FilterSramSzkB : {filter_kb}
OfmapSramSzkB : {ofmap_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {hw.dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def write_inputs(
    directory: Path, rows: Sequence[tuple[str, ConvShape]], hw: HardwareConfig,
    run_name: str = "ddi",
) -> None:
    """Write topology.csv, scalesim.cfg and layout.csv into `directory` (created if missing)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TOPOLOGY_FILE).write_text(topology_csv(rows))
        (directory / CONFIG_FILE).write_text(config_cfg(hw, run_name))
        (directory / LAYOUT_FILE).write_text(LAYOUT_CSV)
    except OSError as exc:
        raise DDIError(f"{directory}: cannot write SCALE-Sim inputs: {exc.strerror}") from None


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a SCALE-Sim report (`, `-separated, every line ending in a comma)."""
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise DDIError(f"{path}: cannot read SCALE-Sim report: {exc.strerror}") from None
    if not lines:
        raise DDIError(f"{path}: empty SCALE-Sim report")
    header, *rows = ([f.strip() for f in ln.removesuffix(",").split(",")] for ln in lines)
    return header, rows


def _count(text: str) -> int:
    """A count as SCALE-Sim writes it: "1944", or "1944.0" from a numpy float."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


def _column(path: Path, table: tuple[list[str], list[list[str]]], name: str) -> list[int]:
    """One column, found by its header name so a reordered report cannot shift counts."""
    header, rows = table
    if name not in header:
        raise DDIError(f"{path}: no column {name!r} (columns: {', '.join(header)})")
    i = header.index(name)
    try:
        return [_count(row[i]) for row in rows]
    except (ValueError, IndexError, OverflowError):
        raise DDIError(f"{path}: column {name!r} has a missing or non-integer value") from None


def read_reports(report_dir: Path) -> list[AccessCounts]:
    """Per-layer counts, in topology order, from COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT."""
    report_dir = Path(report_dir)
    compute_path, detail_path = report_dir / COMPUTE_REPORT, report_dir / DETAIL_REPORT
    compute, detail = _read_table(compute_path), _read_table(detail_path)
    cycles = _column(compute_path, compute, CYCLES_COLUMN)
    counts = [_column(detail_path, detail, name) for name in DETAIL_COLUMNS]
    if any(len(col) != len(cycles) for col in counts):
        raise DDIError(f"{report_dir}: {COMPUTE_REPORT} and {DETAIL_REPORT} differ in layer count")
    return [AccessCounts(c, *vals) for c, *vals in zip(cycles, *counts, strict=True)]
