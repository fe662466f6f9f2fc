"""Run the `ddi-energy` CLI in-process, as the tests of several commands do."""

from __future__ import annotations

from ddi_energy.cli.main import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `ddi-energy ARGV`."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err
