"""The separate KServe transformer (subprocess) in front of the real predictor (subprocess): images and DICOM sent to
the transformer get the probabilities the predictor gives for the same files sent to it directly."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from medopt.store import LocalStore
from serve_fixtures import MODEL_KEY, NAME, ONNX_KEY, Running, Stored, start_server, start_transformer, stop, wait_ready

pytestmark = pytest.mark.integration
RNG = np.random.default_rng(7)
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"


@pytest.fixture(scope="module")
def services(stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    """The predictor and a transformer forwarding V2 to it, started together; the transformer gets its options as
    KServe's controller appends them."""
    tmp = tmp_path_factory.mktemp("transformer")
    predictor = start_server(stored, tmp, ONNX_KEY, enable_grpc=False)
    started = {"predictor": predictor, "transformer": start_transformer(stored, tmp, ONNX_KEY, predictor, "v2",
                                                                        kserve_style=True)}
    try:
        for running in started.values():
            wait_ready(running)
        yield started
    finally:
        stop(*started.values())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    from test_codec import dicom_bytes

    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (26, 22), dtype=np.uint8)).save(buf, format="PNG")
    dcm = dicom_bytes(RNG.integers(0, 4000, (24, 24)).astype(np.uint16), tmp_path_factory.mktemp("dicom"))
    return [buf.getvalue(), dcm]


def _v1(url: str, blobs: list[bytes]) -> httpx.Response:
    rows = [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]
    return httpx.post(url + V1, json={"instances": rows}, timeout=30)


def _v2(url: str, blobs: list[bytes]) -> httpx.Response:
    body = {"id": "req-1", "inputs": [{"name": "input", "shape": [len(blobs)], "datatype": "BYTES",
                                       "data": [base64.b64encode(b).decode() for b in blobs]}]}
    return httpx.post(url + V2, json=body, timeout=30)


def _answer(response: httpx.Response) -> tuple[np.ndarray, list[int], list[str], str]:
    """Probabilities, labels, class names and sha256 from a V1 or V2 JSON answer."""
    assert response.status_code == 200, response.text
    doc = response.json()
    if "predictions" in doc:
        p = doc["predictions"]
        return (np.array([r["probabilities"] for r in p]), [r["label"] for r in p], [r["class_name"] for r in p],
                doc["sha256"])
    out = {o["name"]: o for o in doc["outputs"]}
    probs = np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
    return probs, out["label"]["data"], out["class_name"]["data"], doc["parameters"]["sha256"]


@pytest.mark.parametrize("caller", [_v1, _v2], ids=["v1-b64", "v2-bytes"])
def test_png_and_dicom_through_transformer_match_predictor(services: dict[str, Running], files: list[bytes],
                                                           stored: Stored, caller) -> None:  # noqa: ANN001
    direct = _answer(caller(services["predictor"].url, files))
    via = _answer(caller(services["transformer"].url, files))
    np.testing.assert_allclose(via[0], direct[0], atol=1e-5, rtol=0)
    assert via[1:] == direct[1:]
    assert via[3] == stored.store.manifest(ONNX_KEY).sha256


def test_v2_caller_keeps_id_and_version(services: dict[str, Running], files: list[bytes]) -> None:
    doc = _v2(services["transformer"].url, files[:1]).json()
    assert doc["id"] == "req-1" and doc["model_version"] == doc["parameters"]["sha256"][:12]


def test_corrupt_png_is_one_line_4xx_and_next_request_succeeds(services: dict[str, Running],
                                                               files: list[bytes]) -> None:
    url = services["transformer"].url
    response = _v1(url, [b"\x89PNG\r\n\x1a\n broken"])
    assert response.status_code == 400, response.text
    reason = response.json()["error"]
    assert "image 0: not a decodable PNG/JPEG/DICOM file" in reason and "\n" not in reason
    assert _v1(url, files).status_code == 200


def test_predictor_refusal_is_a_one_line_4xx(services: dict[str, Running], files: list[bytes]) -> None:
    """64 small PNGs fit the transformer's 256 KiB body limit; their float32 tensor, as JSON, exceeds the predictor's."""
    response = _v1(services["transformer"].url, files[:1] * 64)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "predictor refused the request: request body over the 262144-byte limit"
    assert _v1(services["transformer"].url, files).status_code == 200


def test_v1_forwarding_answers_both_protocols(services: dict[str, Running], files: list[bytes],
                                              stored: Stored) -> None:
    """A transformer forwarding V1 (in this process, KServe's Model.__call__ and client) to the same predictor."""
    from kserve import InferInput, InferRequest

    from medopt.config import ServeConfig
    from medopt.serve.transformer_model import MedoptTransformer, predictor_config

    host = services["predictor"].url.removeprefix("http://")
    rows = [{"b64": base64.b64encode(b).decode()} for b in files]
    blobs = InferInput("input", [len(files)], "BYTES", data=[base64.b64encode(b).decode() for b in files])

    async def both() -> tuple[dict, dict]:
        t = MedoptTransformer(ServeConfig(model_name=NAME), stored.store, ONNX_KEY, predictor_config(host, "v1"))
        t.load()
        v1, _ = await t({"instances": rows})
        v2, _ = await t(InferRequest(NAME, [blobs], request_id="r"))
        return v1, v2.to_rest()[0]

    v1, v2 = asyncio.run(both())
    for doc, caller in ((v1, _v1), (v2, _v2)):
        direct = _answer(caller(services["predictor"].url, files))
        via = _answer(httpx.Response(200, json=doc))
        np.testing.assert_allclose(via[0], direct[0], atol=1e-5, rtol=0)
        assert via[1:] == direct[1:]


@pytest.mark.parametrize("key, meta", [(ONNX_KEY, False), (MODEL_KEY, False), ("c/model.onnx", True)])
def test_describe_model_equals_what_the_predictor_loads(stored: Stored, tmp_path: Path, key: str, meta: bool) -> None:
    """Older ONNX (parent's recipe), medopt model file, and ONNX with compress meta: same spec/info, no model built."""
    from test_model import _meta_store

    from medopt.compress.stage import serving_meta
    from medopt.models.model_file import load_model_file
    from medopt.serve.artifact import ServeError, describe_model, load_served_model

    store = stored.store
    if meta:
        bundle = load_model_file(stored.store.get_file(MODEL_KEY, tmp_path / "m.pt"))
        store = _meta_store(stored, tmp_path, serving_meta(bundle))
    served = load_served_model(store, key, name="m", runtime="auto", threads=1, max_rows=4, workdir=tmp_path)
    assert describe_model(store, key, name="m", max_rows=4, workdir=tmp_path) == (served.spec, served.info)
    other = LocalStore(tmp_path / "other")
    other.put_bytes("notes.txt", b"hello", kind="text/plain")
    with pytest.raises(ServeError, match="not a model"):
        describe_model(other, "notes.txt", name="m", max_rows=4, workdir=tmp_path)


def test_bad_options_fail_with_one_line(tmp_path: Path) -> None:
    from medopt.serve.transformer import main

    assert main(["--artifact", "x/model.onnx", "--predictor-host", "http://p:80"]) == 1
    assert main(["--artifact", "x/model.onnx", "--predictor-host", "p:80", "--port", "70000"]) == 1
    with pytest.raises(SystemExit):
        main(["--artifact", "x/model.onnx", "--predictor-host", "p:80", "--protocol", "grpc"])


def test_predictor_and_transformer_advertise_the_same_metadata(stored: Stored) -> None:
    from medopt.config import ServeConfig
    from medopt.serve.model import MedoptModel
    from medopt.serve.transformer_model import MedoptTransformer, predictor_config

    cfg = ServeConfig(model_name=NAME, threads=1)
    predictor = MedoptModel(cfg, stored.store, ONNX_KEY)
    transformer = MedoptTransformer(cfg, stored.store, ONNX_KEY, predictor_config("p:1", "v2"))
    assert predictor.get_input_types() == transformer.get_input_types()  # before loading: unknown sizes
    predictor.load()
    transformer.load()
    try:
        assert predictor.get_input_types() == transformer.get_input_types() == [
            {"name": "input", "datatype": "FP32", "shape": [-1, 1, 16, 16]}]
        assert predictor.get_output_types() == transformer.get_output_types()
        assert predictor.get_output_types()[0]["shape"] == [-1, 3]
    finally:
        predictor.stop()
