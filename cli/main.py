"""The `ddi-energy` command line. Every user error ends as one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ddi_energy.errors import DDIError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ddi-energy")
def cli() -> None:
    """Energy-aware dynamic inference: profile, train and report gated CNNs."""


def _energy_overrides(values: dict[str, float | None]) -> dict[str, float] | None:
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


@cli.command()
@click.option("--arch", required=True, help="Network from the zoo (see `ddi-energy models`).")
@click.option("--hw", "hw_spec", required=True,
              help="Hardware config: bundled name (eyeriss.yaml), YAML path or SCALE-Sim .cfg.")
@click.option("--engine", type=click.Choice(["scalesim"]), default="scalesim", show_default=True,
              help="Where access counts come from.")
@click.option("--granularity", type=click.Choice(["channel", "layer"]), default="channel",
              show_default=True,
              help="channel: a row per active channel count of every gated layer; layer: full "
                   "layers only.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("cost_tables"),
              show_default=True, help="Directory for <arch>_<hw>.csv and .json.")
@click.option("--emit", "emit_dir", type=click.Path(path_type=Path), default=None,
              help="Also write the SCALE-Sim topology.csv, scalesim.cfg and layout.csv of the "
                   "table's rows here.")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default="number of CPUs", help="Processes for SCALE-Sim runs.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="SCALE-Sim result cache [default: $DDI_ENERGY_CACHE or ~/.cache/ddi-energy].")
@click.option("--e-dram", type=float, default=None, help="Override DRAM energy, pJ per word.")
@click.option("--e-sram", type=float, default=None, help="Override SRAM energy, pJ per word.")
@click.option("--e-rf", type=float, default=None, help="Override RF energy, pJ per word.")
@click.option("--e-mac", type=float, default=None, help="Override MAC energy, pJ per MAC.")
@click.option("--quiet", is_flag=True, help="No per-layer summary and no progress bar.")
def profile(arch: str, hw_spec: str, engine: str, granularity: str, out_dir: Path,
            emit_dir: Path | None, jobs: int, cache_dir: Path | None, e_dram: float | None,
            e_sram: float | None, e_rf: float | None, e_mac: float | None, quiet: bool) -> None:
    """Profile every layer of ARCH on HW and write the Eq. 6 energy table."""
    from ddi_energy.engines import get_engine
    from ddi_energy.hardware import load_hw
    from ddi_energy.profile import build_table, check_writable, metadata, row_specs, write_table
    from ddi_energy.scalesim_files import write_inputs
    from ddi_energy.summary import layer_summary, totals_summary
    from ddi_energy.walker import walk_arch

    start = time.perf_counter()
    layers = walk_arch(arch)
    overrides = _energy_overrides({"dram": e_dram, "sram": e_sram, "rf": e_rf, "mac": e_mac})
    hw, energy_note = load_hw(hw_spec, overrides)
    check_writable(out_dir)
    if emit_dir is not None:
        check_writable(emit_dir)
    specs = row_specs(layers, granularity)
    if emit_dir is not None:
        write_inputs(emit_dir, [(s.name, s.shape) for s in specs], hw)
        click.echo(f"wrote SCALE-Sim inputs for {len(specs)} rows to {emit_dir}/")
    click.echo(f"profiling {arch} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}, "
               f"{hw.word_bits}-bit); {energy_note}", err=True)
    table = build_table(specs, hw, get_engine(engine, cache_dir=cache_dir), jobs=jobs,
                        progress=not quiet)
    seconds = time.perf_counter() - start
    meta = metadata(arch=arch, hw=hw, energy_note=energy_note, engine=engine,
                    granularity=granularity, seconds=seconds, table=table)
    stem = f"{arch}_{hw.name}" + ("_layer" if granularity == "layer" else "")
    csv_path, json_path = write_table(table, meta, out_dir, stem)
    if not quiet:
        click.echo(layer_summary(table))
    click.echo(totals_summary(table))
    click.echo(f"wrote {csv_path} ({len(table)} rows) and {json_path} in {seconds:.1f} s")


@cli.command()
def models() -> None:
    """List the networks of the model zoo."""
    from ddi_energy.models.registry import list_models

    click.echo("\n".join(list_models()))


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn user errors and interrupts into one line and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="ddi-energy", standalone_mode=False)
    except DDIError as exc:
        click.echo(f"ddi-energy: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("ddi-energy: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("ddi-energy: interrupted; finished simulations are cached", err=True)
        sys.exit(130)
