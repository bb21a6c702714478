"""`python -m medopt.serve --artifact KEY [--config CFG] [--set serve.x=y] [--port N]`: run the model server.

Arguments are parsed inside ``main()``. kserve parses ``sys.argv`` when it is first imported (its module-level
argparse would read ``--config`` as its own ``--configure_logging``), so kserve is imported here with a clean argv.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medopt.config import ConfigError, ServeConfig, load_config

logger = logging.getLogger(__name__)


def _import_server() -> Any:
    """Import the kserve-based server with an argv kserve's import-time parser cannot misread."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        from medopt.serve import server
    finally:
        sys.argv = saved
    return server


def serve_config(base: ServeConfig, **updates: Any) -> ServeConfig:
    """``base`` with command-line values (those not None) applied and validated like a config file."""
    data = base.model_dump()
    data.update({k: v for k, v in updates.items() if v is not None})
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config error at serve.{where}: {first['msg']} (got {first.get('input')!r})") from None


def run(config: Path | None, overrides: list[str], **updates: Any) -> int:
    """Load the config, open the store, and serve ``serve.artifact`` until SIGTERM/SIGINT; 1 if loading failed."""
    from medopt.store import open_store

    cfg = load_config(config, overrides)
    serve_cfg = serve_config(cfg.serve, **updates)
    if not serve_cfg.artifact:
        raise ConfigError("no artifact to serve: pass --artifact KEY or set serve.artifact")
    _import_server()
    from medopt.serve.model import MedoptModel

    store = open_store(cfg.store, base_dir=Path.cwd())
    logger.info("serving %s as '%s' on http://%s:%d (gRPC %s)", serve_cfg.artifact, serve_cfg.model_name,
                serve_cfg.host, serve_cfg.http_port, serve_cfg.grpc_port if serve_cfg.enable_grpc else "off")
    return serve_until_stopped(MedoptModel(serve_cfg, store, serve_cfg.artifact), serve_cfg)


def serve_until_stopped(model: Any, serve_cfg: ServeConfig) -> int:
    """Serve one kserve model (predictor or transformer) until SIGTERM/SIGINT; 1 if it failed to load."""
    server = _import_server().MedoptServer([model], serve_cfg)
    asyncio.run(server.serve())
    if server.load_error is not None:
        logger.error("not serving: %s", server.load_error)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medopt.serve", description="Serve a stored medopt model (KServe).")
    p.add_argument("--artifact", help="Store key of the model (overrides serve.artifact).")
    p.add_argument("--config", type=Path, help="Experiment YAML (defaults when omitted).")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="Override: section.key=value.")
    p.add_argument("--host", help="Bind address (default 127.0.0.1).")
    p.add_argument("--port", dest="http_port", type=int, help="HTTP port.")
    p.add_argument("--grpc-port", dest="grpc_port", type=int, help="gRPC port.")
    p.add_argument("--model-name", dest="model_name", help="Model name in the URLs.")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args.config, args.overrides, artifact=args.artifact, host=args.host, http_port=args.http_port,
                   grpc_port=args.grpc_port, model_name=args.model_name)
    except (ConfigError, ValueError, OSError) as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
