"""Run ids: the names that a run's (or one step execution's) store keys live under."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from medopt.config import ExperimentConfig


def new_run_id(cfg: ExperimentConfig) -> str:
    """``<name>-<UTC time>-<config hash>``: sortable, unique per second and config."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:6]
    return f"{cfg.name}-{stamp}-{digest}"


def execution_id(cfg: ExperimentConfig) -> str:
    """A fresh id for one execution of a cached step: ``new_run_id`` plus 4 random hex digits.

    Store artifacts are immutable, so two executions of the same config (caching off, two runs in one second) must
    not share keys: a retrained model's bytes differ and would be refused.
    """
    return f"{new_run_id(cfg)}-{secrets.token_hex(2)}"
