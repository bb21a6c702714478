"""What every `medopt` sub-command shares: the consoles, the config options, config loading and the error wrapper.

Its own module so that the sub-command modules (``medopt.serve.cli``, ``medopt.store.cli``) and the main app in
``medopt.cli`` all import it instead of each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from medopt.errors import MedoptError

if TYPE_CHECKING:
    from medopt.config import ExperimentConfig

PROG = "medopt"
USER_ERROR_EXIT = 1
"""Exit code of a failure the user can fix (bad config, missing artifact, unusable device); usage errors exit 2."""

console = Console()
F = TypeVar("F", bound=Callable[..., Any])

ConfigArg = Annotated[Path | None, typer.Argument(help="Experiment YAML (defaults when omitted).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Experiment YAML (defaults when omitted).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value (repeatable).")]

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (MedoptError, OSError)
"""Failures reported as one line: medopt's own errors, and the file system's (a path the user named, a full disk)."""


def error_line(exc: BaseException) -> str:
    """The one line the user sees for ``exc``: its message with line breaks folded, or its class name."""
    text = " ".join(str(exc).split())
    return f"{PROG}: error: {text or type(exc).__name__}"


def friendly_errors(fn: F) -> F:
    """Run ``fn``; an expected failure prints ``medopt: error: <message>`` on stderr and exits 1, with no traceback.

    Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            typer.echo(error_line(exc), err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]


def load_cli_config(config: Path | None, overrides: list[str] | None) -> ExperimentConfig:
    """The experiment config from the optional YAML file and the ``--set`` overrides."""
    from medopt.config import load_config

    return load_config(config, overrides or [])
