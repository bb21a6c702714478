"""Federated vs centralized training on real PneumoniaMNIST with 3 simulated hospitals (issue 5's closing numbers).

    python benchmarks/federate.py [--quick | --smoke] [--model resnet18] [--rounds 10] [--seeds 3]
        [--train-samples N] [--mu MU | --mu-grid 0.01 0.1 1] [--overhead-repeats 5]

For IID and Dirichlet(0.3) partitions: centralized training on the union of the hospitals' training splits vs
FedAvg vs FedProx at equal total epochs (rounds x 1 local epoch = centralized epochs), each run with --seeds training
seeds (model initialisation and shuffling; the partition is the same for every seed, data.seed 0). Every run's final
model is scored on the global held-out test split (balanced accuracy, AUC) and on the validation split: the union of
the hospitals' own validation splits, which no arm trains on. Reported per arm: mean, sd and the per-seed values.
The goals are judged on the means; the per-seed paired gaps (same seed in both arms) and their sd are in each goal.

Training, the same for every arm: Adam 1e-3, batch 64, one cosine cycle over the rounds (train.scheduler
cosine_warm_restarts with t0 = rounds, stepped per batch: the clients continue it across rounds, the centralized
trainer runs it over its epochs), a class-weighted loss (inverse class frequency of the data each trainer holds: the
pooled split centrally, each hospital's own split in federation), since balanced accuracy is what is scored, and the
BatchNorm statistics re-estimated on the trainer's own training data after training (as every client does after its
local epochs). No arm selects an epoch. Without the class weights, label skew left the federated models well ranked
(AUC within 0.02 of centralized) but with a skewed operating point, 12-14 points of balanced accuracy behind.

FedProx mu is chosen by this benchmark, per partition, on the VALIDATION split (never test): one FedProx run per mu
of --mu-grid with the first seed, the mu with the best validation balanced accuracy is kept and the grid, its
validation scores and the choice are recorded; the other seeds then run with that mu. --mu fixes it instead (the
JSON then says it was fixed, not selected).

Federation overhead: the median wall time of a federated round (rounds after the first, which starts Ray's actors)
over the median of the same round's work in one process without Flower or Ray (each hospital's local epoch and
evaluation in turn, plus the global test pass), both timed by the harness, interleaved (a short federation and a
local round alternate, order rotated, --overhead-repeats each), as a ratio of medians with a paired bootstrap CI, on
the Dirichlet partition with FedProx at the chosen mu.

Model: resnet18 with the ImageNet stem at 28 px by default. At 28 px the 7x7/2 stem and max-pool shrink the image
to 7x7 at once, so an epoch of ~3000 images takes seconds on 2 cores while it is still a real ResNet (BatchNorm
statistics are federated too); --quick uses tiny_resnet on a subsample, --smoke tiny_cnn on a few dozen images.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, LoadMonitor, add_mode_flags, goal, mode_of, print_table, write_results

PARTITIONS = ("iid", "dirichlet")
METHODS = ("centralized", "fedavg", "fedprox")
MU_GRID = (0.01, 0.1, 1.0)
OVERHEAD_PARTITION = "dirichlet"
VAL_SPLIT = "the union of the hospitals' own validation splits (federate.client_split val; never the global test split)"
COLUMNS = ["partition", "method", "seed", "mu", "test_bacc", "test_auc", "val_bacc", "wall_s", "comm_mb"]
SUMMARY_COLUMNS = ["partition", "method", "seeds", "test_bacc", "test_auc", "val_bacc", "wall_s"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The run's settings after the mode's defaults are applied."""

    mode: str
    model: str
    rounds: int
    samples: int | None
    seeds: tuple[int, ...]
    mu: float | None
    mu_grid: tuple[float, ...]
    overhead_rounds: int
    overhead_repeats: int
    overhead_warmup: int
    overrides: tuple[str, ...]


MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"model": "resnet18", "rounds": 10, "samples": None, "seeds": 3, "overhead_repeats": 5, "warmup": 1,
             "mu_grid": MU_GRID},
    "quick": {"model": "tiny_resnet", "rounds": 3, "samples": 600, "seeds": 2, "overhead_repeats": 5, "warmup": 1,
              "mu_grid": MU_GRID},
    "smoke": {"model": "tiny_cnn", "rounds": 2, "samples": 48, "seeds": 1, "overhead_repeats": 2, "warmup": 0,
              "mu_grid": (0.1,)},
}


def _positive(text: str) -> int:
    """argparse type: an int >= 1 (a bad value is a usage error, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mode_flags(p)
    p.add_argument("--model", default=None, help="default resnet18 (quick: tiny_resnet; smoke: tiny_cnn)")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="rounds = centralized epochs (default 10; quick 3; smoke 2)")
    p.add_argument("--train-samples", type=_positive, default=None,
                   help="subsample the training split (default: all; quick 600; smoke 48)")
    p.add_argument("--seeds", type=_positive, default=None, help="training seeds per arm (default 3; quick 2; smoke 1)")
    p.add_argument("--mu", type=float, default=None,
                   help="fix FedProx mu instead of choosing it on validation from --mu-grid")
    p.add_argument("--mu-grid", type=float, nargs="+", default=None,
                   help="FedProx mu candidates, chosen on validation balanced accuracy (default 0.01 0.1 1; smoke 0.1)")
    p.add_argument("--overhead-rounds", type=_positive, default=3,
                   help="rounds of each short federation timed for the overhead (>= 2: round 1 is not timed)")
    p.add_argument("--overhead-repeats", type=_positive, default=None,
                   help="interleaved repeats of the overhead arms (default 5; smoke 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (repeatable), e.g. train.optimizer=sgd")
    args = p.parse_args()
    if args.overhead_rounds < 2:
        p.error(f"--overhead-rounds must be >= 2 (round 1 starts Ray and is not timed), got {args.overhead_rounds}")
    if args.mu is not None and args.mu < 0:
        p.error(f"--mu must be >= 0, got {args.mu}")
    return args


def _plan(args: argparse.Namespace) -> Plan:
    mode = mode_of(args)
    d = MODE_DEFAULTS[mode]
    return Plan(mode=mode, model=args.model or d["model"], rounds=args.rounds or d["rounds"],
                samples=args.train_samples or d["samples"], seeds=tuple(range(args.seeds or d["seeds"])),
                mu=args.mu, mu_grid=tuple(args.mu_grid or d["mu_grid"]), overhead_rounds=args.overhead_rounds,
                overhead_repeats=args.overhead_repeats or d["overhead_repeats"], overhead_warmup=d["warmup"],
                overrides=tuple(args.overrides))


def _config(plan: Plan, partition: str, strategy: str, run_root: Path, *, seed: int = 0, mu: float = 0.1,
            rounds: int | None = None) -> Any:
    from medopt.config import load_config

    return load_config(None, [
        "data.source=medmnist", f"data.path={SHARED_DATA / 'pneumoniamnist.npz'}",
        "data.class_names=[normal, pneumonia]", "data.preprocess.image_size=28",
        f"data.partition.kind={partition}", "data.partition.alpha=0.3", "data.partition.num_clients=3",
        f"model.name={plan.model}", "train.batch_size=64", "train.optimizer=adam", "train.lr=0.001",
        "train.scheduler.kind=cosine_warm_restarts", f"train.scheduler.t0={plan.rounds}",
        "train.class_weighting=true", "train.device=cpu", f"train.seed={seed}",
        f"federate.rounds={rounds or plan.rounds}", "federate.local_epochs=1",
        f"federate.strategy={strategy}", f"federate.proximal_mu={mu}", "federate.min_available_clients=3",
        f"output_dir={run_root}", *plan.overrides,
    ])


def _dataset(cfg: Any, samples: int | None) -> Any:
    from medopt.data.load import load_dataset
    from medopt.data.splits import stratified_subsample

    ds = load_dataset(cfg.data)
    if samples is None:
        return ds
    idx = stratified_subsample(ds.train.labels, samples, seed=0)
    return dataclasses.replace(ds, train=dataclasses.replace(ds.train, images=ds.train.images[idx],
                                                             labels=ds.train.labels[idx], groups=None, sites=None))


def _pooled(clients: list[Any], split: str) -> Any:
    """One split of every hospital, concatenated (the centralized training data; the validation split)."""
    import numpy as np

    from medopt.data.types import ArraySplit

    parts = [getattr(c, split) for c in clients]
    return ArraySplit(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def _geometry(cfg: Any, dataset: Any) -> Any:
    """The shared model's geometry, from the pooled dataset (a label-skewed hospital may lack a class)."""
    from medopt.models.geometry import ModelGeometry

    return ModelGeometry.from_dataset(cfg.data.preprocess, dataset)


def _scores(cfg: Any, dataset: Any, weights: Any) -> dict[str, float]:
    """Test (global held-out split) and validation (the hospitals' val splits) scores of the final weights."""
    from medopt.federate.partitions import split_clients
    from medopt.federate.stage import global_evaluator

    geometry = _geometry(cfg, dataset)
    on_val = dataclasses.replace(dataset, test=_pooled(split_clients(dataset, cfg), "val"))
    _, test = global_evaluator(cfg, geometry, dataset)(weights)
    _, val = global_evaluator(cfg, geometry, on_val)(weights)
    return {"test_bacc": test["bacc"], "test_auc": test["auc"], "val_bacc": val["bacc"], "val_auc": val["auc"]}


def _centralized(cfg: Any, dataset: Any, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The hospitals' training data pooled, trained like a client for rounds x local_epochs epochs, no selection."""
    import torch

    from medopt.data import make_loader
    from medopt.federate.arrays import get_weights
    from medopt.federate.local_training import build_client_model
    from medopt.federate.partitions import split_clients
    from medopt.models.bn_recalibration import recalibrate_batchnorm
    from medopt.train.losses import build_loss, count_classes
    from medopt.train.loop import train_one_epoch
    from medopt.train.optim import build_optimizer, build_scheduler
    from medopt.train.seeding import seed_everything

    seed_everything(cfg.train.seed)
    geometry, device = _geometry(cfg, dataset), torch.device("cpu")
    pooled = _pooled(split_clients(dataset, cfg), "train")
    model = build_client_model(cfg, geometry).to(device)
    loader = make_loader(pooled, cfg.data.preprocess, batch_size=cfg.train.batch_size, shuffle=True,
                         seed=cfg.train.seed, task=geometry.task)
    counts = count_classes(pooled.labels, geometry.task, geometry.num_classes)
    loss_fn = build_loss(geometry.task, cfg.train, counts).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, len(loader))
    for epoch in range(cfg.federate.rounds * cfg.federate.local_epochs):
        train_one_epoch(model, loader, loss_fn, optimizer, scheduler=scheduler, epoch=epoch, device=device,
                        grad_clip=cfg.train.grad_clip)
    recalibrate_batchnorm(model, make_loader(pooled, cfg.data.preprocess, batch_size=256, shuffle=False, seed=0,
                                             task=geometry.task), device)
    return get_weights(model.cpu()), {"comm_mb": 0.0}


def _federated(cfg: Any, dataset: Any, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """A Flower simulation of the configured strategy; its global weights and traffic."""
    from medopt.federate.arrays import get_weights
    from medopt.federate.stage import federate_dataset

    fed = federate_dataset(cfg, dataset, run_dir=run_dir)
    rounds = fed.outcome.rounds
    return get_weights(fed.model), {"comm_mb": sum(r["sent_mb"] + r["received_mb"] for r in rounds),
                                    "round_seconds": [r["seconds"] for r in rounds]}


class Runs:
    """Every (partition, method, seed, mu) trained once: the mu grid's first-seed run is reused by the arm."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan, self.root = plan, root
        self.rows: list[dict[str, Any]] = []
        self._datasets: dict[str, Any] = {}
        self._done: dict[tuple[str, str, int, float | None], dict[str, Any]] = {}

    def dataset(self, partition: str) -> Any:
        if partition not in self._datasets:
            self._datasets[partition] = _dataset(_config(self.plan, partition, "fedavg", self.root), self.plan.samples)
        return self._datasets[partition]

    def get(self, partition: str, method: str, seed: int, mu: float | None = None) -> dict[str, Any]:
        key = (partition, method, seed, mu if method == "fedprox" else None)
        if key not in self._done:
            self._done[key] = self._train(*key)
            self.rows.append(self._done[key])
            print_table([self._done[key]], COLUMNS)
            sys.stdout.flush()
        return self._done[key]

    def _train(self, partition: str, method: str, seed: int, mu: float | None) -> dict[str, Any]:
        strategy = "fedavg" if method == "centralized" else method
        cfg = _config(self.plan, partition, strategy, self.root, seed=seed, mu=0.0 if mu is None else mu)
        dataset = self.dataset(partition)
        arm: Callable[..., tuple[Any, dict[str, Any]]] = _centralized if method == "centralized" else _federated
        start = time.perf_counter()
        weights, extra = arm(cfg, dataset, self.root / f"{partition}-{method}-s{seed}-mu{mu}")
        wall = time.perf_counter() - start
        return {"partition": partition, "method": method, "seed": seed, "mu": mu, **_scores(cfg, dataset, weights),
                "wall_s": wall, **extra}


def _choose_mu(runs: Runs, partition: str) -> dict[str, Any]:
    """FedProx mu for ``partition``: fixed by --mu, else the grid's best validation balanced accuracy (first seed)."""
    plan = runs.plan
    if plan.mu is not None:
        return {"mu": plan.mu, "chosen_by": "fixed by --mu; not selected by this run"}
    seed = plan.seeds[0]
    val = {mu: runs.get(partition, "fedprox", seed, mu)["val_bacc"] for mu in plan.mu_grid}
    best = max(plan.mu_grid, key=lambda mu: val[mu])  # ties: the first in grid order
    return {"mu": best, "chosen_by": "best validation balanced accuracy over the grid", "split": VAL_SPLIT,
            "seed": seed, "grid": list(plan.mu_grid), "val_bacc": {str(mu): v for mu, v in val.items()}}


def _spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample sd (None for one value) and the values themselves."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def _arm_rows(rows: list[dict[str, Any]], partition: str, method: str, mu: float | None) -> list[dict[str, Any]]:
    """The per-seed rows of one arm (for FedProx: at the chosen mu), in seed order."""
    want = mu if method == "fedprox" else None
    return sorted((r for r in rows if r["partition"] == partition and r["method"] == method and r["mu"] == want),
                  key=lambda r: r["seed"])


def _summaries(rows: list[dict[str, Any]], mus: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for partition in PARTITIONS:
        for method in METHODS:
            arm = _arm_rows(rows, partition, method, mus[partition])
            out.append({"partition": partition, "method": method, "mu": mus[partition] if method == "fedprox" else None,
                        "seeds": [r["seed"] for r in arm],
                        **{k: _spread([r[k] for r in arm]) for k in ("test_bacc", "test_auc", "val_bacc", "wall_s")}})
    return out


def _fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.4f}" if s["sd"] is None else f"{s['mean']:.4f} ± {s['sd']:.4f}"


def _gap_goal(summaries: list[dict[str, Any]], partition: str, a: str, b: str, label: str, target: str,
              met: Callable[[float], bool]) -> dict[str, Any]:
    """Goal on mean(a) - mean(b) test balanced accuracy, with the per-seed paired gaps and both arms' spread."""
    get = {(s["partition"], s["method"]): s for s in summaries}
    sa, sb = get[(partition, a)]["test_bacc"], get[(partition, b)]["test_bacc"]
    gaps = _spread([x - y for x, y in zip(sa["values"], sb["values"])])
    value = sa["mean"] - sb["mean"]
    spread = "1 seed, no spread" if gaps["sd"] is None else f"{gaps['n']} seeds, sd of paired gap {gaps['sd']:.4f}"
    name = f"{label}: {a} - {b} test balanced accuracy, mean ({a} {_fmt(sa)}, {b} {_fmt(sb)}; {spread})"
    return {**goal(name, value, target, met(value)), "paired_gap": gaps, a: sa, b: sb}


def _accuracy_goals(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_gap_goal(summaries, "iid", "centralized", "fedavg", "IID", "<= 0.02", lambda v: v <= 0.02),
            _gap_goal(summaries, "dirichlet", "centralized", "fedprox", "Dirichlet(0.3)", "<= 0.04",
                      lambda v: v <= 0.04),
            _gap_goal(summaries, "dirichlet", "fedprox", "fedavg", "Dirichlet(0.3)", "> 0", lambda v: v > 0)]


def _federated_round_seconds(cfg: Any, dataset: Any, run_dir: Path) -> float:
    """Median wall time of the rounds after the first of one short federation."""
    _, extra = _federated(cfg, dataset, run_dir)
    return statistics.median(extra["round_seconds"][1:])


def _local_round_seconds(cfg: Any, dataset: Any, weights: Any) -> float:
    """One round's work without federation: every hospital's fit + evaluate in this process, then the global test."""
    from medopt.federate.local_training import evaluate_client, fit_client
    from medopt.federate.partitions import split_clients
    from medopt.federate.stage import global_evaluator

    geometry, clients = _geometry(cfg, dataset), split_clients(dataset, cfg)
    evaluate = global_evaluator(cfg, geometry, dataset)
    start = time.perf_counter()
    for c in clients:
        fit_client(cfg, geometry, c, weights, server_round=2)
        evaluate_client(cfg, geometry, c, weights)
    evaluate(weights)
    return time.perf_counter() - start


def _overhead(runs: Runs, mu: float) -> dict[str, Any]:
    """Federated round vs the same work in-process, interleaved by the harness; ratio of medians with a CI."""
    from medopt.bench import interleaved, median_ci, ratio_ci
    from medopt.federate.arrays import get_weights
    from medopt.federate.local_training import build_client_model

    plan, dataset = runs.plan, runs.dataset(OVERHEAD_PARTITION)
    cfg = _config(plan, OVERHEAD_PARTITION, "fedprox", runs.root, mu=mu, rounds=plan.overhead_rounds)
    weights = get_weights(build_client_model(cfg, _geometry(cfg, dataset)))
    count = iter(range(10_000))
    samples = interleaved({
        "federated_round": lambda: _federated_round_seconds(cfg, dataset, runs.root / f"overhead-{next(count)}"),
        "local_round": lambda: _local_round_seconds(cfg, dataset, weights),
    }, repeats=plan.overhead_repeats, warmup=plan.overhead_warmup)
    return {"partition": OVERHEAD_PARTITION, "strategy": "fedprox", "mu": mu, "rounds": plan.overhead_rounds,
            "repeats": plan.overhead_repeats, "warmup": plan.overhead_warmup, "samples": samples,
            "federated_round_s": median_ci(samples["federated_round"]),
            "local_round_s": median_ci(samples["local_round"]),
            "ratio": ratio_ci(samples["federated_round"], samples["local_round"], paired=True)}


def _overhead_goal(overhead: dict[str, Any]) -> dict[str, Any]:
    r = overhead["ratio"]
    name = (f"federation overhead (median round wall / same local work, {overhead['partition']} "
            f"{overhead['strategy']}, {r['n']} interleaved repeats, 95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f})")
    return {**goal(name, r["median"], "<= 1.3", r["median"] <= 1.3), "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def _train_all(runs: Runs) -> dict[str, dict[str, Any]]:
    """Every arm for every seed and partition; returns the FedProx mu choice per partition."""
    choices = {}
    for partition in PARTITIONS:
        for seed in runs.plan.seeds:
            runs.get(partition, "centralized", seed)
            runs.get(partition, "fedavg", seed)
        choices[partition] = _choose_mu(runs, partition)
        for seed in runs.plan.seeds:
            runs.get(partition, "fedprox", seed, choices[partition]["mu"])
    return choices


def _print_summary(summaries: list[dict[str, Any]], goals: list[dict[str, Any]]) -> None:
    print()
    print_table([{**s, "seeds": len(s["seeds"]), **{k: _fmt(s[k]) for k in ("test_bacc", "test_auc", "val_bacc",
                                                                            "wall_s")}} for s in summaries],
                SUMMARY_COLUMNS)
    for g in goals:
        print(f"{'MET ' if g['met'] else 'MISS'} {g['name']}: {g['value']:.4f} (target {g['target']})")


def main() -> int:
    import torch

    plan = _plan(_args())
    start = time.perf_counter()
    with LoadMonitor(own_load=float(torch.get_num_threads())) as load, \
            tempfile.TemporaryDirectory(prefix="medopt-fed-") as tmp:
        runs = Runs(plan, Path(tmp))
        choices = _train_all(runs)
        mus = {p: c["mu"] for p, c in choices.items()}
        summaries = _summaries(runs.rows, mus)
        overhead = _overhead(runs, mus[OVERHEAD_PARTITION])
    goals = [*_accuracy_goals(summaries), _overhead_goal(overhead)]
    _print_summary(summaries, goals)
    path = write_results("federate", {"args": dataclasses.asdict(plan), "fedprox_mu": choices, "arms": summaries,
                                      "rows": runs.rows, "overhead": overhead, "goals": goals,
                                      "wall_seconds": time.perf_counter() - start}, mode=plan.mode, load=load)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
