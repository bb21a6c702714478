"""Every private KServe member medopt relies on, in one place, written against ``KSERVE_VERSION``.

``tests/serve/test_kserve_compat.py`` pins that version and checks each member below, so a kserve upgrade fails
loudly there instead of somewhere inside a live server. Why each one is needed:

- ``RESTServer._register_endpoints(app)`` and ``RESTServer._add_exception_handlers(app)``: kserve's V1/V2/health/
  metrics routes and its error-to-status handlers. The public ``create_application`` puts them on the module-level
  ``kserve.model_server:app`` (with kserve's timing middleware and docs settings); medopt needs them on its own app,
  which carries the body limit and one-line JSON errors.
- ``RESTServer._server``: the uvicorn server; kserve has no public way to stop ``RESTServer.start()`` from inside
  the process (medopt stops when the model fails to load, and on SIGTERM).
- ``InferInput._raw_data``: the raw bytes of a binary tensor. The public ``set_data_from_numpy`` copies, and the
  public ``InferRequest.from_bytes`` turns every element into a Python object; setting the bytes keeps decoding
  a 224x224 image in microseconds, and ``as_numpy`` then views them with ``np.frombuffer``.
- ``Model._http_client`` (read, not called): the transformer's forwarding client. It is built from the
  ``predictor_config`` property, which ``MedoptTransformer`` overrides to forward to its own predictor instead of
  the process-wide context variable kserve's ``ModelServer`` sets.

kserve 0.21 also parses ``sys.argv`` when it is first imported; that is handled where processes start
(``launch.import_kserve``), not here, since this module itself imports kserve.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from kserve import InferInput
from kserve.protocol.rest.server import RESTServer

KSERVE_VERSION = "0.21.0"


def add_kserve_routes(server: RESTServer, app: FastAPI) -> None:
    """kserve's REST endpoints and exception handlers on ``app`` (not on kserve's module-level app)."""
    server._register_endpoints(app)
    server._add_exception_handlers(app)


def request_exit(server: RESTServer) -> None:
    """Make a running ``server.start()`` return after it has finished the requests in flight."""
    server._server.should_exit = True


def raw_input(name: str, shape: list[int], datatype: str, parameters: dict[str, Any] | None,
              raw: bytes) -> InferInput:
    """An ``InferInput`` holding a binary tensor's bytes as they are (no copy, no per-element lists)."""
    inp = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
    inp._raw_data = raw
    return inp
