"""The `ddi-energy` command line. Every user error ends as one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from ddi_energy.errors import DDIError, DDIWarning


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ddi-energy")
def cli() -> None:
    """Energy-aware dynamic inference: profile, train and report gated CNNs."""


ENGINE_CHOICE = click.Choice(["analytic", "scalesim"])
COUNTS_CHOICE = click.Choice(["scalesim", "physical"])
GRANULARITY_CHOICE = click.Choice(["channel", "layer"])
DEFAULT_JOBS = os.cpu_count() or 1
SWEEP_ROWS_SHOWN = 40  # a larger sweep prints its Pareto-optimal points only
CHANNEL_GROUP_HELP = ("Channels switched by one channel-gate output (the last group smaller "
                      "when it does not divide a width), or auto: the array dimension the "
                      "filters map to (columns under os and ws; 1 under is).")
COUNTS_HELP = ("Count model: scalesim (SCALE-Sim's counts, artefacts included) or physical (the "
               "same mapping as hardware spends it; see README, Count models).")


def _input_size(_ctx: click.Context, _param: click.Parameter, value: str | None
                ) -> tuple[int, ...] | None:  # fmt: skip
    if value is None:
        return None
    try:
        size = tuple(int(v) for v in value.split(","))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise click.BadParameter(f"{value!r}: expected C,H,W, three positive integers")
    return size


def _model_options(func):
    """--arch, or --model with its input size, name and the unpriced-ops switch."""
    options = [
        click.option("--arch", default=None, help="Network from the zoo (see `ddi-energy "
                     "models`)."),
        click.option("--model", "model_spec", default=None, metavar="FILE.py:FACTORY",
                     help="Your own network instead: FILE.py:FACTORY or package.module:FACTORY, "
                          "a function or class building the nn.Module with no arguments."),
        click.option("--input-size", callback=_input_size, default=None, metavar="C,H,W",
                     help="Input of --model (one image, e.g. 3,32,32) [default: the model's "
                          "input_size attribute]."),
        click.option("--name", default=None,
                     help="Table name of --model [default: the factory's name]."),
        click.option("--allow-unpriced", is_flag=True,
                     help="Profile a --model that runs FLOP-carrying ops no table row prices "
                          "(matmul, attention, conv3d, ...): leave them out, warn, and list "
                          "them in the metadata."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _workload(arch: str | None, model_spec: str | None, input_size: tuple[int, ...] | None,
              name: str | None, allow_unpriced: bool):  # fmt: skip
    from ddi_energy.tables.profile_model import workload_for

    return workload_for(arch, model_spec, input_size, name=name, allow_unpriced=allow_unpriced)


class _EnergyOrAuto(click.ParamType):
    """pJ per word, or `auto` (per-buffer energy from capacity)."""

    name = "PJ|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor auto", param, ctx)


def _energy_overrides(values: dict[str, float | str | None]) -> dict[str, float | str] | None:
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


@cli.command()
@_model_options
@click.option("--hw", "hw_spec", required=True,
              help="Hardware config: bundled name (eyeriss.yaml), YAML path or SCALE-Sim .cfg.")
@click.option("--engine", type=ENGINE_CHOICE, default="analytic", show_default=True,
              help="Where access counts come from: real SCALE-Sim, or its exact closed forms.")
@click.option("--counts", type=COUNTS_CHOICE, default="scalesim", show_default=True,
              help=COUNTS_HELP)
@click.option("--granularity", type=GRANULARITY_CHOICE, default="channel",
              show_default=True,
              help="channel: a row per active channel count of every gated layer; layer: full "
                   "layers only.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("cost_tables"),
              show_default=True,
              help="Directory for <arch>_<hw>[_physical].csv and .json.")
@click.option("--emit", "emit_dir", type=click.Path(path_type=Path), default=None,
              help="Also write the SCALE-Sim topology.csv, scalesim.cfg and layout.csv of the "
                   "table's rows here.")
@click.option("--jobs", type=click.IntRange(min=1), default=DEFAULT_JOBS,
              show_default="number of CPUs", help="Processes for SCALE-Sim runs.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="SCALE-Sim result cache [default: $DDI_ENERGY_CACHE or ~/.cache/ddi-energy].")
@click.option("--e-dram", type=float, default=None, help="Override DRAM energy, pJ per word.")
@click.option("--e-sram", type=_EnergyOrAuto(), default=None,
              help="Override SRAM energy, pJ per word, or auto (from each buffer's capacity).")
@click.option("--e-rf", type=float, default=None, help="Override RF energy, pJ per word.")
@click.option("--e-mac", type=float, default=None, help="Override MAC energy, pJ per MAC.")
@click.option("--quiet", is_flag=True, help="No per-layer summary and no progress bar.")
def profile(arch: str | None, model_spec: str | None, input_size: tuple[int, ...] | None,
            name: str | None, allow_unpriced: bool, hw_spec: str, engine: str, counts: str,
            granularity: str, out_dir: Path, emit_dir: Path | None, jobs: int,
            cache_dir: Path | None, e_dram: float | None, e_sram: float | str | None,
            e_rf: float | None, e_mac: float | None, quiet: bool) -> None:  # fmt: skip
    """Profile every layer of a zoo ARCH or your own --model on HW and write the Eq. 6 energy
    table."""
    from ddi_energy.engines.registry import count_engine
    from ddi_energy.engines.scalesim_files import write_inputs
    from ddi_energy.files import cleanup_on_failure, prepare_dirs
    from ddi_energy.hardware.config import load_hw
    from ddi_energy.reporting.table_summary import layer_summary, sram_text, totals_summary
    from ddi_energy.tables.build import run_profile, table_stem
    from ddi_energy.tables.io import write_table
    from ddi_energy.tables.rows import row_specs

    count_engine(counts, engine)  # a bad combination stops here, before any work or output
    work = _workload(arch, model_spec, input_size, name, allow_unpriced)
    overrides = _energy_overrides({"dram": e_dram, "sram": e_sram, "rf": e_rf, "mac": e_mac})
    hw, energy_note = load_hw(hw_spec, overrides)
    with cleanup_on_failure(out_dir, emit_dir):
        prepare_dirs(out_dir, *([emit_dir] if emit_dir is not None else []))
        if emit_dir is not None:
            specs = row_specs(work.layers, granularity)
            rows = [row for spec in specs for row in spec.sim_layers()]
            write_inputs(emit_dir, rows, hw)
            click.echo(f"wrote SCALE-Sim inputs for {len(specs)} rows ({len(rows)} SCALE-Sim "
                       f"layers) to {emit_dir}/")
        source = f"the {engine} engine" if counts == "scalesim" else "the physical count model"
        click.echo(f"profiling {work.name} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}, "
                   f"{hw.word_bits}-bit) with {source}; {energy_note}; "
                   f"{sram_text(hw.sram_pj(), hw.sram_auto)}", err=True)
        table, meta = run_profile(work.name, hw, energy_note, engine=engine, counts=counts,
                                  granularity=granularity, jobs=jobs, progress=not quiet,
                                  cache_dir=cache_dir, layers=work.layers,
                                  model=work.model)  # fmt: skip
        stem = table_stem(work.name, hw, granularity, counts)
        csv_path, json_path = write_table(table, meta, out_dir, stem)
    if not quiet:
        click.echo(layer_summary(table))
    click.echo(totals_summary(table))
    click.echo(f"wrote {csv_path} ({len(table)} rows) and {json_path} in "
               f"{meta['seconds']:.1f} s")


@cli.command()
@_model_options
@click.option("--hw", "hw_spec", required=True, help="Hardware config (name, YAML or .cfg).")
@click.option("--granularity", type=GRANULARITY_CHOICE, default="channel", show_default=True)
@click.option("--counts", type=COUNTS_CHOICE, default="scalesim", show_default=True,
              help="scalesim: the analytic engine must equal SCALE-Sim in every column; "
                   "physical: the physical counts must keep SCALE-Sim's cycles and filter "
                   "traffic and never exceed its other counts.")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Compare this many random unique shapes [default: all].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--jobs", type=click.IntRange(min=1), default=DEFAULT_JOBS,
              show_default="number of CPUs", help="Processes for SCALE-Sim runs.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="SCALE-Sim result cache [default: $DDI_ENERGY_CACHE or ~/.cache/ddi-energy].")
def validate(arch: str | None, model_spec: str | None, input_size: tuple[int, ...] | None,
             name: str | None, allow_unpriced: bool, hw_spec: str, granularity: str, counts: str,
             sample: int | None, seed: int, jobs: int, cache_dir: Path | None) -> None:  # fmt: skip
    """Check a count model against real SCALE-Sim, column by column (exit 1 on a violation)."""
    from ddi_energy.hardware.config import load_hw
    from ddi_energy.tables.rows import row_specs
    from ddi_energy.tables.validate import validate as run_validation

    work = _workload(arch, model_spec, input_size, name, allow_unpriced)
    hw, _ = load_hw(hw_spec)
    specs = row_specs(work.layers, granularity)
    result = run_validation(specs, hw, counts=counts, sample=sample, seed=seed, jobs=jobs,
                            cache_dir=cache_dir)  # fmt: skip
    click.echo(f"{work.name} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}), {counts} counts: "
               f"{result.shapes} unique shapes ({result.rows} of {len(specs)} table rows) "
               "compared")  # fmt: skip
    click.echo(result.per_column.to_string(index=False))
    if not result.ok:
        click.echo(f"\n{len(result.mismatches)} violating values:")
        click.echo(result.mismatches.head(50).to_string(index=False))
        sys.exit(1)
    if counts == "scalesim":
        click.echo("0 mismatches: the analytic engine equals SCALE-Sim on every compared row")
    else:
        click.echo("0 violations: the physical counts keep SCALE-Sim's cycles and filter traffic "
                   "and never exceed its other counts on every compared row")


@cli.command()
@click.option("--arch", required=True, help="Network from the zoo.")
@click.option("--hw", "hw_spec", required=True, help="Base hardware config (name, YAML or .cfg).")
@click.option("--vary", "vary_items", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A hardware key and its values, e.g. array.rows=8,16,32 (repeatable; the "
                   "sweep is the cartesian product).")
@click.option("--engine", type=ENGINE_CHOICE, default="analytic", show_default=True)
@click.option("--counts", type=COUNTS_CHOICE, default="scalesim", show_default=True,
              help=COUNTS_HELP)
@click.option("--granularity", type=GRANULARITY_CHOICE, default="channel", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("sweeps"),
              show_default=True, help="Directory for the summary CSV (+ JSON) and the tables.")
@click.option("--summary-only", is_flag=True,
              help="Write only the summary (energy, cycles, Pareto front per point), no table "
                   "per point: counts only the full layers, the rows the totals read.")
@click.option("--jobs", type=click.IntRange(min=1), default=DEFAULT_JOBS,
              show_default="number of CPUs",
              help="Processes that share the design points, at most one per 25 points with "
                   "--summary-only or per 2 with tables (with --engine scalesim: the processes "
                   "of each point's SCALE-Sim runs).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="SCALE-Sim result cache [default: $DDI_ENERGY_CACHE or ~/.cache/ddi-energy].")
def sweep(arch: str, hw_spec: str, vary_items: tuple[str, ...], engine: str, counts: str,
          granularity: str, out_dir: Path, summary_only: bool, jobs: int,
          cache_dir: Path | None) -> None:  # fmt: skip
    """Profile ARCH on every hardware design point of the --vary grid."""
    from ddi_energy.engines.registry import count_engine
    from ddi_energy.files import check_writable, cleanup_on_failure
    from ddi_energy.hardware.config import load_hw
    from ddi_energy.models.zoo import walk_arch
    from ddi_energy.tables.sweep import design_points, parse_vary, run_sweep

    walk_arch(arch)
    base, note = load_hw(hw_spec)
    vary = parse_vary(vary_items)
    points = design_points(base, vary)
    count_engine(counts, engine)
    with cleanup_on_failure(out_dir):
        check_writable(out_dir)
        source = f"{engine} engine" if counts == "scalesim" else "physical counts"
        click.echo(f"sweeping {arch} over {len(points)} design points of {base.name} ({source})",
                   err=True)
        summary, path = run_sweep(arch, base, note, vary, out_dir, engine=engine, counts=counts,
                                  granularity=granularity, summary_only=summary_only, jobs=jobs,
                                  cache_dir=cache_dir)  # fmt: skip
    shown = summary if len(summary) <= SWEEP_ROWS_SHOWN else summary[summary["pareto"]]
    if len(shown) < len(summary):
        click.echo(f"the {len(shown)} Pareto-optimal points (energy vs cycles) of {len(summary)}:")
    with pd_display():
        click.echo(shown.drop(columns=["table", "pareto"]).to_string(index=False))
    tables = "" if summary_only else f"{len(points)} tables and "
    click.echo(f"wrote {tables}{path} ({int(summary['pareto'].sum())} Pareto-optimal points)")


@cli.command("regenerate-tables")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Directory [default: the shipped cost_tables/].")
def regenerate_tables(out_dir: Path | None) -> None:
    """Rebuild the shipped tables: every CIFAR zoo network on every bundled config."""
    from ddi_energy.files import check_writable
    from ddi_energy.tables.io import shipped_dir
    from ddi_energy.tables.regenerate import regenerate_shipped

    out_dir = out_dir or shipped_dir()
    check_writable(out_dir)
    paths = regenerate_shipped(out_dir)
    click.echo(f"wrote {len(paths)} tables to {out_dir}")


@cli.command()
@click.option("--arch", required=True, help="Network from the zoo.")
@click.option("--gating", required=True, type=click.Choice(
    ["none", "layer", "channel-cnn", "channel-rnn", "mgl2s"]), help="Gating mode.")
@click.option("--exits", is_flag=True, help="Add the RADI exit branches.")
@click.option("--hw", "hw_spec", default=None,
              help="Also price energy and cycles on this hardware config (profiled now with "
                   "the analytic engine).")
@click.option("--counts", type=COUNTS_CHOICE, default="scalesim", show_default=True,
              help="Count model of the table profiled from --hw.")
@click.option("--cost-table", "table_spec", default=None,
              help="Price with this cost table instead: a CSV path or a shipped name such as "
                   "resnet74_eyeriss or resnet74_eyeriss_physical.")
@click.option("--channel-group", default="1", show_default=True,
              help=CHANNEL_GROUP_HELP)
@click.option("--per-unit/--no-per-unit", default=True, show_default=True,
              help="Print the per-unit table.")
def inspect(arch: str, gating: str, exits: bool, hw_spec: str | None, counts: str,
            table_spec: str | None, channel_group: str, per_unit: bool) -> None:  # fmt: skip
    """FLOPs (and energy) per unit of a gated ARCH, the gates' overheads, and totals."""
    from ddi_energy.costs.channel_groups import resolve_channel_group
    from ddi_energy.costs.cost_model import cost_model
    from ddi_energy.models.zoo import get_model
    from ddi_energy.reporting.overheads import totals_report, unit_report
    from ddi_energy.reporting.table_summary import table_models
    from ddi_energy.tables.lookup import cost_table_for

    if hw_spec and table_spec:
        raise DDIError("give --hw or --cost-table, not both")
    table = cost_table_for(arch, hw=hw_spec, cost_table=table_spec, counts=counts,
                           who="profiled now")  # fmt: skip
    if table is not None:
        click.echo(f"cost table {table.attrs['path']}: {table_models(table.attrs['meta'])}")
    group = resolve_channel_group(channel_group, table)
    if channel_group != "1":
        click.echo(f"channel groups: {group} channel{'s' * (group != 1)} per channel-gate output")
    model = get_model(arch, gating=gating, exits=exits, channel_group=group)
    costs = cost_model(model, table)
    shown = [m for m in ("flops", "energy_pj") if m in costs.metrics]
    units = unit_report(costs)
    if per_unit:
        columns = ["unit", "channels", "groups", *(c for m in shown for c in (
            m, f"layer_gate_{m}_%", f"channel_gate_{m}_%"))]
        with pd_display():
            click.echo(units[columns].to_string(index=False))
    click.echo(f"\n{arch}, gating {gating}{', with exits' if exits else ''}: gate overhead "
               "in % of the unit it gates (median over units)")
    for m in shown:
        click.echo(f"  {m:<10} layer gate {units[f'layer_gate_{m}_%'].median():.3f} %   "
                   f"channel gate {units[f'channel_gate_{m}_%'].median():.3f} %")
    totals = totals_report(costs)
    with pd_display():
        click.echo("\ntotals at full execution (% of the plain network):")
        click.echo(totals[[c for m in shown for c in (m, f"{m}_%")]].to_string())


def _train_options(func):
    """One option per TrainConfig field (default None: the config file or the paper's value)."""
    from ddi_energy.training.config import TrainConfig

    helps = {
        "arch": "Network from the zoo.", "gating": "none | layer | channel-cnn | channel-rnn | "
        "mgl2s.", "data": "synthetic (default, offline) | cifar10 | folder (in memory) | "
        "imagenet (streamed, ImageNet augmentation).",
        "data_dir": "cifar-10-batches-py directory, or a class-folder root "
        "(DIR/train/<class>/*, DIR/val/<class>/*).",
        "workers": "Processes decoding and augmenting images for --data imagenet (0: none).",
        "amp": "Mixed precision: autocast to bfloat16 on CPU, float16 with a grad scaler on "
        "CUDA.",
        "loss": "Resource loss: flops | energy | latency (energy/latency need --hw or "
        "--cost-table).", "hw": "Hardware config: its cost table is profiled at start.",
        "cost_table": "Cost table name (resnet20_eyeriss, resnet20_eyeriss_physical) or CSV "
        "path.", "counts": "Count model of the table profiled from --hw: scalesim | physical.",
        "target_skip": "Fraction of the backbone's cost (in the loss's metric) to skip.",
        "alpha": "Weight of E (a fraction of the plain backbone's cost) in CE ± α·E.",
        "preset": "Named schedule under the options and --config: quick (the defaults, CPU "
        "minutes) | paper-cifar (the paper's 2,000 + 50,000 + 50,000 steps at batch 128, "
        "α 0.0673) | paper-imagenet (densenet201 on --data imagenet, 2,000 steps + 90 + 90 "
        "epochs at batch 512, α 0.0343; give --data-dir and --pretrained).",
        "steps": "IADI step-2 (joint) steps.", "gate_steps": "IADI step-1 (gates only) steps.",
        "pretrain_steps": "Backbone pre-training steps.",
        "ddi_steps": "DDI-stage steps (exits added); 0 for no exits.",
        "epochs": "If > 0, IADI step 2 and the DDI stage take this many epochs.",
        "out": "Run directory.", "device": "cpu, cuda, cuda:1, ...",
        "lr_schedule": "cosine (decays to 0 over each stage) | constant.",
        "bn_batches": "Precise BN at the end: recompute BN statistics on this many un-augmented "
        "training batches (0: off).",
        "init": "Start from this checkpoint or run directory (same arch and gating), e.g. a "
        "pre-trained backbone.",
        "pretrained": "Start the backbone from these torchvision-layout weights (a state-dict "
        "file, e.g. torchvision's densenet201 or resnet50 .pth); gates and exits start fresh.",
    }  # fmt: skip
    for f in reversed(TrainConfig.__dataclass_fields__.values()):
        opt = "--" + f.name.replace("_", "-")
        help_text = helps.get(f.name, "") + f" [default: {f.default}]"
        if str(f.type) == "bool":
            func = click.option(f"{opt}/--no-{opt[2:]}", f.name, default=None,
                                help=help_text)(func)  # fmt: skip
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        func = click.option(opt, f.name, type=kind, default=None, help=help_text)(func)
    return func


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML run config (keys as the options below); options override it.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@_train_options
def train(config_path: Path | None, resume: bool, **options) -> None:
    """Train a gated network: pre-train, IADI steps 1 and 2, DDI stage (the paper's recipe)."""
    from ddi_energy.files import cleanup_on_failure
    from ddi_energy.training.config import load_config
    from ddi_energy.training.loop import train as run_training

    if resume and config_path is None:
        run_dir = Path(options.get("out") or "runs/run")
        if (run_dir / "config.yaml").exists():
            config_path = run_dir / "config.yaml"
    cfg = load_config(config_path, options)
    checkpoint = Path(cfg.out) / "checkpoints" / "last.pt"
    with cleanup_on_failure(Path(cfg.out), keep=checkpoint.exists):  # resumable: kept
        run_dir = run_training(cfg, resume=resume)
    click.echo(f"trained {cfg.arch} ({cfg.gating}) in {run_dir}; evaluate with "
               f"`ddi-energy eval --run {run_dir}`")


@cli.command("eval")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (uses checkpoints/final.pt, else last.pt).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="A checkpoint file instead of a run directory.")
@click.option("--hw", "hw_spec", default=None,
              help="Price energy on this hardware config [default: the run's, else eyeriss].")
@click.option("--cost-table", "table_spec", default=None, help="Or with this cost table.")
@click.option("--flops-only", is_flag=True, help="FLOPs only: no cost table is profiled or "
              "read, no energy or cycles (runs trained on --loss flops).")
@click.option("--budgets", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0", show_default=True,
              help="Hard budgets for exit models, as fractions of the plain network's cost.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where report.json and the CSVs go [default: the run directory].")
def evaluate(run_dir: Path | None, checkpoint: Path | None, hw_spec: str | None,
             table_spec: str | None, flops_only: bool, budgets: str, device: str,
             out_dir: Path | None) -> None:
    """Accuracy, FLOPs and energy savings, skip ratios and budgets of a trained network."""
    from ddi_energy.files import cleanup_on_failure
    from ddi_energy.reporting.report_text import print_report
    from ddi_energy.training.evaluate import evaluate as run_evaluation
    from ddi_energy.training.evaluate import load_run

    try:
        fractions = tuple(float(b) for b in budgets.split(","))
    except ValueError:
        raise DDIError(f"--budgets {budgets!r}: expected fractions like 0.25,0.5,1") from None
    if any(not 0 < b for b in fractions):
        raise DDIError(f"--budgets {budgets!r}: fractions must be > 0")
    cfg, state = load_run(run_dir, checkpoint)
    report = run_evaluation(cfg, state, hw=hw_spec, cost_table=table_spec, budgets=fractions,
                            device=device, flops_only=flops_only)
    out_dir = out_dir or run_dir or checkpoint.parent
    with cleanup_on_failure(out_dir):
        paths = report.write(out_dir)
    click.echo(print_report(report))
    click.echo(f"wrote {', '.join(p.name for p in paths)} to {out_dir}")


def _split(text: str | None, kind: type, option: str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DDIError(f"{option} {text!r}: expected a comma-separated list of "
                       f"{kind.__name__} values") from None


def _seeds(text: str | None) -> int | list[int] | None:
    """`--seeds 3` (a number of seeds) or `--seeds 2,5` (a list)."""
    values = _split(text, int, "--seeds")
    return values if text is None or "," in text or not values else values[0]


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML study config (out, hw, losses, targets, pretrain_steps, train: {...}).")
@click.option("--out", default=None, help="Study directory [default: runs/study].")
@click.option("--hw", default=None, help="Hardware config for training and evaluation "
              "[default: eyeriss].")
@click.option("--losses", default=None, help="Resource losses to compare [default: flops,energy].")
@click.option("--targets", default=None, help="Skip targets [default: 0.3,0.5,0.7].")
@click.option("--pretrain-steps", type=int, default=None,
              help="Steps of the shared backbone [default: 300].")
@click.option("--seeds", default=None,
              help="Seeds: a number N (0..N-1) or a comma-separated list (e.g. 2,3); every seed "
                   "trains its own backbone and runs [default: 1].")
@click.option("--channel-group", "channel_groups", default=None,
              help="Channel groups to compare, comma-separated: numbers or auto (the array "
                   "dimension the filters map to) [default: 1].")
@click.option("--arch", default=None, help="Network [default: resnet8].")
@click.option("--data", default=None, help="synthetic (default) | cifar10 | folder.")
@click.option("--data-dir", default=None, help="Dataset directory for cifar10 / folder.")
@click.option("--steps", type=int, default=None, help="IADI step-2 steps per run [default: 300].")
@click.option("--counts", type=COUNTS_CHOICE, default=None,
              help="Count model of the tables profiled from --hw [default: scalesim].")
@click.option("--alpha", type=float, default=None,
              help="Weight of E, a fraction of the plain backbone's cost [default: 1.5].")
@click.option("--device", default=None, help="cpu, cuda, ... [default: cpu].")
def study(config_path: Path | None, out: str | None, hw: str | None, losses: str | None,
          targets: str | None, pretrain_steps: int | None, seeds: str | None,
          channel_groups: str | None, **train: object) -> None:
    """Fig. 12: train with each loss at each target, evaluate, plot accuracy vs savings."""
    from ddi_energy.experiments.study import load_study_config, run_study
    from ddi_energy.files import cleanup_on_failure

    overrides = {"out": out, "hw": hw, "losses": _split(losses, str, "--losses"),
                 "targets": _split(targets, float, "--targets"),
                 "pretrain_steps": pretrain_steps,
                 "seeds": _seeds(seeds),
                 "channel_groups": _split(channel_groups, str, "--channel-group"),
                 "train": {k: v for k, v in train.items() if v is not None}}  # fmt: skip
    cfg = load_study_config(config_path, overrides)
    out_dir = Path(cfg.out)
    resumable = "seed*/*/checkpoints/last.pt"
    with cleanup_on_failure(out_dir, keep=lambda: any(out_dir.glob(resumable))):
        table, figures = run_study(cfg)  # finished runs are kept: a rerun continues from them
    with pd_display():
        shown = ["loss", "target_skip", "counts", "channel_group", "seeds",
                 *(f"{c}_{s}" for c in ("accuracy", "flops_savings", "energy_savings",
                                        "cycles_savings") for s in ("mean", "std"))]  # fmt: skip
        click.echo(table[shown].to_string(index=False))
    click.echo(f"wrote {', '.join(str(Path(cfg.out) / f) for f in STUDY_FILES)} and "
               f"{', '.join(str(f) for f in figures)}")


STUDY_FILES = ("runs.csv", "table1.csv", "comparison.csv", "matched_flops.csv")


class _ManyValues(click.Command):
    """`--runs A B C` means `--runs A --runs B --runs C` (for the options in `many`)."""

    many = ("--runs", "--table", "--sweep")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        spread: list[str] = []
        current = None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in self.many and i + 1 < len(args):
                spread += args[i:i + 2]
                current, i = arg, i + 2
                continue
            if current and not arg.startswith("-"):
                spread += [current, arg]
            else:
                current = arg.split("=", 1)[0] if arg.split("=", 1)[0] in self.many else None
                spread.append(arg)
            i += 1
        return super().parse_args(ctx, spread)


@cli.command(cls=_ManyValues)
@click.option("--runs", "run_dirs", multiple=True, type=click.Path(path_type=Path),
              metavar="DIR [DIR...]", help="Evaluated run directories (with report.json).")
@click.option("--table", "tables", multiple=True, metavar="TABLE [TABLE...]",
              help="Cost tables: shipped names (resnet20_eyeriss) or CSV paths.")
@click.option("--sweep", "sweeps", multiple=True, type=click.Path(path_type=Path),
              metavar="CSV [CSV...]", help="Summary CSVs of `ddi-energy sweep`.")
@click.option("--layers", default=None, metavar="NAME,NAME",
              help="Layers of the staircase plot [default: the first gated conv1 of each "
                   "stage].")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              metavar="FIGDIR", help="Directory for the figures (created if missing).")
def plot(run_dirs: tuple[Path, ...], tables: tuple[str, ...], sweeps: tuple[Path, ...],
         layers: str | None, out_dir: Path) -> None:
    """Draw every figure the inputs support, as PNG and PDF: accuracy vs savings, skip
    ratios and budgets of runs; energy by memory level and cost vs active channels of tables;
    energy, cycles and utilization per design point of sweeps."""
    from ddi_energy.files import cleanup_on_failure
    from ddi_energy.reporting.plots import plot_all

    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    with cleanup_on_failure(out_dir):
        result = plot_all(run_dirs, tables, sweeps, out_dir, layers=names)
    stems = dict.fromkeys(p.stem for p in result.written)
    click.echo(f"wrote {len(stems)} figures (.png and .pdf) to {out_dir}:")
    for stem in stems:
        click.echo(f"  {stem}")
    if result.tables:
        click.echo("tables:")
        for line in result.tables:
            click.echo(f"  {line}")
    if result.skipped:
        click.echo("skipped:")
        for line in result.skipped:
            click.echo(f"  {line}")


@cli.command()
def models() -> None:
    """List the networks of the model zoo."""
    from ddi_energy.models.zoo import list_models

    click.echo("\n".join(list_models()))


def pd_display():
    """Wide, unwrapped pandas printing for summary tables."""
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50,
                             "display.float_format", "{:.4g}".format)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings as one line on stderr; anything else as Python shows it."""
    if issubclass(category, DDIWarning):
        click.echo(f"ddi-energy: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn user errors and interrupts into one line and a non-zero exit."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        _run(argv)


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="ddi-energy", standalone_mode=False)
    except DDIError as exc:
        click.echo(f"ddi-energy: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("ddi-energy: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # bad options: one line, with the fix click suggests
        command = f" {exc.ctx.command_path.removeprefix('ddi-energy').strip()}" if getattr(
            exc, "ctx", None) and exc.ctx.parent else ""
        click.echo(f"ddi-energy{command}: error: {exc.format_message()} (see --help)", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("ddi-energy: interrupted; finished simulations are cached", err=True)
        sys.exit(130)
