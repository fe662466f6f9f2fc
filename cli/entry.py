"""The `ddi-energy` console script's entry point, light on purpose: worker processes (`--jobs`)
start by importing the script that started their parent, and the command line itself imports
torch; here it is imported only when the command runs, so workers start without it."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from ddi_energy.cli.main import main as run

    run(argv)
