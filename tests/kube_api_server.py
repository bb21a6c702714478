"""A tiny stand-in for the Kubernetes API server on loopback, for tests of medopt's create/watch/apply logic.

It answers only the REST routes a test registers, with canned responses, and records every request (method, path,
query, lower-cased headers, JSON body). The code under test talks to it through the real ``kubernetes`` client
classes, so their URL building, query parameters, content types and (de)serialization are exercised; nothing here
claims that KubeRay or KServe behave like the canned answers.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """One canned answer: a JSON document (dict/list) or raw text, with an HTTP status."""

    status: int = 200
    body: Any = None
    text: str | None = None


Handler = Callable[[Request], Reply]


def status_reply(code: int, message: str, reason: str = "") -> Reply:
    """A ``metav1.Status`` failure, as the API server sends for 4xx/5xx."""
    return Reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                        "reason": reason, "code": code})


@dataclass
class KubeAPI:
    """Routes (method, path regex) to handlers; a route given a list of replies serves them in turn (the last
    one repeats), so a test scripts a status progression."""

    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, handler: Handler | Reply | list[Reply]) -> None:
        if isinstance(handler, Reply):
            reply = handler
            handler = lambda _req: reply  # noqa: E731
        elif isinstance(handler, list):
            replies = list(handler)
            handler = lambda _req: replies.pop(0) if len(replies) > 1 else replies[0]  # noqa: E731
        self.routes.append((method, re.compile(f"^{path}$"), handler))

    def calls(self, method: str, path_regex: str = ".*") -> list[Request]:
        return [r for r in self.requests if r.method == method and re.match(f"^{path_regex}$", r.path)]

    def handle(self, req: Request) -> Reply:
        self.requests.append(req)
        for method, pattern, handler in self.routes:
            if method == req.method and pattern.match(req.path):
                return handler(req)
        return status_reply(404, f"no route for {req.method} {req.path} in the test server", "NotFound")

    def api_client(self) -> Any:
        """A real ``kubernetes.client.ApiClient`` pointed at this server."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        return client.ApiClient(configuration)


def _handler_class(api: KubeAPI) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            req = Request(self.command, parts.path, parse_qs(parts.query), headers, body)
            reply = api.handle(req)
            data = (reply.text if reply.text is not None else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/plain" if reply.text is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            return

    return _Handler


@pytest.fixture
def kube_api() -> Iterator[KubeAPI]:
    """A fresh ``KubeAPI`` served on 127.0.0.1 (an ephemeral port) for one test."""
    api = KubeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
