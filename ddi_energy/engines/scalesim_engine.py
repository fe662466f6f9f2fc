"""The SCALE-Sim engine: runs the real `scalesim` package, one shape per run, with a disk cache.

One shape per run keeps memory flat (SCALE-Sim keeps every layer of a run alive), lets a process
pool spread shapes over cores, and lets each finished shape be cached at once, so an interrupted
profile resumes where it stopped. Cache entries are keyed by the shape, the hardware's
`sim_key()` and the installed SCALE-Sim version, so energy-only changes never re-simulate.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ddi_energy.engines.scalesim_files import CONFIG_FILE, LAYOUT_FILE, TOPOLOGY_FILE, read_reports
from ddi_energy.engines.scalesim_files import write_inputs as _write_inputs
from ddi_energy.errors import DDIError
from ddi_energy.hardware.config import HardwareConfig
from ddi_energy.processes import completed
from ddi_energy.workload.shapes import REPORT_FIELDS, AccessCounts, ConvShape

RUN_NAME = "ddi"
NUMPY_LIMIT = (2, 4)  # scalesim 3.0.0 casts 1-element arrays to int; numpy 2.4 made that an error


class SimulationFailed(Exception):
    """SCALE-Sim could not simulate a shape; the message is the one-line reason."""


# ----------------------------------------------------------------------------- one simulation


def _reason(exc: BaseException, output: str) -> str:
    """One line saying why SCALE-Sim stopped (its exit() calls only print the cause)."""
    if isinstance(exc, SystemExit):
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln]
        return (errors or lines or [f"SCALE-Sim called exit({exc.code!r})"])[-1]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_scalesim(directory: Path) -> None:
    """Run SCALE-Sim on the inputs in `directory`, reports under directory/out, no traces."""
    from scalesim.scale_sim import scalesim

    sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=str(directory / CONFIG_FILE),
        topology=str(directory / TOPOLOGY_FILE),
        layout=str(directory / LAYOUT_FILE),
        input_type_gemm=False,
    )
    sim.run_scale(top_path=str(directory / "out"))


def simulate(shape: ConvShape, hw: HardwareConfig, workdir: Path | None = None) -> AccessCounts:
    """Counts of one shape from a SCALE-Sim run in a throwaway directory (inside `workdir`).

    SCALE-Sim's own output (prints, numpy DeprecationWarnings, unclosed-file ResourceWarnings)
    is swallowed: it is all Python-level, nothing is written to the file descriptors directly.
    Raises `SimulationFailed` for any exception or exit() inside SCALE-Sim.
    """
    with tempfile.TemporaryDirectory(prefix="ddi-scalesim-", dir=workdir) as tmp:
        counts, reason = _silenced_run(Path(tmp), shape, hw)
    if counts is None:
        raise SimulationFailed(reason)
    if len(counts) != 1:
        raise SimulationFailed(f"expected 1 report row, got {len(counts)}")
    return counts[0]


def _silenced_run(
    directory: Path, shape: ConvShape, hw: HardwareConfig
) -> tuple[list[AccessCounts] | None, str]:
    """(report rows, "") or (None, one-line reason), with all of SCALE-Sim's output swallowed.

    The failure is turned into a reason inside the silenced block: SCALE-Sim leaves files open in
    the frames of its traceback, which raise ResourceWarnings when the traceback is freed.
    """
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _write_inputs(directory, [("layer", shape)], hw, RUN_NAME)
                _run_scalesim(directory)
                return read_reports(directory / "out" / RUN_NAME), ""
            except (Exception, SystemExit) as exc:
                reason = _reason(exc, output.getvalue())
    return None, reason


Outcome = tuple[ConvShape, AccessCounts | None, str | None]


def _task(item: tuple[ConvShape, HardwareConfig, Path | None]) -> Outcome:
    """Pool-safe wrapper: a plain (shape, counts, reason) tuple always pickles back."""
    shape, hw, workdir = item
    try:
        return shape, simulate(shape, hw, workdir), None
    except SimulationFailed as exc:
        return shape, None, str(exc)


# ----------------------------------------------------------------------------- cache


def scalesim_version() -> str:
    """Installed SCALE-Sim version (part of the cache key: a new version may count differently)."""
    try:
        return metadata.version("scalesim")
    except metadata.PackageNotFoundError:
        raise DDIError("scalesim is not installed: pip install scalesim==3.0.0") from None


def cache_key(shape: ConvShape, hw: HardwareConfig, version: str) -> str:
    """sha256 of everything that changes SCALE-Sim's counts for this shape."""
    blob = {"shape": asdict(shape), "hw": hw.sim_key(), "scalesim": version}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def default_cache_root() -> Path:
    """$DDI_ENERGY_CACHE, else ~/.cache/ddi-energy."""
    env = os.environ.get("DDI_ENERGY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ddi-energy"


def _parse_entry(data: Any, shape: ConvShape) -> AccessCounts | None:
    """Counts from a cache entry, or None if it is not a well-formed entry for `shape`."""
    if not isinstance(data, dict) or data.get("shape") != asdict(shape):
        return None
    counts = data.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(REPORT_FIELDS):
        return None
    if not all(type(counts[f]) is int and counts[f] >= 0 for f in REPORT_FIELDS):
        return None
    return AccessCounts(**counts)


class ShapeCache:
    """One small JSON file per (shape, hardware sim_key, SCALE-Sim version)."""

    def __init__(self, directory: Path, hw: HardwareConfig, version: str) -> None:
        self.directory, self.hw, self.version = directory, hw, version

    def path(self, shape: ConvShape) -> Path:
        return self.directory / f"{cache_key(shape, self.hw, self.version)}.json"

    def load(self, shape: ConvShape) -> AccessCounts | None:
        """Cached counts, or None if missing, unreadable or corrupt (then it is re-simulated)."""
        try:
            data = json.loads(self.path(shape).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return _parse_entry(data, shape)

    def store(self, shape: ConvShape, counts: AccessCounts) -> None:
        """Write atomically (temp file + os.replace): a killed run never leaves half an entry."""
        entry = {"scalesim": self.version, "hw": self.hw.sim_key(), "shape": asdict(shape),
                 "counts": {f: getattr(counts, f) for f in REPORT_FIELDS}}
        target = self.path(shape)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{target.stem}.", suffix=".tmp")
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh, indent=1)
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise self._unwritable(exc) from None
            raise

    def _unwritable(self, exc: OSError) -> DDIError:
        return DDIError(
            f"{self.directory}: cannot write the SCALE-Sim cache ({exc.strerror}); "
            "set --cache-dir or DDI_ENERGY_CACHE to a writable folder"
        )


# ----------------------------------------------------------------------------- engine


def _check_numpy() -> None:
    """Fail early and clearly on a numpy that SCALE-Sim 3.0.0 crashes with."""
    import numpy

    version = tuple(int(p) for p in numpy.__version__.split(".")[:2] if p.isdigit())
    if version >= NUMPY_LIMIT:
        raise DDIError(
            f"numpy {numpy.__version__} is installed, but SCALE-Sim 3.0.0 crashes with numpy >= "
            "2.4: pip install 'numpy<2.4'"
        )


def shape_summary(shape: ConvShape) -> str:
    return (
        f"ifmap {shape.ifmap_h}x{shape.ifmap_w}, filter {shape.filter_h}x{shape.filter_w}, "
        f"C={shape.channels}, K={shape.filters}, stride {shape.stride}"
    )


def _failure(shape: ConvShape, hw: HardwareConfig, names: Mapping[ConvShape, str],
             reason: str) -> DDIError:
    label = names.get(shape) or (
        f"{shape.ifmap_h}x{shape.ifmap_w}x{shape.channels}"
        f"*{shape.filter_h}x{shape.filter_w}x{shape.filters}/s{shape.stride}"
    )
    where = f"{shape_summary(shape)}; {hw.rows}x{hw.cols} {hw.dataflow} array"
    return DDIError(f"SCALE-Sim failed on layer {label} ({where}): {reason}")


def _outcomes(todo: list[ConvShape], hw: HardwareConfig, jobs: int) -> Iterator[Outcome]:
    """Simulate `todo`, yielding each result as it finishes (in-process or on a pool)."""
    # Killed workers cannot clean up: their temp directories live in one we remove afterwards.
    with tempfile.TemporaryDirectory(prefix="ddi-scalesim-pool-") as workdir:
        tasks = [(shape, hw, Path(workdir)) for shape in todo]
        died = ("a SCALE-Sim worker process died (out of memory or killed); finished shapes are "
                "cached: rerun, with fewer --jobs if memory is short")  # fmt: skip
        for _, outcome in completed(_task, tasks, jobs, died):
            yield outcome


class ScaleSimEngine:
    """Access counts from SCALE-Sim 3.0.0, simulating only shapes missing from the disk cache.

    `cache_dir` is the ddi-energy cache root (default $DDI_ENERGY_CACHE or ~/.cache/ddi-energy);
    entries live in its `scalesim/` folder.
    """

    name = "scalesim"
    model = "scalesim"

    def __init__(self, cache_dir: Path | None = None) -> None:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        self.directory = root / "scalesim"

    def counts(
        self,
        shapes: Iterable[ConvShape],
        hw: HardwareConfig,
        *,
        jobs: int = 1,
        progress: bool = True,
        names: Mapping[ConvShape, str] | None = None,
    ) -> dict[ConvShape, AccessCounts]:
        unique = list(dict.fromkeys(shapes))
        cache = ShapeCache(self.directory, hw, scalesim_version())
        found = {shape: cache.load(shape) for shape in unique}
        todo = sorted((s for s, c in found.items() if c is None), key=lambda s: -s.macs)
        if todo:
            _check_numpy()
            found.update(self._simulate(todo, hw, cache, jobs, progress, names or {}))
        return {shape: found[shape] for shape in unique}

    def _simulate(self, todo: list[ConvShape], hw: HardwareConfig, cache: ShapeCache, jobs: int,
                  progress: bool, names: Mapping[ConvShape, str]) -> dict[ConvShape, AccessCounts]:
        """Run the missing shapes (largest first), caching each as soon as it finishes."""
        done: dict[ConvShape, AccessCounts] = {}
        bar = tqdm(total=len(todo), desc="SCALE-Sim", unit="shape", file=sys.stderr,
                   disable=not progress, leave=False)
        with bar, contextlib.closing(_outcomes(todo, hw, max(1, jobs))) as outcomes:
            for shape, counts, reason in outcomes:
                if counts is None:
                    raise _failure(shape, hw, names, reason or "unknown error")
                cache.store(shape, counts)
                done[shape] = counts
                bar.update()
        return done
