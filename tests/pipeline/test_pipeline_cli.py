"""`medopt pipeline compile|submit`: a package the KFP SDK loads, the kfp command line, one-line failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kfp import components

from medopt.cli import main

REPO = Path(__file__).resolve().parents[2]
CLUSTER = str(REPO / "configs" / "cluster.yaml")


def _one_error_line(code: int, err: str, expected: str) -> None:
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medopt: error: ") and expected in lines[0], err


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def refusing_api() -> Iterator[str]:
    """An HTTP server that passes the health check and answers every other KFP API call with 400 and a JSON error,
    as the API server does."""

    class Handler(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            healthy = self.path.endswith("/healthz")
            body = b"{}" if healthy else json.dumps({"error": "boom", "message": "Invalid input error: boom"}).encode()
            self.send_response(200 if healthy else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _refuse

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_compile_with_a_config_writes_a_package_the_sdk_loads(tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"
    assert main(["pipeline", "compile", "-c", CLUSTER, "-o", str(out)]) == 0
    loaded = components.load_component_from_file(str(out))
    assert json.loads(loaded.component_spec.inputs["config_yaml"].default)["name"] == "cluster"


def test_submit_dry_run_prints_the_kfp_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pkg.yaml"
    code = main(["pipeline", "submit", "--host", "http://127.0.0.1:9", "-c", CLUSTER, "-o", str(out),
                 "--experiment", "trials", "--run-name", "r1", "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    command = next(line.strip() for line in printed.splitlines() if line.strip().startswith("kfp "))
    assert command == (f"kfp --endpoint http://127.0.0.1:9 run create --experiment-name trials --run-name r1 "
                       f'--package-file {out} config_yaml="$(cat {CLUSTER})"')


def test_submit_to_a_host_that_does_not_answer_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = main(["pipeline", "submit", "--host", f"http://127.0.0.1:{_unused_port()}", "-o", str(tmp_path / "p.yaml")])
    _one_error_line(code, capsys.readouterr().err, "does not answer")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("host", "expected"), [("ftp://kfp:21", "not an http(s) URL"),
                                                ("http://127.0.0.1:99999", "invalid port")])
def test_submit_to_a_bad_host_url_is_one_line(host: str, expected: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pipeline", "submit", "--host", host, "-o", str(tmp_path / "p.yaml")])
    _one_error_line(code, capsys.readouterr().err, expected)


def test_an_api_that_refuses_the_run_is_one_line(refusing_api: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pipeline", "submit", "--host", refusing_api, "-o", str(tmp_path / "p.yaml")])
    _one_error_line(code, capsys.readouterr().err, "refused the run: Invalid input error: boom")
