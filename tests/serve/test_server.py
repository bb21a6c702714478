"""The live server (subprocess): every protocol agrees with a direct ORT call; bad input never hurts it."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import re
import shutil
import signal
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from medopt.data.readers import stack_images
from medopt.data.transforms import preprocess_batch
from medopt.serve.binary import encode_binary_request
from medopt.serve.http_client import ClientError, MedoptClient, grpc_infer
from serve_fixtures import CLASSES, NAME, ONNX_KEY, Running, Stored, direct_probs, start_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a server subprocess: ~6 s to start
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 1, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def client(server: Running) -> MedoptClient:
    return MedoptClient(server.url, NAME)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _assert_serves(client: MedoptClient, stored: Stored) -> None:
    np.testing.assert_allclose(client.infer_v2(X).probabilities, direct_probs(stored.onnx_path, X), atol=1e-6)


def test_all_protocols_match_direct_ort(server: Running, client: MedoptClient, stored: Stored) -> None:
    expected = direct_probs(stored.onnx_path, X)
    sha = stored.store.manifest(ONNX_KEY).sha256
    results = {"v1": client.infer_v1(X), "v2-json": client.infer_v2(X, binary=False), "v2-binary": client.infer_v2(X),
               "grpc": grpc_infer(server.grpc, NAME, X)}
    for name, pred in results.items():
        np.testing.assert_allclose(pred.probabilities, expected, atol=1e-6, err_msg=name)
        assert list(pred.labels) == list(expected.argmax(1)), name
        assert pred.class_names == tuple(CLASSES[i] for i in expected.argmax(1)), name
        assert (pred.sha256, pred.model_version) == (sha, sha[:12]), name


def test_images_and_dicom_use_training_preprocessing(server: Running, client: MedoptClient, stored: Stored,
                                                     tmp_path: Path) -> None:
    from test_codec import dicom_bytes

    from medopt.data.dicom import read_dicom
    from medopt.config import DicomConfig

    gray = RNG.integers(0, 256, (26, 22), dtype=np.uint8)
    pixels = RNG.integers(0, 4000, (24, 24)).astype(np.uint16)
    dcm = dicom_bytes(pixels, tmp_path)
    x = preprocess_batch(stack_images([gray, read_dicom(dcm, DicomConfig())], 20), stored.preprocess).numpy()
    expected = direct_probs(stored.onnx_path, x)
    got = client.infer_v1_images([_png(gray), dcm])
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-6)
    body = {"inputs": [{"name": "input", "shape": [2], "datatype": "BYTES",
                        "data": [base64.b64encode(b).decode() for b in (_png(gray), dcm)]}]}
    out = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=body).json()
    np.testing.assert_allclose(np.array(out["outputs"][0]["data"]).reshape(2, 3), expected, atol=1e-6)


def test_metadata_readiness_and_metrics(server: Running) -> None:
    meta = httpx.get(f"{server.url}/v2/models/{NAME}").json()
    assert meta["inputs"][0]["shape"] == [-1, 1, 16, 16] and meta["outputs"][0]["shape"] == [-1, 3]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v1/models/{NAME}").json()["ready"] is True
    assert httpx.get(f"{server.url}/v2/models/nope/ready").status_code == 404
    assert "medopt_serve_batches_total" in httpx.get(f"{server.url}/metrics").text


def _binary(x: np.ndarray, cut: int = 0) -> tuple[bytes, dict[str, str]]:
    body, n = encode_binary_request(x)
    return body[: len(body) - cut], {"Inference-Header-Content-Length": str(n), "Content-Type": "application/octet-stream"}


V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"
BAD = {
    "wrong-shape": (V1, orjson.dumps({"instances": np.zeros((1, 3, 16, 16)).tolist()}), {}, 400),
    "wrong-dtype": (V2, orjson.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "INT32", "data": [1]}]}),
                    {}, 400),
    "nan": (V2, *_binary(np.full((1, 1, 16, 16), np.nan, dtype=np.float32)), 400),
    "truncated-binary": (V2, *_binary(X, cut=7), 400),
    "no-length-header": (V2, _binary(X)[0], {"Content-Type": "application/octet-stream"}, 400),
    "corrupt-image": (V1, orjson.dumps({"instances": [{"b64": base64.b64encode(b"\x89PNG broken").decode()}]}), {},
                      400),
    "corrupt-dicom": (V1, orjson.dumps({"instances": [{"b64": base64.b64encode(b"\0" * 128 + b"DICM" + b"\1" * 50)
                                                       .decode()}]}), {}, 400),
    "oversized": (V2, b"{" + b" " * 300_000 + b"}", {"Content-Type": "application/json"}, 413),
    "unknown-model": ("/v2/models/nope/infer", orjson.dumps({"inputs": []}), {}, 404),
    "malformed-json-v1": (V1, b'{"instances": [1, 2', {"Content-Type": "application/json"}, 400),
    "malformed-json-v2": (V2, b'{"inputs": [1, 2', {"Content-Type": "application/json"}, 400),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_one_line_4xx_and_next_request_succeeds(case: str, server: Running, client: MedoptClient,
                                                               stored: Stored) -> None:
    path, content, headers, status = BAD[case]
    response = httpx.post(server.url + path, content=content, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    reason = response.json().get("error") or response.json().get("detail")
    assert isinstance(reason, str) and reason and "\n" not in reason
    _assert_serves(client, stored)


def test_grpc_bad_shape_is_invalid_argument(server: Running, client: MedoptClient, stored: Stored) -> None:
    with pytest.raises(ClientError, match="INVALID_ARGUMENT"):
        grpc_infer(server.grpc, NAME, np.zeros((1, 2, 16, 16), dtype=np.float32))
    _assert_serves(client, stored)


def _mutate(rng: np.random.Generator, body: bytes) -> bytes:
    data = bytearray(body)
    kind = rng.integers(4)
    if kind == 0 and data:
        for i in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            data[i] = int(rng.integers(256))
    elif kind == 1:
        data = data[: int(rng.integers(0, len(data) + 1))]
    elif kind == 2:
        data = bytearray(rng.bytes(int(rng.integers(0, 2000))))
    else:
        value = rng.choice(np.array([None, 1, -1.5, "x", [], {}, [[1]], 1e308, True], dtype=object))
        doc = {"instances": value} if rng.random() < 0.5 else {"inputs": [{"name": "input", "shape": [1, 1, 16, 16],
                                                                           "datatype": "FP32", "data": value}]}
        data = bytearray(orjson.dumps(doc))
    return bytes(data)


def test_fuzz_never_5xx(server: Running, client: MedoptClient, stored: Stored) -> None:
    rng = np.random.default_rng(1234)
    seeds = [(V1, orjson.dumps({"instances": X.tolist()}), {}), (V2, *_binary(X)),
             (V2, orjson.dumps({"inputs": [{"name": "input", "shape": [2, 1, 16, 16], "datatype": "FP32",
                                           "data": X.ravel().tolist()}]}), {})]
    statuses = []
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(300):
            path, body, headers = seeds[int(rng.integers(len(seeds)))]
            r = http.post(path, content=_mutate(rng, body), headers={"Content-Type": "application/json", **headers})
            statuses.append(r.status_code)
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert any(400 <= s < 500 for s in statuses)
    _assert_serves(client, stored)


def _batches(server: Running) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(rf'medopt_serve_batches_total{{model="{NAME}"}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0  # the labelled series appears with the first batch


def test_concurrent_requests_are_batched(server: Running, stored: Stored) -> None:
    before = _batches(server)
    expected = direct_probs(stored.onnx_path, X)

    def one(_: int) -> np.ndarray:
        with MedoptClient(server.url, NAME) as c:
            return c.infer_v2(X).probabilities

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)
    merged = _batches(server) - before
    assert merged < 32, merged


def test_tritonclient_matches_medopt_client(server: Running, client: MedoptClient) -> None:
    import tritonclient.http as triton

    tc = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inp = triton.InferInput("input", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=True)
    result = tc.infer(NAME, [inp], outputs=[triton.InferRequestedOutput("probabilities", binary_data=True)])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), client.infer_v2(X).probabilities)
    assert tc.is_model_ready(NAME)
    tc.close()


def test_corrupted_artifact_is_refused(stored: Stored, tmp_path: Path) -> None:
    shutil.copytree(stored.root, tmp_path / "store")
    target = tmp_path / "store" / ONNX_KEY
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    corrupted = Stored(tmp_path / "store", stored.store, stored.onnx_path, stored.preprocess, stored.config)
    running = start_server(corrupted, tmp_path, ONNX_KEY)
    assert running.proc.wait(timeout=60) == 1
    assert "sha256" in (tmp_path / "server.log").read_text()


def test_sigterm_stops_cleanly(stored: Stored, tmp_path: Path) -> None:
    from serve_fixtures import wait_ready

    running = start_server(stored, tmp_path, ONNX_KEY, enable_grpc=False)
    wait_ready(running)
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0
    assert "server stopped" in (tmp_path / "server.log").read_text()


def test_chunked_oversized_body_is_413(server: Running, client: MedoptClient, stored: Stored) -> None:
    def chunks():  # noqa: ANN202 - no Content-Length: the limit must apply while streaming
        for _ in range(40):
            yield b" " * 10_000

    response = httpx.post(server.url + V1, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    _assert_serves(client, stored)
