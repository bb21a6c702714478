"""`medopt bench …`: hybrid placements over emulated links, the link profiles, and the load generator on its own.

Registered on the main app with ``app.add_typer(bench_app, name="bench")``. Bad input (an unknown key in a load spec,
a negative rate, zero bandwidth, an unknown profile or split layer) prints one line and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from medopt.cli_common import ConfigArg, SetOpt, console, friendly_errors, load_cli_config

bench_app = typer.Typer(no_args_is_help=True, help="Hybrid edge/cloud evaluation: placements, links, load.")


@bench_app.command("run")
@friendly_errors
def bench_run(
    config: ConfigArg = None,
    set_: SetOpt = None,
    dataset: Annotated[str, typer.Option(help="Store key of the dataset artifact (its test split is used).")] = "",
    model: Annotated[str, typer.Option(help="Store key of the trained medopt model file.")] = "",
    compressed: Annotated[str | None, typer.Option(help="Store key of the compressed model (optional).")] = None,
    prefix: Annotated[str, typer.Option(help="Store prefix for the results.")] = "bench",
) -> None:
    """Measure the configured placements over the configured links for stored models (``bench`` section)."""
    from medopt.bench.hybrid import BenchError
    from medopt.bench.stage import run_bench
    from medopt.store import open_store

    if not dataset or not model:
        raise BenchError("medopt bench run needs --dataset KEY and --model KEY (keys of a finished run's artifacts)")
    cfg = load_cli_config(config, set_)
    result = run_bench(cfg, open_store(cfg.store), dataset_key=dataset, model_key=model, compressed_key=compressed,
                       prefix=prefix)
    for name, value in result.figures.items():
        console.print(f"{name}: {value:.4g}")
    console.print(f"results: {result.results.key}; report: {result.report.key}")


@bench_app.command("links")
@friendly_errors
def bench_links(file: Annotated[Path | None, typer.Option(help="YAML of link profiles.")] = None) -> None:
    """List the link profiles (RTT, jitter, rates, loss)."""
    from medopt.bench.links.profiles import load_profiles

    for name, profile in load_profiles(file).items():
        console.print(f"{name}: {profile}")


@bench_app.command("load")
@friendly_errors
def bench_load(spec: Annotated[Path, typer.Argument(help="YAML or JSON load spec (medopt.bench.loadgen.LoadSpec).")],
               samples: Annotated[bool, typer.Option(help="Include every request's latency.")] = False) -> None:
    """Run the load generator (its own process) and print its result as JSON."""
    import yaml

    from medopt.bench.loadgen import LoadGenError, LoadSpec, run_load

    try:
        data = yaml.safe_load(spec.read_text())
    except OSError as exc:
        raise LoadGenError(f"cannot read load spec {spec}: {exc.strerror}") from None
    from pydantic import ValidationError

    try:
        load = LoadSpec.model_validate({**(data or {}), "keep_samples": samples})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise LoadGenError(f"load spec {spec} at {where}: {msg}") from None
    sys.stdout.write(json.dumps(run_load(load), indent=1) + "\n")
