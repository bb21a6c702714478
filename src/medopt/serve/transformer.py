"""`python -m medopt.serve.transformer --artifact KEY --predictor-host HOST:PORT [--protocol v1|v2] [--http-port N]
[--store ROOT] [--config CFG] [--set serve.x=y]`: run the separate KServe transformer (``transformer_model.py``).

KServe's controller appends ``--model_name``, ``--predictor_host`` and ``--http_port`` to a transformer container
unless present, so those spellings are accepted too. Importing this module does nothing but define: flags are
parsed in ``main()``, and kserve (which parses ``sys.argv`` when first imported) is imported in ``run()``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from medopt.serve.launch import PREDICTOR_PROTOCOLS, import_kserve, load_serve_config, run_main

logger = logging.getLogger(__name__)


def run(config: Path | None, overrides: list[str], *, predictor_host: str, protocol: str, **updates: Any) -> int:
    """Load the config, open the store, and serve the transformer until SIGTERM/SIGINT; 1 if describing failed."""
    from medopt.store import open_store

    cfg, serve_cfg = load_serve_config(config, overrides, "describe", enable_grpc=False, **updates)
    import_kserve()
    from medopt.serve.server import serve_until_stopped
    from medopt.serve.transformer_model import MedoptTransformer, predictor_config

    predictor = predictor_config(predictor_host, protocol)
    store = open_store(cfg.store, base_dir=Path.cwd())
    logger.info("transformer '%s' for %s on http://%s:%d -> %s (%s)", serve_cfg.model_name, serve_cfg.artifact,
                serve_cfg.host, serve_cfg.http_port, predictor.predictor_base_url, protocol)
    return serve_until_stopped(MedoptTransformer(serve_cfg, store, serve_cfg.artifact, predictor), serve_cfg)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medopt.serve.transformer",
                                description="KServe transformer: decode images/DICOM for a medopt predictor.")
    p.add_argument("--artifact", help="Store key of the model whose preprocessing to apply (overrides serve.artifact).")
    p.add_argument("--predictor-host", "--predictor_host", dest="predictor_host", required=True,
                   help="Predictor HOST[:PORT] (KServe's controller passes --predictor_host).")
    p.add_argument("--protocol", choices=PREDICTOR_PROTOCOLS, default="v2",
                   help="Protocol to the predictor (default v2).")
    p.add_argument("--store", help="Root of a local store (same as --set store.kind=local --set store.root=ROOT).")
    p.add_argument("--config", type=Path, help="Experiment YAML (defaults when omitted).")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="Override: section.key=value.")
    p.add_argument("--host", help="Bind address (default 127.0.0.1).")
    p.add_argument("--http-port", "--http_port", "--port", dest="http_port", type=int, help="HTTP port.")
    p.add_argument("--model-name", "--model_name", dest="model_name", help="Model name in the URLs (the predictor's).")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.store:
        overrides += ["store.kind=local", f"store.root={args.store}"]

    def run_quietly() -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not one INFO line per forwarded request
        return run(args.config, overrides, predictor_host=args.predictor_host, protocol=args.protocol,
                   artifact=args.artifact, host=args.host, http_port=args.http_port, model_name=args.model_name)

    return run_main(run_quietly)


if __name__ == "__main__":
    sys.exit(main())
