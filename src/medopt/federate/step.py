"""Body of the KFP `federate` component: re-validate the config, run the stage, emit round progress, write refs.

Why here and not in pipeline/steps.py: the component stays a one-line wrapper, and this body is testable without KFP.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medopt.config import config_from_json
from medopt.pipeline import progress
from medopt.pipeline.refs import StoreRef
from medopt.pipeline.steps import run_prefix
from medopt.store import open_store

log = logging.getLogger(__name__)


def round_event(record: dict[str, Any], rounds: int) -> dict[str, Any]:
    """A progress event per round: the scalar numbers plus the failure count and the first failure's one line."""
    event = {"stage": "federate", "round": record["round"], "rounds": rounds,
             **{k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
    event["failures"] = len(record["failures"])
    if record["failures"]:
        event["failure"] = record["failures"][0]
    return event


def federate_step(config_json: str, run_id: str, dataset: Any, model: Any, history: Any) -> bool:
    """Input[Dataset] in; Output[Model] (global model ref) and Output[Artifact] (rounds.json ref) out.

    With ``federate.enabled`` false both outputs get ``{"enabled": false}`` and the step returns False, so the
    pipeline can always include it. Returns True when the federation ran.
    """
    from medopt.federate.stage import run_federate

    cfg = config_from_json(config_json)
    if not cfg.federate.enabled:
        for artifact in (model, history):
            Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
            Path(artifact.path).write_text(json.dumps({"enabled": False}))
            artifact.metadata.update({"enabled": False})
        log.info("federate.enabled is false: skipping federated training")
        return False
    store = open_store(cfg.store)
    result = run_federate(cfg, store, dataset_key=StoreRef.read(dataset.path).key, prefix=run_prefix(run_id),
                          on_round=lambda rec: progress.emit(round_event(rec, cfg.federate.rounds)))
    for artifact, manifest in ((model, result.model), (history, result.history)):
        ref = StoreRef.from_manifest(store.uri, manifest)
        ref.write(artifact.path)
        artifact.metadata.update({"store_uri": ref.store_uri, "key": ref.key, "sha256": ref.sha256,
                                  **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}})
    model.metadata["framework"] = "pytorch"
    return True
