"""`python -m ddi_energy` is the `ddi-energy` command."""

from ddi_energy.cli.main import main

main()
