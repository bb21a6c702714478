"""Body of the KFP `compress` component: re-validate the config, run the stage, write store refs.

Why here and not in pipeline/steps.py: the component stays a one-line wrapper, and this body is testable without KFP.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medopt.config import config_from_json
from medopt.pipeline.refs import StoreRef, mark_disabled
from medopt.pipeline.steps import run_prefix
from medopt.store import open_store

log = logging.getLogger(__name__)


def compress_step(config_json: str, run_id: str, dataset: Any, model: Any, summary: Any, best_model: Any) -> bool:
    """Input[Dataset], Input[Model] in; Output[Artifact] (summary ref) and Output[Model] (best recipe ref) out.

    With ``compress.enabled`` false the step writes ``{"enabled": false}`` to both outputs and returns False, so
    the pipeline can always include it. Returns True when compression ran.
    """
    from medopt.compress.stage import run_compress

    cfg = config_from_json(config_json)
    if not cfg.compress.enabled:
        mark_disabled(summary, best_model)
        log.info("compress.enabled is false: skipping compression")
        return False
    store = open_store(cfg.store)
    result = run_compress(cfg, store, dataset_key=StoreRef.read(dataset.path).key,
                          model_key=StoreRef.read(model.path).key, prefix=run_prefix(run_id))
    ref = StoreRef.from_manifest(store.uri, result.summary)
    ref.write(summary.path)
    summary.metadata.update({"store_uri": ref.store_uri, "key": ref.key, "sha256": ref.sha256, "best": result.best})
    chosen = result.artifacts.get(result.best) if result.best else None
    if chosen is None:
        Path(best_model.path).parent.mkdir(parents=True, exist_ok=True)
        Path(best_model.path).write_text(json.dumps({"enabled": True, "best": None}))
        best_model.metadata.update({"enabled": True, "best": None})
    else:
        best = StoreRef.from_manifest(store.uri, chosen)
        best.write(best_model.path)
        best_model.metadata.update({"store_uri": best.store_uri, "key": best.key, "sha256": best.sha256,
                                    "recipe": result.best, "framework": chosen.kind.split("/")[-1]})
    return True
