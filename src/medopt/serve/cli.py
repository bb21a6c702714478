"""`medopt serve ARTIFACT --port N`: the model server from the main command line.

Registered on the main app with ``app.command("serve")(serve_app)``. Expected failures (bad config, missing or
corrupted artifact) print one line and exit 1 through ``medopt.cli_common.friendly_errors``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from medopt.cli_common import ConfigOpt, SetOpt, friendly_errors


def serve_app(
    artifact: Annotated[str, typer.Argument(help="Store key of the model to serve (ONNX or medopt model file).")],
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (V1 + V2 REST, /metrics).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="V2 gRPC port.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Model name in the URLs.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (overrides serve.device).")] = None,
) -> None:
    """Serve a stored model over KServe V1/V2 REST and V2 gRPC until SIGTERM or Ctrl+C."""
    from medopt.serve.__main__ import run

    code = friendly_errors(run)(config, overrides or [], artifact=artifact, host=host, http_port=port,
                                grpc_port=grpc_port, model_name=model_name, device=device)
    if code:
        raise typer.Exit(code)
