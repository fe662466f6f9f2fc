"""Run the `ddi-energy` CLI in-process, and SCALE-Sim's own CLI on emitted files, as the tests of
several commands do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ddi_energy.cli.main import main

from ddi_energy.engines.scalesim_files import read_reports
from ddi_energy.workload.shapes import AccessCounts


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `ddi-energy ARGV`."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def scalesim_cli(emit: Path, out: Path) -> list[AccessCounts]:
    """Per-layer counts of `python -m scalesim.scale` run on the files `--emit` wrote to `emit`
    (reports and traces go under `out`)."""
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "scalesim.scale", "-c", str(emit / "scalesim.cfg"),
         "-t", str(emit / "topology.csv"), "-l", str(emit / "layout.csv"), "-p", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (report_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return read_reports(report_dir)
