"""What both serving entry points (``python -m medopt.serve`` and ``python -m medopt.serve.transformer``) share.

Nothing here imports kserve: kserve 0.21 parses ``sys.argv`` when it is first imported (``kserve.model_server``'s
module-level argparse, which exits on e.g. ``--config x`` read as ``--configure_logging x``). The entry points
therefore parse their own flags first and call ``import_kserve`` before importing any kserve-based module.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medopt.config import ConfigError, ExperimentConfig, ServeConfig, load_config
from medopt.errors import MedoptError

logger = logging.getLogger(__name__)

PREDICTOR_PROTOCOLS = ("v1", "v2")
# What an entry point reports as one line and exit code 1 instead of a traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (MedoptError, ValueError, OSError)


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


def load_serve_config(config: Path | None, overrides: list[str], purpose: str,
                      **updates: Any) -> tuple[ExperimentConfig, ServeConfig]:
    """The experiment config and its ``serve`` section with the flags applied; an artifact is required."""
    cfg = load_config(config, overrides)
    serve_cfg = serve_config(cfg.serve, **updates)
    if not serve_cfg.artifact:
        raise ConfigError(f"no artifact to {purpose}: pass --artifact KEY or set serve.artifact")
    return cfg, serve_cfg


def import_kserve() -> None:
    """Import kserve with an argv its import-time parser cannot misread (the caller's argv is restored)."""
    if "kserve" in sys.modules:
        return
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        importlib.import_module("kserve")
    finally:
        sys.argv = saved


def run_main(run: Callable[[], int]) -> int:
    """Set up logging and call ``run``; an expected error becomes one logged line and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run()
    except EXPECTED_ERRORS as exc:
        logger.error("%s", exc)
        return 1
