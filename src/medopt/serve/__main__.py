"""`python -m medopt.serve --artifact KEY [--config CFG] [--set serve.x=y] [--port N] [--device cpu|cuda]`: run the
model server.

Importing this module does nothing but define: flags are parsed in ``main()``, and kserve (which parses
``sys.argv`` when first imported) is imported in ``run()`` through ``launch.import_kserve``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from medopt.serve.launch import import_kserve, load_serve_config, run_main

logger = logging.getLogger(__name__)


def run(config: Path | None, overrides: list[str], **updates: Any) -> int:
    """Load the config, open the store, and serve ``serve.artifact`` until SIGTERM/SIGINT; 1 if loading failed."""
    from medopt.store import open_store

    cfg, serve_cfg = load_serve_config(config, overrides, "serve", **updates)
    store = open_store(cfg.store, base_dir=Path.cwd())
    from medopt.serve.artifact import resolve_runtime
    from medopt.serve.device import require_device

    # a missing artifact, one that is not a model, or a device (GPU, torch) this process lacks fails here in one
    # line, before kserve starts
    require_device(resolve_runtime(store.manifest(serve_cfg.artifact), serve_cfg.runtime), serve_cfg.device)
    import_kserve()
    from medopt.serve.model import MedoptModel
    from medopt.serve.server import serve_until_stopped

    logger.info("serving %s as '%s' on http://%s:%d (gRPC %s)", serve_cfg.artifact, serve_cfg.model_name,
                serve_cfg.host, serve_cfg.http_port, serve_cfg.grpc_port if serve_cfg.enable_grpc else "off")
    return serve_until_stopped(MedoptModel(serve_cfg, store, serve_cfg.artifact), serve_cfg)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medopt.serve", description="Serve a stored medopt model (KServe).")
    p.add_argument("--artifact", help="Store key of the model (overrides serve.artifact).")
    p.add_argument("--config", type=Path, help="Experiment YAML (defaults when omitted).")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="Override: section.key=value.")
    p.add_argument("--host", help="Bind address (default 127.0.0.1).")
    p.add_argument("--port", dest="http_port", type=int, help="HTTP port.")
    p.add_argument("--grpc-port", dest="grpc_port", type=int, help="gRPC port.")
    p.add_argument("--model-name", dest="model_name", help="Model name in the URLs.")
    p.add_argument("--device", choices=("cpu", "cuda"), help="Where the model runs (overrides serve.device).")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    return run_main(lambda: run(args.config, args.overrides, artifact=args.artifact, host=args.host,
                                http_port=args.http_port, grpc_port=args.grpc_port, model_name=args.model_name,
                                device=args.device))


if __name__ == "__main__":
    sys.exit(main())
