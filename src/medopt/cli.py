"""The `medopt` command line. Errors print one readable line and exit non-zero; details go to the run log."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from medopt.bench.cli import bench_app
from medopt.cli_common import ConfigArg, ConfigOpt, SetOpt, console, friendly_errors, load_cli_config
from medopt.serve.cli import serve_app
from medopt.store.cli import store_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="medopt: medical-image classifiers, end to end.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect data sources.")
pipeline_app = typer.Typer(no_args_is_help=True, help="Compile the KFP pipeline and submit it to a cluster.")
config_app = typer.Typer(no_args_is_help=True, help="Config helpers.")
compress_app = typer.Typer(no_args_is_help=True, help="Compression recipes.")
app.add_typer(data_app, name="data")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(config_app, name="config")
app.add_typer(compress_app, name="compress")
app.add_typer(store_app, name="store")
app.add_typer(bench_app, name="bench")
app.command("serve")(serve_app)

SCALARS = ("acc", "bacc", "auc", "f1_weighted", "precision_weighted", "recall_weighted", "avg")


def _preflight(cfg: Any) -> None:
    """Fail in seconds, before any step runs, on what would otherwise fail only after data loading or training.

    Checks the model and recipe names against their registries and a local run's device against this machine
    (a Ray run checks its workers and device before Ray starts).
    """
    from medopt.models import MODELS
    from medopt.train.seeding import resolve_device

    MODELS.get(cfg.model.name)
    if cfg.train.backend == "local":
        resolve_device(cfg.train.device)
    if cfg.compress.enabled:
        from medopt.compress.recipes import RECIPES

        for name in cfg.compress.recipes:
            RECIPES.get(name)
    if cfg.bench.enabled:
        from medopt.bench.preflight import check_bench

        check_bench(cfg)


def _metrics_table(metrics: dict[str, Any], ci: dict[str, Any] | None = None, title: str = "test metrics") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for name in SCALARS:
        if name in metrics:
            lo_hi = (ci or {}).get(name)
            table.add_row(name, f"{metrics[name]:.4f}", f"{lo_hi[0]:.3f} – {lo_hi[1]:.3f}" if lo_hi else "")
    return table


@app.command()
@friendly_errors
def run(config: ConfigArg = None, set_: SetOpt = None, runner: Annotated[str | None, typer.Option(
        help="kfp-local (default) or inprocess.")] = None) -> None:
    """Run every pipeline step (data, train, compress, federate, deploy, evaluate) on this machine."""
    from medopt.pipeline.runner import run_pipeline
    from medopt.pipeline.ui import PipelineProgress

    overrides = list(set_ or []) + ([f"runner={runner}"] if runner else [])
    cfg = load_cli_config(config, overrides)
    _preflight(cfg)
    console.print(f"[bold]medopt run[/] {cfg.name}: {cfg.model.name} on {cfg.data.source}, "
                  f"{cfg.train.epochs} epochs, runner {cfg.runner}")
    with PipelineProgress(console, epochs=cfg.train.epochs) as ui:
        outcome = run_pipeline(cfg, on_progress=ui.update)
    values = outcome.metrics
    console.print(_metrics_table(values["metrics"], values.get("ci")))
    console.print(f"run folder: {outcome.run_dir}")
    if outcome.report_path:
        console.print(f"report:     {outcome.report_path}")
    if outcome.bench:
        for name, value in outcome.bench.items():
            console.print(f"bench {name}: {value:.4g}")
    if outcome.bench_report_path:
        console.print(f"bench:      {outcome.bench_report_path}")
    console.print(f"artifacts:  {outcome.store_uri}/runs/{outcome.run_id}  ({outcome.seconds:.0f} s)")


@app.command()
@friendly_errors
def train(config: ConfigArg = None, set_: SetOpt = None) -> None:
    """Load the data and train the model in this process; store the dataset and the model."""
    from medopt.data.stage import run_data
    from medopt.pipeline import progress
    from medopt.pipeline.runner import captured_output, new_run_id, resolve_paths
    from medopt.pipeline.steps import run_prefix
    from medopt.pipeline.ui import PipelineProgress
    from medopt.store import open_store
    from medopt.train.stage import run_train

    cfg = resolve_paths(load_cli_config(config, set_), Path.cwd())
    _preflight(cfg)
    store = open_store(cfg.store)
    run_id = new_run_id(cfg)
    prefix, run_dir = run_prefix(run_id), Path(cfg.output_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    with PipelineProgress(console, epochs=cfg.train.epochs) as ui, captured_output(run_dir / "run.log", None):
        data = run_data(cfg.data, store, prefix=prefix, provenance=cfg.model_dump(mode="json"))
        result = run_train(cfg, store, dataset_key=data.manifest.key, prefix=prefix,
                           on_epoch_end=lambda e, row: ui.update(progress.epoch_event("train", e, cfg.train.epochs, row)))
    console.print(f"best {cfg.train.monitor} {result.fit.best_score:.4f} at epoch {result.fit.best_epoch}")
    console.print(f"dataset: {data.manifest.key}\nmodel:   {result.model.key}\nstore:   {store.uri}\n"
                  f"log:     {run_dir / 'run.log'}")


@app.command()
@friendly_errors
def evaluate(
    model: Annotated[str, typer.Option(help="Store key of the model (…/train/model.pt).")],
    dataset: Annotated[str, typer.Option(help="Store key of the dataset (…/data/dataset.npz).")],
    config: ConfigArg = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate a stored model on a stored dataset's test split and write the report."""
    from medopt.evaluate.stage import run_evaluate
    from medopt.pipeline.runner import resolve_paths
    from medopt.store import open_store

    cfg = resolve_paths(load_cli_config(config, set_), Path.cwd())
    store = open_store(cfg.store)
    prefix = model.rsplit("/train/", 1)[0] if "/train/" in model else f"evaluations/{cfg.name}"
    history = model.replace("/model.pt", "/history.json")
    result = run_evaluate(cfg, store, dataset_key=dataset, model_key=model, prefix=prefix,
                          history_key=history if store.exists(history) else None)
    console.print(_metrics_table(result.values["metrics"], result.values.get("ci")))
    if result.report:
        console.print(f"report: {store.uri}/{result.report.key}")


@data_app.command("inspect")
@friendly_errors
def data_inspect(
    config: ConfigArg = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full description as JSON.")] = False,
) -> None:
    """Load the configured data source and print its splits, classes and pixel statistics."""
    from medopt.data import describe_dataset, load_dataset
    from medopt.pipeline.runner import resolve_paths

    cfg = resolve_paths(load_cli_config(config, set_), Path.cwd())
    summary = describe_dataset(load_dataset(cfg.data))
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str, indent=2) + "\n")
        return
    console.print(f"[bold]{summary['source']}[/]  task {summary['task']}, {summary['num_classes']} classes, "
                  f"{summary['image_size'][0]}x{summary['image_size'][1]}x{summary['channels']} {summary['dtype']}")
    table = Table()
    for column in ("split", "count", *summary["class_names"], "pixel mean", "pixel std", "groups", "sites"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, split in summary["splits"].items():
        table.add_row(
            name, str(split["count"]), *(str(split["per_class"].get(c, 0)) for c in summary["class_names"]),
            ", ".join(f"{v:.3f}" for v in split["pixel_mean"]), ", ".join(f"{v:.3f}" for v in split["pixel_std"]),
            "yes" if split["has_groups"] else "no", "yes" if split["has_sites"] else "no",
        )
    console.print(table)


@pipeline_app.command("compile")
@friendly_errors
def pipeline_compile(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("pipelines/medopt_pipeline.yaml"),
) -> None:
    """Write the KFP pipeline YAML; resources, labels and images come from the config's kfp section at compile time."""
    from medopt.pipeline.runner import compile_pipeline

    cfg = load_cli_config(config, set_) if config or set_ else None
    console.print(f"wrote {compile_pipeline(output, cfg)}")


@pipeline_app.command("submit")
@friendly_errors
def pipeline_submit(
    host: Annotated[str, typer.Option(help="KFP API URL, e.g. http://localhost:8080 (a port-forward).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    experiment: Annotated[str | None, typer.Option(help="KFP experiment; default: the config's name.")] = None,
    run_name: Annotated[str | None, typer.Option(help="Run name; default: <name>-<UTC time>.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Profile namespace (multi-user KFP only).")] = None,
    service_account: Annotated[str | None, typer.Option(help="Default: the config's kfp.service_account.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where the compiled package is written; "
                                                "default: <output_dir>/kfp/<name>-pipeline.yaml.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compile, print the kfp command, submit nothing.")] = False,
) -> None:
    """Compile the pipeline with the config and create a run on a KFP cluster."""
    from datetime import datetime, timezone

    from medopt.pipeline.cluster import Submission, compile_for_cluster, config_text, kfp_command, submit

    cfg = load_cli_config(config, set_)
    package = compile_for_cluster(output or Path(cfg.output_dir) / "kfp" / f"{cfg.name}-pipeline.yaml", cfg)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    sub = Submission(host=host, package=package, experiment=experiment or cfg.name,
                     run_name=run_name or f"{cfg.name}-{stamp}", namespace=namespace,
                     service_account=service_account or cfg.kfp.service_account,
                     arguments={"config_yaml": config_text(cfg)})
    console.print(f"package: {package}")
    console.print(f"same run with the kfp CLI:\n  {kfp_command(sub, None if set_ else config)}", soft_wrap=True,
                  markup=False, highlight=False)
    if dry_run:
        return
    run_id = submit(sub)
    console.print(f"run {run_id} created in experiment {sub.experiment} (service account {sub.service_account})")
    console.print(f"{host.rstrip('/')}/#/runs/details/{run_id}", soft_wrap=True, markup=False, highlight=False)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the experiment config."""
    from medopt.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@config_app.command("show")
@friendly_errors
def config_show(config: ConfigArg = None, set_: SetOpt = None) -> None:
    """Print the resolved config (file + overrides + defaults) as YAML."""
    from medopt.config import dump_yaml

    sys.stdout.write(dump_yaml(load_cli_config(config, set_)))


@compress_app.command("recipes")
def compress_recipes() -> None:
    """List the named compression recipes that compress.recipes accepts."""
    from medopt.compress.recipes import RECIPES

    for name in RECIPES.names():
        console.print(name)


@app.command("models")
def models_list() -> None:
    """List the registered model names."""
    from medopt.models import MODELS

    for name in MODELS.names():
        console.print(name)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, prog_name="medopt", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    return 0
