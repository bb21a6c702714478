"""The KServe predictor for medopt artifacts: thin on purpose (decoding in request.py, batching in batching.py).

``predict`` is kserve's entry (V1 REST, and V2 when a request comes through kserve's own routes); the server's fast
paths (``serve/fastpath.py``) call ``infer_v2`` directly with the ``InferRequest`` they decoded, skipping kserve's
per-request machinery. Both decode and encode through the same functions, so they answer alike.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from kserve import InferRequest, Model
from kserve.errors import InvalidInput

from medopt.config import ServeConfig
from medopt.serve.artifact import ServedModel, load_served_model
from medopt.serve.batching import Batcher, BatchHook, prometheus_hook
from medopt.serve.codec import encode_v1, encode_v2, probabilities
from medopt.serve.metadata import input_types, output_types
from medopt.serve.request import decode_request
from medopt.serve.runners import thread_budget, usable_cores
from medopt.serve.timing import RequestTiming, Timings
from medopt.store import ArtifactStore

logger = logging.getLogger(__name__)


class MedoptModel(Model):
    """Serves one stored model over V1, V2 REST and V2 gRPC; ready only after a successful warm-up inference."""

    def __init__(self, cfg: ServeConfig, store: ArtifactStore, artifact: str, *, hook: BatchHook | None = None):
        super().__init__(cfg.model_name)
        self.cfg = cfg
        self.store = store
        self.artifact = artifact
        self.served: ServedModel | None = None
        self.batcher: Batcher | None = None
        self._hook = hook
        self.timings = Timings(enabled=cfg.timing)
        self.threads = thread_budget(cfg.threads, cfg.workers)

    def load(self) -> bool:
        """Fetch and verify the artifact, build the runtime, run one warm-up batch; only then report ready."""
        self.ready = False
        with tempfile.TemporaryDirectory(prefix="medopt-serve-") as tmp:
            served = load_served_model(self.store, self.artifact, name=self.name, runtime=self.cfg.runtime,
                                       threads=self.threads, max_rows=self.cfg.max_images, workdir=Path(tmp),
                                       device=self.cfg.device)
        warm = served.runner(np.zeros((1, *served.spec.shape), dtype=np.float32))
        if warm.ndim != 2 or warm.shape[0] != 1 or not np.isfinite(warm).all():
            raise ValueError(f"warm-up of '{self.artifact}' gave logits of shape {warm.shape}; expected (1, classes)")
        self.served = served
        self.batcher = Batcher(served.runner, max_batch_size=self.cfg.max_batch_size,
                               max_latency_ms=self.cfg.max_latency_ms, workers=self.cfg.workers,
                               hook=self._hook or prometheus_hook(self.name), inline=self.cfg.inline_inference)
        logger.info("model '%s': %s intra-op threads x %d worker(s) on %d usable cores, inference %s", self.name,
                    self.threads or "runtime-default", self.cfg.workers, usable_cores(),
                    "on the event loop" if self.cfg.inline_inference else "on its own thread")
        self.ready = True
        return self.ready

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:
        """Decode, run through the batcher, and answer in the caller's protocol."""
        if self.served is None or self.batcher is None:
            raise InvalidInput(f"model '{self.name}' is not loaded")
        x = decode_request(payload, self.served.spec, self.name)
        logits = await self.batcher.submit(x)
        probs = probabilities(logits, self.served.info.task)
        if isinstance(payload, InferRequest):
            return encode_v2(probs, self.served.info, payload)
        return encode_v1(probs, self.served.info)

    async def infer_v2(self, request: InferRequest, timing: RequestTiming | None = None) -> Any:
        """A decoded V2 request (REST binary/JSON or gRPC) to kserve's ``InferResponse``: the fast paths' entry.

        Same decoding, batching and encoding as ``predict``; ``timing`` (when on) gets decode, queue, infer, resume
        and encode.
        """
        if self.served is None or self.batcher is None:
            raise InvalidInput(f"model '{self.name}' is not loaded")
        x = decode_request(request, self.served.spec, self.name)
        if timing is not None:
            timing.mark("decode")
        logits = await self.batcher.submit(x, timing)
        response = encode_v2(probabilities(logits, self.served.info.task), self.served.info, request)
        if timing is not None:
            timing.mark("encode")
        return response

    def get_input_types(self) -> list[dict[str, Any]]:
        return input_types(self.served.spec if self.served else None)

    def get_output_types(self) -> list[dict[str, Any]]:
        return output_types(self.served.info if self.served else None)

    def stop(self) -> None:
        """Unload: no longer ready; queued requests fail fast."""
        self.ready = False
        batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.close()
