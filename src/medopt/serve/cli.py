"""`medopt serve ARTIFACT --port N`: the model server from the main command line.

Registered on the main app with ``app.command("serve")(serve_app)``. Expected failures (bad config, missing or
corrupted artifact) print one line and exit 1 through ``medopt.cli.friendly_errors``, looked up at call time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve_app(
    artifact: Annotated[str, typer.Argument(help="Store key of the model to serve (ONNX or medopt model file).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Experiment YAML (defaults when omitted).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (V1 + V2 REST, /metrics).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="V2 gRPC port.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Model name in the URLs.")] = None,
) -> None:
    """Serve a stored model over KServe V1/V2 REST and V2 gRPC until SIGTERM or Ctrl+C."""
    from medopt.cli import friendly_errors
    from medopt.serve.__main__ import run

    code = friendly_errors(run)(config, overrides or [], artifact=artifact, host=host, http_port=port,
                                grpc_port=grpc_port, model_name=model_name)
    if code:
        raise typer.Exit(code)
