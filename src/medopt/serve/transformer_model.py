"""The KServe transformer model: PNG/JPEG/DICOM/tensor requests in, float32 tensors out to the medopt predictor.

Started by ``python -m medopt.serve.transformer`` (``transformer.py``). It decodes with the predictor's own decoder
(``request.decode_request``, i.e. the data stage's readers and preprocessing), described by the artifact's manifest
(``artifact.describe_model``: no weights, no ORT session), and forwards with KServe's own ``Model.predict``
(``InferenceRESTClient`` to ``predictor_host``). Callers may use V1 or V2 whatever the predictor's protocol: the
answer is the predictor's, re-encoded only when the two protocols differ.
"""

from __future__ import annotations

import logging
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kserve import InferInput, InferRequest, InferResponse, Model, PredictorConfig
from kserve.errors import InferenceError, InvalidInput, ServerNotReady

from medopt.config import ConfigError, ServeConfig
from medopt.serve.artifact import describe_model
from medopt.serve.codec import OUTPUT_PROBS, InputSpec, ModelInfo, encode_v1, encode_v2
from medopt.serve.launch import PREDICTOR_PROTOCOLS
from medopt.serve.metadata import INPUT_NAME, input_types, output_types
from medopt.serve.request import decode_request
from medopt.store import ArtifactStore

logger = logging.getLogger(__name__)

# The caller's request (an InferRequest) or None for V1, set by preprocess and read by postprocess of the same call:
# KServe runs preprocess -> predict -> postprocess in one task, so the value cannot leak between requests.
_CALLER: ContextVar[InferRequest | None] = ContextVar("medopt_transformer_caller", default=None)


def _predictor_reason(response: httpx.Response) -> str:
    """The predictor's one-line ``error`` (not KServe's message, which names the internal predictor URL)."""
    try:
        reason = str(response.json().get("error") or "")
    except (ValueError, AttributeError):
        reason = ""
    return " ".join((reason or f"HTTP {response.status_code}").split())


def predictor_config(host: str, protocol: str, *, timeout_s: int = 60) -> PredictorConfig:
    """KServe's predictor settings for plain HTTP to ``host`` (``name:port``, no scheme) in ``protocol`` v1 or v2."""
    if protocol not in PREDICTOR_PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PREDICTOR_PROTOCOLS)}, got {protocol!r}")
    if not host or "://" in host or "/" in host:
        raise ConfigError(f"--predictor-host must be HOST[:PORT] without scheme or path, got {host!r}")
    return PredictorConfig(predictor_host=host, predictor_protocol=protocol,
                           predictor_request_timeout_seconds=timeout_s)


class MedoptTransformer(Model):
    """Decodes requests into the model's float32 batch and lets KServe forward it to the predictor over HTTP."""

    def __init__(self, cfg: ServeConfig, store: ArtifactStore, artifact: str, predictor: PredictorConfig) -> None:
        super().__init__(cfg.model_name)  # KServe forwards to the predictor's model of the same name
        self.cfg = cfg
        self.store = store
        self.artifact = artifact
        self._predictor = predictor
        self.spec: InputSpec | None = None
        self.info: ModelInfo | None = None

    @property
    def predictor_config(self) -> PredictorConfig:
        """This transformer's own predictor (KServe's default reads a process-wide context variable)."""
        return self._predictor

    def load(self) -> bool:
        """Describe the artifact (input spec, class names, preprocessing); no weights are loaded here."""
        self.ready = False
        with tempfile.TemporaryDirectory(prefix="medopt-transformer-") as tmp:
            self.spec, self.info = describe_model(self.store, self.artifact, name=self.name,
                                                  max_rows=self.cfg.max_images, workdir=Path(tmp))
        logger.info("transformer for %s: input %s, forwarding %s to %s", self.artifact, self.spec.shape,
                    self._predictor.protocol, self._predictor.predictor_base_url)
        self.ready = True
        return self.ready

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any] | InferRequest:
        """Images/DICOM/tensors to one float32 (N,C,H,W) batch, as the predictor's raw-tensor input."""
        x = decode_request(payload, self.spec, self.name)
        _CALLER.set(payload if isinstance(payload, InferRequest) else None)
        if self._predictor.protocol == "v1":
            return {"instances": x.tolist()}  # float32 -> JSON double -> float32 is exact
        tensor = InferInput(name=INPUT_NAME, shape=list(x.shape), datatype="FP32")
        # JSON data, not binary: kserve 0.21's forwarding sends binary bodies with both "Content-Type:
        # application/json" and "content-type: application/octet-stream", which the predictor cannot parse.
        tensor.set_data_from_numpy(x, binary_data=False)
        caller_id = payload.id if isinstance(payload, InferRequest) else None
        return InferRequest(model_name=self.name, infer_inputs=[tensor], request_id=caller_id)

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:
        """KServe's forwarding; the predictor's refusals become one-line 4xx, an unreachable predictor a 503."""
        try:
            return await super().predict(payload, headers, response_headers)
        except httpx.HTTPStatusError as exc:
            reason = _predictor_reason(exc.response)
            if 400 <= exc.response.status_code < 500:
                raise InvalidInput(f"predictor refused the request: {reason}") from None
            raise InferenceError(f"predictor failed: {reason}") from None
        except httpx.TransportError as exc:
            raise ServerNotReady(f"predictor {self._predictor.predictor_host} unreachable "
                                 f"({exc.__class__.__name__})") from None

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None,
                          response_headers: dict[str, str] | None = None) -> Any:
        """The predictor's answer in the caller's protocol (its probabilities, version and sha256, unchanged)."""
        caller = _CALLER.get()
        if caller is None and isinstance(result, dict):
            return result
        if caller is not None and isinstance(result, InferResponse):
            params = dict(result.parameters or {})
            return InferResponse(response_id=caller.id or result.id or "", model_name=result.model_name,
                                 model_version=params.get("model_version"), infer_outputs=result.outputs,
                                 parameters=params, use_binary_outputs=caller.use_binary_outputs,
                                 requested_outputs=caller.request_outputs)
        probs, info = self._answer(result)
        return encode_v1(probs, info) if caller is None else encode_v2(probs, info, caller)

    def _answer(self, result: Any) -> tuple[np.ndarray, ModelInfo]:
        """Probabilities and identity from a predictor answer in the other protocol (labels follow by argmax)."""
        assert self.info is not None
        if isinstance(result, InferResponse):
            params = dict(result.parameters or {})
            outputs = {o.name: o for o in result.outputs}
            probs = outputs[OUTPUT_PROBS].as_numpy()
            version, sha = params.get("model_version", ""), params.get("sha256", "")
        else:
            probs = np.array([p[OUTPUT_PROBS] for p in result["predictions"]], dtype=np.float32)
            version, sha = result.get("model_version", ""), result.get("sha256", "")
        return probs, ModelInfo(name=self.name, version=str(version), sha256=str(sha),
                                class_names=self.info.class_names, task=self.info.task)

    def get_input_types(self) -> list[dict[str, Any]]:
        return input_types(self.spec)

    def get_output_types(self) -> list[dict[str, Any]]:
        return output_types(self.info)

    def stop(self) -> None:
        """No longer ready; KServe's HTTP client is dropped with the process."""
        self.ready = False

