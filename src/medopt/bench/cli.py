"""`medopt bench …`: hybrid placements over emulated links, the link profiles, the load generator on its own, and
the placement planner (``plan``: simulated placements and autoscaling settings against a p99 SLO).

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


@bench_app.command("plan")
@friendly_errors
def bench_plan(
    link: Annotated[str, typer.Option(help="Link profile name (see `medopt bench links`).")],
    slo_p99_ms: Annotated[float, typer.Option(help="Latency objective: p99 in milliseconds.")],
    rate: Annotated[float | None, typer.Option(help="Load in req/s (default: plan for 5, 20 and 80).")] = None,
    profiles: Annotated[Path | None, typer.Option(help="Placement profiles JSON (bench measurements).")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table YAML (default: the shipped prices.yaml).")] = None,
    model: Annotated[str | None, typer.Option(help="Plan for this model only (default: every profiled model).")] = None,
    links_file: Annotated[Path | None, typer.Option(help="Extra link profiles YAML.")] = None,
    objective: Annotated[str, typer.Option(help="cost: the cheapest option meeting the SLO; p99: the lowest p99.")
                         ] = "cost",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Pick the cheapest placement and autoscaling settings that meet a p99 SLO over a link (simulated)."""
    from medopt.bench.links.profiles import get_profile
    from medopt.bench.scaling.planner import PlanError, plan, to_deploy_overrides, to_inference_service_fields
    from medopt.bench.scaling.prices import load_prices
    from medopt.bench.scaling.regime import load_placement_profiles

    if profiles is None:
        raise PlanError("medopt bench plan needs --profiles FILE.json (placement profiles, e.g. "
                        "benchmarks/results/regime.profiles.json written by benchmarks/regime.py)")
    if not slo_p99_ms > 0:
        raise PlanError(f"--slo-p99-ms must be > 0, got {slo_p99_ms:g}")
    if rate is not None and not rate > 0:
        raise PlanError(f"--rate must be > 0 req/s, got {rate:g}")
    profile = get_profile(link, links_file)
    table = load_prices(prices)
    result = plan(profile, slo_p99_ms, rate, load_placement_profiles(profiles), table, model=model,
                  objective=objective)
    fields = to_inference_service_fields(result)
    if as_json:
        out = {**result.model_dump(mode="json"), "inference_service": fields,
               "deploy_overrides": to_deploy_overrides(result)}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return
    verdict = "meets" if result.meets_slo else "MISSES"
    typer.echo(f"plan: {result.placement} ({result.model}) over {link}: p99 {result.p99_ms:.0f} ms {verdict} "
                  f"{slo_p99_ms:g} ms, {result.cost_per_1000:.4g} {table.currency} per 1000 inferences")
    if fields:
        typer.echo("InferenceService: " + " ".join(f"{k}={v}" for k, v in fields.items()))
        typer.echo("deploy step: " + " ".join(f"--set {o}" for o in to_deploy_overrides(result)))
    for line in result.why:
        typer.echo(f"  - {line}")
