"""`python -m medopt.serve` and `medopt serve`: bad options fail with one line before anything starts, and importing
an entry point does no work (kserve, which parses sys.argv when imported, is imported only once flags are parsed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medopt.config import ConfigError, ServeConfig
from medopt.serve.__main__ import main
from medopt.serve.cli import serve_app
from medopt.serve.launch import serve_config


def test_serve_config_applies_and_validates_options() -> None:
    cfg = serve_config(ServeConfig(), http_port=9000, host=None, artifact="a/b.onnx")
    assert (cfg.http_port, cfg.host, cfg.artifact) == (9000, "127.0.0.1", "a/b.onnx")
    with pytest.raises(ConfigError, match="serve.http_port"):
        serve_config(ServeConfig(), http_port=0)


def test_main_refuses_missing_artifact_and_bad_port(tmp_path: Path) -> None:
    assert main(["--port", "8080"]) == 1
    assert main(["--artifact", "x/model.onnx", "--port", "70000"]) == 1
    assert main(["--artifact", "x/model.onnx", "--config", str(tmp_path / "missing.yaml")]) == 1


def test_cli_command_reports_one_line_error() -> None:
    app = typer.Typer()
    app.command("serve")(serve_app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "x/model.onnx", "--port", "0"])
    assert result.exit_code == 1
    assert "serve.http_port" in result.output


def test_importing_entry_points_does_no_work() -> None:
    """Importing the entry points, the client side and the codec leaves sys.argv alone and imports no kserve."""
    code = ("import sys; argv = ['x', '--config', 'a.yaml']; sys.argv = list(argv)\n"
            "import medopt.serve.__main__, medopt.serve.transformer, medopt.serve.launch, medopt.serve.binary, "
            "medopt.serve.codec, medopt.serve.http_client\n"
            "assert 'kserve' not in sys.modules and sys.argv == argv, (sorted(sys.modules), sys.argv)\n"
            "from medopt.serve.launch import import_kserve; import_kserve()\n"
            "assert 'kserve' in sys.modules and sys.argv == argv, sys.argv")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
