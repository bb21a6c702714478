"""The V2 fast paths (serve/fastpath.py) answer exactly as kserve's own route would, and the timing breakdown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from serve_fixtures import NAME, ONNX_KEY, SIZE, Running, Stored, direct_probs, running_server

from medopt.serve.launch import import_kserve

import_kserve()

from kserve import InferRequest  # noqa: E402
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb  # noqa: E402
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc  # noqa: E402
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse  # noqa: E402

from medopt.serve.binary import decode_binary_request, decode_json_request, encode_binary_request  # noqa: E402
from medopt.serve.codec_error import CodecError  # noqa: E402
from medopt.serve.timing import HEADER, STAGES, Timings, parse_header  # noqa: E402


def _json_body(x: np.ndarray) -> bytes:
    return orjson.dumps({"id": "r1", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                                 "data": x.ravel().tolist()}],
                         "outputs": [{"name": "probabilities"}], "parameters": {"k": 1}})


def test_json_fast_decoding_matches_kserve_pydantic_route() -> None:
    x = np.random.default_rng(1).standard_normal((2, 1, SIZE, SIZE)).astype(np.float32)
    body = _json_body(x)
    fast = decode_json_request(body, NAME)
    slow = InferRequest.from_inference_request(InferenceRequest.model_validate_json(body), NAME)
    assert fast.id == slow.id == "r1" and fast.parameters == slow.parameters
    assert [o.name for o in fast.request_outputs] == [o.name for o in slow.request_outputs]
    np.testing.assert_array_equal(fast.inputs[0].as_numpy(), slow.inputs[0].as_numpy())
    assert fast.inputs[0].as_numpy().dtype == slow.inputs[0].as_numpy().dtype == np.float32


def test_binary_fast_decoding_is_a_view_equal_to_kserve_lists() -> None:
    x = np.random.default_rng(2).standard_normal((1, 1, SIZE, SIZE)).astype(np.float32)
    body, n = encode_binary_request(x)
    fast = decode_binary_request(body, n, NAME).inputs[0].as_numpy()
    slow = InferRequest.from_bytes(body, n, NAME).inputs[0].as_numpy()
    np.testing.assert_array_equal(fast, slow)
    assert not fast.flags.owndata  # numpy views the body's bytes, no per-element copy


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"inputs": [{"name": "x", "shape": [1], '
                                  b'"datatype": "FP32"}]}', b'{"inputs": [{"name": "x", "shape": "1", '
                                  b'"datatype": "FP32", "data": [1]}]}', b'{"id": 3, "inputs": [{"name": "x", '
                                  b'"shape": [1], "datatype": "FP32", "data": [1]}]}'])
def test_json_fast_decoding_refuses_what_pydantic_refuses(body: bytes) -> None:
    with pytest.raises(CodecError):
        decode_json_request(body, NAME)
    with pytest.raises(Exception):  # noqa: B017,PT011 - pydantic's ValidationError or JSON errors
        InferRequest.from_inference_request(InferenceRequest.model_validate_json(body), NAME)


def test_timings_off_records_nothing_and_on_summarises() -> None:
    off = Timings()
    assert off.start() is None and off.record(None) is None and off.summary()["requests"] == 0
    on = Timings(enabled=True)
    t = on.start()
    assert t is not None
    for stage in ("read", "decode"):
        t.mark(stage)
    header = on.record(t)
    parsed = parse_header(header)
    assert set(parsed) == {"read", "decode", "total"} and parsed["total"] >= parsed["read"] + parsed["decode"] - 0.2
    assert on.summary()["requests"] == 1 and set(on.summary()["median_us"]) == set(parsed)
    on.reset()
    assert on.summary()["requests"] == 0


@pytest.fixture(scope="module")
def timed_server(stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_server(stored, tmp_path_factory.mktemp("timed"), ONNX_KEY, timing=True) as running:
        yield running


def _grpc_request(x: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=NAME, inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(x.shape))])
    request.raw_input_contents.append(x.tobytes())
    return request


def test_fast_paths_answer_like_kserves_response_model(server: Running, stored: Stored) -> None:
    x = np.random.default_rng(3).standard_normal((3, 1, SIZE, SIZE)).astype(np.float32)
    expected = direct_probs(stored.onnx_path, x)
    got = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=_json_body(x),
                     headers={"content-type": "application/json"})
    assert got.status_code == 200 and HEADER not in got.headers  # timing is off by default
    body = got.json()
    # exactly the fields (nulls included) kserve's route writes through its pydantic response model
    assert body == InferenceResponse.model_validate(body).model_dump(mode="json")
    assert body["id"] == "r1" and [o["name"] for o in body["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(np.asarray(body["outputs"][0]["data"]).reshape(3, -1), expected, atol=1e-5)
    raw, n = encode_binary_request(x)
    binary = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=raw,
                        headers={"Inference-Header-Content-Length": str(n), "content-type": "application/octet-stream"})
    assert binary.status_code == 200
    probs = next(o for o in binary.json()["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(np.asarray(probs["data"]).reshape(3, -1), expected, atol=1e-5)
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    reply, call = stub.ModelInfer.with_call(_grpc_request(x), timeout=30)
    assert not [k for k, _ in call.trailing_metadata() or () if k == HEADER]
    out = np.frombuffer(reply.raw_output_contents[0], dtype=np.float32).reshape(3, -1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert httpx.get(f"{server.url}/debug/timing").status_code == 404


@pytest.mark.parametrize(("body", "headers", "reason"), [
    (b"{not json", {"content-type": "application/json"}, "not valid JSON"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
     {"content-type": "application/json"}, "expected shape"),
    (b"\x00" * 40, {"Inference-Header-Content-Length": "999"}, "outside the body"),
    (b"{}", {"Inference-Header-Content-Length": "x"}, "integer"),
])
def test_fast_path_bad_input_is_400_with_reason(server: Running, body: bytes, headers: dict[str, str],
                                                reason: str) -> None:
    got = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers)
    assert got.status_code == 400 and reason in got.json()["error"]


def test_unknown_model_still_goes_to_kserve(server: Running) -> None:
    got = httpx.post(f"{server.url}/v2/models/nope/infer", content=b"{}", headers={"content-type": "application/json"})
    assert 400 <= got.status_code < 500


def test_timing_breakdown_when_on(timed_server: Running) -> None:
    x = np.random.default_rng(4).standard_normal((1, 1, SIZE, SIZE)).astype(np.float32)
    assert httpx.post(f"{timed_server.url}/debug/timing/reset").status_code == 200
    raw, n = encode_binary_request(x)
    for _ in range(3):
        got = httpx.post(f"{timed_server.url}/v2/models/{NAME}/infer", content=raw,
                         headers={"Inference-Header-Content-Length": str(n)})
        assert got.status_code == 200
        stages = parse_header(got.headers[HEADER])
        assert set(stages) == set(STAGES)
        assert all(v >= 0 for v in stages.values())
        parts = sum(v for k, v in stages.items() if k != "total")
        assert parts <= stages["total"] + 1.0  # the stages partition the server's time (1 us of rounding)
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(timed_server.grpc))
    _, call = stub.ModelInfer.with_call(_grpc_request(x), timeout=30)
    grpc_stages = parse_header(next(v for k, v in call.trailing_metadata() if k == HEADER))
    assert {"decode", "queue", "infer", "resume", "encode", "total"} <= set(grpc_stages)
    summary = httpx.get(f"{timed_server.url}/debug/timing").json()[NAME]
    assert summary["requests"] == 4 and set(summary["median_us"]) == set(STAGES)
    assert summary["batch_rows_mean"] == 1.0


def test_thread_budget_and_session_settings(stored: Stored) -> None:
    from medopt.serve.runners import onnx_runner, thread_budget

    assert thread_budget(None, 1) is None  # one worker: the runtime's default
    assert thread_budget(None, 2, cores=8) == 4 and thread_budget(None, 16, cores=8) == 1
    assert thread_budget(3, 2, cores=8) == 3  # configured threads win
    run = onnx_runner(stored.onnx_path, 2)
    options = run.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = onnx_runner(stored.onnx_path, 1, spinning=True).session.get_session_options()  # type: ignore[attr-defined]
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_model_applies_the_thread_budget(stored: Stored, tmp_path: Path) -> None:
    from medopt.config import ServeConfig
    from medopt.serve.model import MedoptModel

    model = MedoptModel(ServeConfig(model_name=NAME, workers=2), stored.store, ONNX_KEY)
    from medopt.serve.runners import usable_cores

    assert model.threads == max(1, usable_cores() // 2)
    assert MedoptModel(ServeConfig(model_name=NAME, threads=3, workers=2), stored.store, ONNX_KEY).threads == 3
    model.load()
    try:
        options = model.served.runner.session.get_session_options()  # type: ignore[union-attr]
        assert options.intra_op_num_threads == model.threads
    finally:
        model.stop()


def test_inline_inference_needs_one_worker() -> None:
    from pydantic import ValidationError

    from medopt.config import ServeConfig

    with pytest.raises(ValidationError, match="workers must be 1"):
        ServeConfig(inline_inference=True, workers=2)
    assert ServeConfig().inline_inference is False and ServeConfig().timing is False


def test_server_runs_on_uvloop() -> None:
    import uvloop

    from medopt.serve.server import event_loop_factory

    assert event_loop_factory() is uvloop.new_event_loop
