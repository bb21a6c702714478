"""A small client for medopt's model server: V1 and V2 REST (JSON or binary) and V2 gRPC, all returning numpy."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from medopt.errors import MedoptError
from medopt.serve.binary import encode_binary_request
from medopt.serve.codec import OUTPUT_CLASS, OUTPUT_LABEL, OUTPUT_PROBS


class ClientError(MedoptError, RuntimeError):
    """The server answered with an error; ``status`` is the HTTP status (or the gRPC code's name)."""

    def __init__(self, status: int | str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    model_version: str | None = None
    sha256: str | None = None


def _from_v2_json(body: dict[str, Any]) -> Prediction:
    outs = {o["name"]: o for o in body["outputs"]}
    probs = np.asarray(outs[OUTPUT_PROBS]["data"], dtype=np.float32).reshape(outs[OUTPUT_PROBS]["shape"])
    params = body.get("parameters") or {}
    return Prediction(probs, np.asarray(outs[OUTPUT_LABEL]["data"], dtype=np.int64),
                      tuple(str(c) for c in outs[OUTPUT_CLASS]["data"]), body.get("model_version"),
                      params.get("sha256"))


class MedoptClient:
    """HTTP client of one model: ``MedoptClient("http://127.0.0.1:8080", "medopt")``."""

    def __init__(self, url: str, model: str, timeout: float = 30.0) -> None:
        import httpx

        self.model = model
        self._http = httpx.Client(base_url=url, timeout=timeout)

    def _post(self, path: str, **kwargs: Any) -> Any:
        response = self._http.post(path, **kwargs)
        if response.status_code != 200:
            raise ClientError(response.status_code, response.text[:300])
        return response.json()

    def ready(self) -> bool:
        return self._http.get(f"/v2/models/{self.model}/ready").status_code == 200

    def infer_v1(self, x: np.ndarray) -> Prediction:
        """V1 ``{"instances": [...]}`` with float32 (N,C,H,W) model input."""
        return self._v1({"instances": np.asarray(x, dtype=np.float32).tolist()})

    def infer_v1_images(self, blobs: list[bytes]) -> Prediction:
        """V1 TF-serving style base64 images (PNG/JPEG/DICOM bytes)."""
        rows = [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]
        return self._v1({"instances": rows})

    def _v1(self, body: dict[str, Any]) -> Prediction:
        out = self._post(f"/v1/models/{self.model}:predict", json=body)
        preds = out["predictions"]
        return Prediction(np.asarray([p[OUTPUT_PROBS] for p in preds], dtype=np.float32),
                          np.asarray([p[OUTPUT_LABEL] for p in preds], dtype=np.int64),
                          tuple(p[OUTPUT_CLASS] for p in preds), out.get("model_version"), out.get("sha256"))

    def infer_v2(self, x: np.ndarray, binary: bool = True) -> Prediction:
        """V2 REST: the binary tensor extension (default) or JSON ``data``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        path = f"/v2/models/{self.model}/infer"
        if binary:
            body, json_length = encode_binary_request(x)
            headers = {"Inference-Header-Content-Length": str(json_length), "Content-Type": "application/octet-stream"}
            return _from_v2_json(self._post(path, content=body, headers=headers))
        payload = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        return _from_v2_json(self._post(path, json=payload))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MedoptClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bytes_elements(raw: bytes) -> tuple[str, ...]:
    out, i = [], 0
    while i + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4 : i + 4 + n].decode())
        i += 4 + n
    return tuple(out)


def grpc_infer(address: str, model: str, x: np.ndarray, timeout: float = 30.0) -> Prediction:
    """One V2 gRPC ModelInfer call with raw float32 input contents."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    x = np.ascontiguousarray(x, dtype=np.float32)
    request = pb.ModelInferRequest(model_name=model, inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(x.shape))])
    request.raw_input_contents.append(x.tobytes())
    with grpc.insecure_channel(address) as channel:
        try:
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise ClientError(exc.code().name, exc.details() or "") from None
    raw = dict(zip([o.name for o in response.outputs], response.raw_output_contents))
    shapes = {o.name: list(o.shape) for o in response.outputs}
    probs = np.frombuffer(raw[OUTPUT_PROBS], dtype=np.float32).reshape(shapes[OUTPUT_PROBS])
    params = {k: v.string_param for k, v in response.parameters.items()}
    return Prediction(probs, np.frombuffer(raw[OUTPUT_LABEL], dtype=np.int64), _bytes_elements(raw[OUTPUT_CLASS]),
                      response.model_version or None, params.get("sha256"))
