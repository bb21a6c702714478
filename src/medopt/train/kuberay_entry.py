"""The driver of a ``train.backend: kuberay`` RayJob: ``python -m medopt.train.kuberay_entry``, run on its head.

It is the train stage with the 'ray' backend (the config from ``MEDOPT_CONFIG_JSON`` already says
``train.backend: ray``, ``train.ray_address: auto``), on the dataset key and store prefix the pipeline step was
given, so the model lands under the keys the step would have written. Each epoch's history row is printed as one
marked line: ``ray job submit`` streams the driver's output into the submitter pod's log, where the step reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from medopt.config import config_from_json
from medopt.errors import MedoptError
from medopt.store import open_store
from medopt.train.kuberay_job import CONFIG_ENV, EPOCH_MARKER, KubeRayJobError
from medopt.train.stage import run_train


def print_epoch(epoch: int, row: dict[str, Any]) -> None:
    """One ``MEDOPT_EPOCH {json}`` line on stdout (flushed: the step shows progress while training runs)."""
    scalars = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    sys.stdout.write(EPOCH_MARKER + json.dumps({"epoch": epoch, "row": scalars}, default=float) + "\n")
    sys.stdout.flush()


def _train(argv: list[str] | None) -> str:
    parser = argparse.ArgumentParser(prog="python -m medopt.train.kuberay_entry")
    parser.add_argument("--dataset-key", required=True, help="Store key of the dataset artifact.")
    parser.add_argument("--prefix", required=True, help="Store prefix of the run (runs/<run id>).")
    args = parser.parse_args(argv)
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise KubeRayJobError(f"{CONFIG_ENV} is not set: this driver runs inside a RayJob built by medopt")
    cfg = config_from_json(text)
    if cfg.train.backend != "ray":
        raise KubeRayJobError(f"the RayJob driver trains with train.backend 'ray', got '{cfg.train.backend}'")
    store = open_store(cfg.store)
    result = run_train(cfg, store, dataset_key=args.dataset_key, prefix=args.prefix, on_epoch_end=print_epoch)
    return result.model.key


def main(argv: list[str] | None = None) -> int:
    """Train and store; a medopt error is one line on stderr and exit status 1 (the RayJob then FAILS)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        key = _train(argv)
    except MedoptError as exc:
        print(f"medopt: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"trained model stored at {key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
