"""Run the whole pipeline on one machine: with kfp.local (the default) or step by step in this process.

Both runners walk the same step list (``medopt.pipeline.step_list.STEPS``: data, train, compress, federate, deploy,
evaluate) and call the same step bodies; kfp.local additionally proves the KFP components and their artifact passing
work exactly as they will in a cluster.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medopt.config import ExperimentConfig, dump_yaml
from medopt.errors import MedoptError
from medopt.pipeline import progress
from medopt.pipeline.inprocess import run_inprocess
from medopt.pipeline.run_ids import new_run_id  # noqa: F401 - re-exported (medopt train)
from medopt.pipeline.steps import run_prefix
from medopt.store import ArtifactStore, atomic_write_bytes, open_store

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


class PipelineFailed(MedoptError, RuntimeError):
    """A pipeline step failed; the message names the step and the run log."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_dir: Path
    store_uri: str
    metrics: dict[str, Any]
    report_path: Path | None
    seconds: float
    bench_report_path: Path | None = None
    bench: dict[str, float] | None = None


def resolve_paths(cfg: ExperimentConfig, base: Path) -> ExperimentConfig:
    """Make the store root and data paths absolute, so subprocesses and pods see the same files."""
    def absolute(p: str | None) -> str | None:
        return None if p is None else str((base / Path(p).expanduser()).resolve())

    data = cfg.data.model_copy(update={"path": absolute(cfg.data.path), "image_root": absolute(cfg.data.image_root)})
    store = cfg.store.model_copy(update={"root": absolute(cfg.store.root)})
    return cfg.model_copy(update={"data": data, "store": store, "output_dir": absolute(cfg.output_dir)})


class _LogTee(io.TextIOBase):
    """A text stream that appends to the run log and turns progress markers into callbacks."""

    def __init__(self, log_file: io.TextIOBase, on_progress: ProgressFn | None) -> None:
        self._log, self._on_progress, self._buf = log_file, on_progress, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._log.write(text)
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            event = progress.parse(line)
            if event is not None and self._on_progress is not None:
                self._on_progress(event)
        return len(text)

    def flush(self) -> None:
        self._log.flush()


@contextlib.contextmanager
def captured_output(log_path: Path, on_progress: ProgressFn | None) -> Iterator[None]:
    """Send this process's stdout/stderr (KFP's task logs included) to the run log while a run executes."""
    with open(log_path, "a", encoding="utf-8") as log_file:
        tee = _LogTee(log_file, on_progress)
        root = logging.getLogger()
        handler = logging.StreamHandler(tee)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # The console handlers hold the real stderr: while the run executes, records (a failed run's traceback
        # included) go to the run log only; the CLI prints its one line.
        console = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                   and getattr(h, "stream", None) in (sys.__stderr__, sys.__stdout__, sys.stderr, sys.stdout)]
        for h in console:
            root.removeHandler(h)
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
                yield
        finally:
            root.removeHandler(handler)
            for h in console:
                root.addHandler(h)


def _run_kfp_local(cfg: ExperimentConfig, run_id: str, run_dir: Path) -> None:
    from kfp import local

    from pipelines.medopt_pipeline import build_pipeline

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(run_dir / "kfp"),
        raise_on_error=True,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        build_pipeline(cfg, cluster=False)(config_yaml=cfg.model_dump_json(), run_id=run_id)


def run_pipeline(
    cfg: ExperimentConfig, *, base_dir: Path | None = None, on_progress: ProgressFn | None = None
) -> RunOutcome:
    """Run every step of the step list with ``cfg.runner``; return the test metrics and where the report is."""
    cfg = resolve_paths(cfg, (base_dir or Path.cwd()).resolve())
    run_id = new_run_id(cfg)
    run_dir = Path(cfg.output_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_bytes(run_dir / "config.yaml", dump_yaml(cfg).encode())
    store = open_store(cfg.store)
    started = time.perf_counter()
    log_path = run_dir / "run.log"
    try:
        with captured_output(log_path, on_progress):
            try:
                if cfg.runner == "kfp-local":
                    _run_kfp_local(cfg, run_id, run_dir)
                else:
                    run_inprocess(cfg, run_id, run_dir / "steps")
            except Exception:
                log.exception("run %s failed", run_id)  # the full traceback goes to the run log only
                raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise PipelineFailed(f"run {run_id} failed: {reason} (details: {log_path})") from exc
    return _collect(store, run_id, run_dir, time.perf_counter() - started)


def _collect(store: ArtifactStore, run_id: str, run_dir: Path, seconds: float) -> RunOutcome:
    prefix = run_prefix(run_id)
    metrics = json.loads(store.get_bytes(f"{prefix}/evaluate/metrics.json"))
    report_path = None
    if store.exists(f"{prefix}/evaluate/report.html"):
        report_path = store.get_file(f"{prefix}/evaluate/report.html", run_dir / "report.html")
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=1).encode())
    bench_report, bench = None, None
    if store.exists(f"{prefix}/bench/report.html"):
        bench_report = store.get_file(f"{prefix}/bench/report.html", run_dir / "bench.html")
        bench = dict(store.manifest(f"{prefix}/bench/results.json").metrics or {})
    return RunOutcome(
        run_id=run_id, run_dir=run_dir, store_uri=store.uri, metrics=metrics, report_path=report_path, seconds=seconds,
        bench_report_path=bench_report, bench=bench,
    )


def compile_pipeline(output: Path, cfg: ExperimentConfig | None = None) -> Path:
    """Compile the KFP pipeline for a cluster to YAML (the default config's is checked in and golden-tested)."""
    from medopt.pipeline.cluster import compile_for_cluster

    return compile_for_cluster(output, cfg)
