"""Hardware configs: a systolic accelerator plus per-access energies, validated at the edge.

A config comes from a YAML file of ours (`hw_configs/*.yaml`) or from a SCALE-Sim `.cfg`. Every
problem is reported as a `DDIError` naming the file, the key and what is allowed.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ddi_energy.errors import DDIError
from ddi_energy.hardware.sram_energy import HOROWITZ_45NM, MODEL, SramRef, sram_word_pj

DATAFLOWS = ("os", "ws", "is")
OPERANDS = ("ifmap", "filter", "ofmap")
LEVELS = ("dram", "sram", "rf", "mac")
AUTO = "auto"  # energy_pj.sram: per-buffer energy from capacity and word width
# Energies used for a SCALE-Sim .cfg, which carries none: Eyeriss's normalized costs
# (DRAM 200, buffer 6, RF 1, MAC 1; Chen et al., ISCA 2016, Table IV) scaled by a 16-bit
# 65 nm MAC of 0.21 pJ (Accelergy's eyeriss_like reference).
DEFAULT_ENERGY_PJ = {"dram": 42.0, "sram": 1.26, "rf": 0.21, "mac": 0.21}
# Largest array accepted: 4096 x 4096 PEs, 100x a TPU v1; beyond it the engines' per-PE
# arrays no longer fit in memory.
MAX_PES = 2**24


@dataclass(frozen=True)
class HardwareConfig:
    """A systolic array with three operand buffers, and Eq. 6's energy per access (pJ/word).

    `sram_kB` is real storage in kB (1024 bytes) per operand buffer; SCALE-Sim counts 1-byte
    words, so `scalesim_kb()` converts it to SCALE-Sim's 1024-word units at `word_bits`.
    `energy_pj["sram"]` is a number or "auto" (each buffer's energy from its capacity and word
    width, scaled from `sram_ref` or Horowitz's 45 nm figures: see `hardware/sram_energy.py`).
    """

    name: str
    word_bits: int
    rows: int
    cols: int
    dataflow: str
    sram_kB: dict[str, float]
    energy_pj: dict[str, float | str]
    clock_mhz: float | None = None
    sram_ref: SramRef | None = None
    source: str = field(default="", compare=False)

    @property
    def sram_auto(self) -> bool:
        return self.energy_pj["sram"] == AUTO

    def sram_pj(self) -> dict[str, float]:
        """pJ per word access of each operand buffer: the fixed number, or resolved from the
        buffer's capacity (auto)."""
        if not self.sram_auto:
            return {op: float(self.energy_pj["sram"]) for op in OPERANDS}
        ref = self.sram_ref or HOROWITZ_45NM
        return {op: sram_word_pj(self.sram_kB[op], self.word_bits, ref) for op in OPERANDS}

    def sram_model(self) -> str:
        """How the SRAM energies were obtained (recorded in table metadata)."""
        if not self.sram_auto:
            return "fixed: energy_pj.sram for every buffer"
        ref = self.sram_ref or HOROWITZ_45NM
        anchor = "config's sram_ref" if self.sram_ref else "Horowitz 45 nm fit"
        return (f"auto: {MODEL}; anchored at {ref.pj:g} pJ per {ref.word_bits}-bit access "
                f"from {ref.kB:g} kB ({anchor})")

    def scalesim_kb(self) -> tuple[int, int, int]:
        """Buffer sizes for SCALE-Sim's `*SramSzkB` keys (1024 words of `word_bits` each)."""
        return tuple(int(self.sram_kB[op] * 8 // self.word_bits) for op in OPERANDS)

    def sim_key(self) -> dict[str, Any]:
        """Everything that changes SCALE-Sim's counts (and nothing that does not)."""
        return {
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": self.dataflow,
            "sram_kb_words": list(self.scalesim_kb()),
        }

    def to_dict(self) -> dict[str, Any]:
        """The config in its YAML form: `from_dict(hw.to_dict(), src) == hw`."""
        d = {
            "name": self.name,
            "word_bits": self.word_bits,
            "array": {"rows": self.rows, "cols": self.cols},
            "dataflow": self.dataflow,
            "sram_kB": dict(self.sram_kB),
            "energy_pj": dict(self.energy_pj),
        }
        if self.clock_mhz is not None:
            d["clock_mhz"] = self.clock_mhz
        if self.sram_ref is not None:
            d["sram_ref"] = {"kB": self.sram_ref.kB, "word_bits": self.sram_ref.word_bits,
                             "pj": self.sram_ref.pj}  # fmt: skip
        return d

    def digest(self) -> str:
        """Short content hash of the whole config (recorded in table metadata)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _err(src: str, msg: str) -> DDIError:
    return DDIError(f"{src}: {msg}")


def _number(src: str, key: str, value: Any, *, integer: bool, positive: bool = True,
            kind: str | None = None) -> float:  # fmt: skip
    if isinstance(value, str):
        value = _scientific(value)  # YAML 1.1 reads 1e3 (no dot) as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = kind or ("a whole number" if integer else "a number")
        return _raise(src, f"{key} = {value!r} must be {kind}")
    if not math.isfinite(value):
        return _raise(src, f"{key} = {value!r} must be a finite number")
    if integer and not float(value).is_integer():
        return _raise(src, f"{key} = {value!r} must be a whole number")
    if positive and value <= 0:
        return _raise(src, f"{key} = {value!r} must be > 0")
    if not positive and value < 0:
        return _raise(src, f"{key} = {value!r} must be >= 0")
    return int(value) if integer else float(value)


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _scientific(text: str) -> str | float:
    """`"1e3"` -> 1000.0: a number in scientific notation that YAML 1.1 left as a string."""
    return float(text) if _SCIENTIFIC.fullmatch(text.strip()) else text


def _raise(src: str, msg: str):
    raise _err(src, msg)


def _mapping(src: str, key: str, value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _raise(src, f"{key} must be a mapping with keys {', '.join(keys)}; got {value!r}")
    missing = [k for k in keys if k not in value]
    unknown = [k for k in value if k not in keys]
    if missing:
        _raise(src, f"missing key {key}.{missing[0]} (required: {', '.join(keys)})")
    if unknown:
        _raise(src, f"unknown key {key}.{unknown[0]} (allowed: {', '.join(keys)})")
    return value


REQUIRED = ("name", "word_bits", "array", "dataflow", "sram_kB", "energy_pj")
OPTIONAL = ("clock_mhz", "sram_ref", "description")


def from_dict(data: Any, src: str) -> HardwareConfig:
    """Validate a parsed YAML mapping into a `HardwareConfig`."""
    if not isinstance(data, dict):
        _raise(src, "must be a YAML mapping with keys " + ", ".join(REQUIRED))
    for key in REQUIRED:
        if key not in data:
            _raise(src, f"missing key {key} (required: {', '.join(REQUIRED)})")
    for key in data:
        if key not in REQUIRED + OPTIONAL:
            _raise(src, f"unknown key {key} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or not name.replace("-", "_").isidentifier():
        _raise(src, f"name = {name!r} must be a word of letters, digits, '-' or '_'")
    word_bits = _number(src, "word_bits", data["word_bits"], integer=True)
    if word_bits not in (4, 8, 16, 32):
        _raise(src, f"word_bits = {word_bits} must be one of 4, 8, 16, 32")
    array = _mapping(src, "array", data["array"], ("rows", "cols"))
    rows = _number(src, "array.rows", array["rows"], integer=True)
    cols = _number(src, "array.cols", array["cols"], integer=True)
    if rows * cols > MAX_PES:
        _raise(src, f"array {rows} x {cols} = {rows * cols:,} PEs is above the cap of "
                    f"2^24 = {MAX_PES:,} PEs (rows x cols)")
    dataflow = data["dataflow"]
    if dataflow not in DATAFLOWS:
        _raise(src, f"dataflow = {dataflow!r} must be one of {', '.join(DATAFLOWS)}")
    sram = _mapping(src, "sram_kB", data["sram_kB"], OPERANDS)
    sram_kb = {op: _number(src, f"sram_kB.{op}", sram[op], integer=False) for op in OPERANDS}
    for op, kb in sram_kb.items():
        words_k = kb * 8 / word_bits
        if not float(words_k).is_integer():
            _raise(
                src,
                f"sram_kB.{op} = {kb:g} kB holds {words_k:g} K words of {word_bits} bits; "
                f"SCALE-Sim needs whole K words: use a multiple of {word_bits / 8:g} kB",
            )
    energy = _mapping(src, "energy_pj", data["energy_pj"], LEVELS)
    energy_pj: dict[str, float | str] = {
        lv: AUTO if lv == "sram" and energy[lv] == AUTO
        else _number(src, f"energy_pj.{lv}", energy[lv], integer=False,
                     kind="a number or auto" if lv == "sram" else None)
        for lv in LEVELS
    }  # fmt: skip
    clock = data.get("clock_mhz")
    if clock is not None:
        clock = _number(src, "clock_mhz", clock, integer=False)
    ref = data.get("sram_ref")
    if ref is not None:
        ref = _mapping(src, "sram_ref", ref, ("kB", "word_bits", "pj"))
        ref = SramRef(kB=_number(src, "sram_ref.kB", ref["kB"], integer=False),
                      word_bits=_number(src, "sram_ref.word_bits", ref["word_bits"], integer=True),
                      pj=_number(src, "sram_ref.pj", ref["pj"], integer=False))  # fmt: skip
    hw = HardwareConfig(
        name=name,
        word_bits=word_bits,
        rows=rows,
        cols=cols,
        dataflow=dataflow,
        sram_kB=sram_kb,
        energy_pj=energy_pj,
        clock_mhz=clock,
        sram_ref=ref,
        source=src,
    )
    _check_order(hw, src)
    return hw


def _check_order(hw: HardwareConfig, src: str) -> None:
    """dram >= every buffer's SRAM energy >= rf, on the resolved values (auto included)."""
    e, sram = hw.energy_pj, hw.sram_pj()
    if e["dram"] >= max(sram.values()) and min(sram.values()) >= e["rf"]:
        return
    resolved = "/".join(f"{v:g}" for v in sram.values())
    label = f"sram=auto -> {resolved} (ifmap/filter/ofmap)" if hw.sram_auto else f"sram={resolved}"
    _raise(src, "energy_pj must satisfy dram >= sram >= rf (pJ per word access); got "
                f"dram={e['dram']:g}, {label}, rf={e['rf']:g}")  # fmt: skip


def bundled_configs() -> dict[str, Path]:
    """Bundled configs by name (file stem)."""
    root = resources.files("ddi_energy.hw_configs")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve(spec: str) -> Path:
    """A path if it exists, else a bundled config named `spec` (with or without `.yaml`)."""
    path = Path(spec)
    if path.exists():
        return path
    bundled = bundled_configs()
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem in bundled:
        return bundled[stem]
    raise DDIError(
        f"{spec}: no such file and no bundled hardware config of that name "
        f"(bundled: {', '.join(sorted(bundled))})"
    )


def load_hw(
    spec: str | Path, energy_pj: dict[str, float | str] | None = None
) -> tuple[HardwareConfig, str]:
    """Load a YAML config or a SCALE-Sim `.cfg`; returns the config and a note on energy sources.

    `energy_pj` overrides per-level energies (for a `.cfg`, which has none, or for a what-if).
    """
    path = resolve(str(spec))
    src = str(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _err(src, f"cannot read: {reason}") from None
    if path.suffix == ".cfg":
        hw = _from_scalesim_cfg(text, src, energy_pj)
        used = {**DEFAULT_ENERGY_PJ, **(energy_pj or {})}
        note = "energies from " + ("flags and " if energy_pj else "") + (
            "defaults (a SCALE-Sim .cfg has none): "
            + ", ".join(f"{k}={v:g} pJ" if v != AUTO else f"{k}={v}" for k, v in used.items())
        )
        return hw, note
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _err(src, f"not valid YAML{where}; expected a hardware config mapping") from None
    if energy_pj and isinstance(data, dict) and isinstance(data.get("energy_pj"), dict):
        data = {**data, "energy_pj": {**data["energy_pj"], **energy_pj}}
    hw = from_dict(data, src)
    # A bundled config is named as such, so shipped metadata does not carry this machine's path.
    label = f"bundled {path.name}" if path in bundled_configs().values() else src
    note = "energies from " + label + (" with flag overrides" if energy_pj else "")
    return hw, note


def _from_scalesim_cfg(
    text: str, src: str, energy_pj: dict[str, float | str] | None
) -> HardwareConfig:
    """Read a SCALE-Sim config: array, dataflow and buffers; 1-byte words as SCALE-Sim has."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise _err(src, f"not a SCALE-Sim config: {str(exc).splitlines()[0]}") from None
    sec = "architecture_presets"
    keys = {"ArrayHeight": "rows", "ArrayWidth": "cols", "IfmapSramSzkB": "ifmap",
            "FilterSramSzkB": "filter", "OfmapSramSzkB": "ofmap", "Dataflow": "dataflow"}
    if not parser.has_section(sec):
        raise _err(src, f"missing section [{sec}] (a SCALE-Sim config needs it)")
    raw = {}
    for key in keys:
        if not parser.has_option(sec, key):
            raise _err(src, f"missing key [{sec}] {key}")
        raw[key] = parser.get(sec, key).strip()
    values: dict[str, Any] = {}
    for key, name in keys.items():
        if name == "dataflow":
            values[name] = raw[key]
            continue
        try:
            values[name] = int(raw[key])
        except ValueError:
            raise _err(src, f"[{sec}] {key} = {raw[key]!r} must be a whole number") from None
    run_name = parser.get("general", "run_name", fallback=Path(src).stem).strip()
    return from_dict(
        {
            "name": run_name.replace(" ", "_") or Path(src).stem,
            "word_bits": 8,
            "array": {"rows": values["rows"], "cols": values["cols"]},
            "dataflow": values["dataflow"],
            "sram_kB": {op: values[op] for op in OPERANDS},
            "energy_pj": {**DEFAULT_ENERGY_PJ, **(energy_pj or {})},
        },
        src,
    )
