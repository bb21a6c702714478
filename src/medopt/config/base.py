"""The base of every config section: frozen, unknown keys forbidden, defaults validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from medopt.errors import MedoptError


class ConfigError(MedoptError, ValueError):
    """A config file or override is invalid; the message is one readable line naming the field."""


class Section(BaseModel):
    """A config section. Frozen (a stage cannot mutate what it was given) and ``extra="forbid"`` (typos fail)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
