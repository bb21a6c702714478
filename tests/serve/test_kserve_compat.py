"""The private kserve members medopt relies on (``serve/kserve_compat.py``), pinned to the kserve they were written for.

A kserve upgrade fails here first: re-check each member against the new kserve, then move ``KSERVE_VERSION``.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version

import numpy as np
from fastapi import FastAPI
from kserve import InferInput, Model, PredictorConfig
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer

from medopt.serve.kserve_compat import KSERVE_VERSION, add_kserve_routes, raw_input, request_exit


def _rest_server() -> RESTServer:
    repository = ModelRepository()
    return RESTServer(FASTAPI_APP_IMPORT_STRING, DataPlane(model_registry=repository),
                      ModelRepositoryExtension(model_registry=repository), 0)


def test_installed_kserve_is_the_one_the_shim_was_written_for() -> None:
    assert version("kserve") == KSERVE_VERSION


def test_rest_server_routes_and_handlers_go_on_our_app() -> None:
    for member in (RESTServer._register_endpoints, RESTServer._add_exception_handlers):
        assert list(inspect.signature(member).parameters) == ["self", "app"]
    from fastapi.testclient import TestClient

    app = FastAPI()
    add_kserve_routes(_rest_server(), app)
    assert InvalidInput in app.exception_handlers
    with TestClient(app) as client:
        assert client.get("/").status_code == 200 and client.get("/v2/health/live").status_code == 200
        assert "python_info" in client.get("/metrics").text
        missing = client.post("/v2/models/nope/infer", json={"inputs": []})  # kserve's ModelNotFound handler
        assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_rest_server_holds_a_uvicorn_server_to_stop() -> None:
    import uvicorn

    server = _rest_server()
    assert isinstance(server._server, uvicorn.Server) and not server._server.should_exit
    request_exit(server)
    assert server._server.should_exit


def test_raw_bytes_are_viewed_by_as_numpy() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inp = raw_input("input", [2, 3], "FP32", {"binary_data_size": x.nbytes}, x.tobytes())
    assert inp._raw_data == x.tobytes() and inp.data is None
    np.testing.assert_array_equal(inp.as_numpy(), x)
    assert "_raw_data" in inspect.getsource(InferInput.as_numpy)


def test_forwarding_client_reads_the_overridden_predictor_config() -> None:
    """MedoptTransformer overrides ``predictor_config``; kserve's ``_http_client`` must build from that property."""

    class Forwarding(Model):
        @property
        def predictor_config(self) -> PredictorConfig:
            return PredictorConfig(predictor_host="predictor:8080", predictor_protocol="v2")

    assert isinstance(inspect.getattr_static(Model, "predictor_config"), property)
    assert isinstance(inspect.getattr_static(Model, "_http_client"), property)
    assert Forwarding("m")._http_client is not None
    assert "self.predictor_config" in inspect.getsource(Model._http_client.fget)  # type: ignore[attr-defined]


def test_kserve_still_parses_argv_when_imported() -> None:
    """Why ``launch.import_kserve`` exists: importing kserve with medopt's ``--config`` flag exits with an error."""
    code = "import sys; sys.argv = ['x', '--config', 'a.yaml']; import kserve"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--configure_logging" in result.stderr
