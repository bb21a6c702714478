"""`medopt store ls|get|put`: look into, fetch from and add to the configured artifact store.

Registered on the main app as ``app.add_typer(store_app, name="store")``. The config file is the ``--config`` option
(not a positional argument as elsewhere) because ``ls`` already takes an optional positional prefix. Helpers from
``medopt.cli`` are imported when a command runs, so the two modules can import each other in either order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from medopt.store.base import ArtifactStore

store_app = typer.Typer(no_args_is_help=True, help="List, fetch and add artifacts in the configured store.")

F = TypeVar("F", bound=Callable[..., Any])
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Experiment YAML (defaults when omitted).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value (repeatable).")]


def _friendly(fn: F) -> F:
    """medopt.cli.friendly_errors, looked up at call time: expected failures print one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from medopt.cli import friendly_errors

        return friendly_errors(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _open(config: Path | None, overrides: list[str] | None) -> ArtifactStore:
    from medopt.cli import _load
    from medopt.store import open_store

    return open_store(_load(config, overrides).store, base_dir=Path.cwd())


@store_app.command("ls")
@_friendly
def store_ls(
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this (e.g. runs/quickstart-).")] = "",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """List artifacts: key, size in bytes, sha256 (first 12 hex digits), kind."""
    store = _open(config, set_)
    keys = store.list(prefix)
    width = max((len(k) for k in keys), default=0)
    for key in keys:
        m = store.manifest(key)
        typer.echo(f"{key:<{width}}  {m.size:>12}  {m.sha256[:12]}  {m.kind}")
    if not keys:
        typer.echo(f"no artifacts under '{prefix}' in {store.uri}", err=True)


@store_app.command("get")
@_friendly
def store_get(
    key: Annotated[str, typer.Argument(help="Artifact key.")],
    dest: Annotated[Path, typer.Argument(help="Destination file, or an existing folder to put it in.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Download an artifact; its sha256 is checked before the file appears at DEST."""
    store = _open(config, set_)
    target = dest / key.rsplit("/", 1)[-1] if dest.is_dir() else dest
    out = store.get_file(key, target)
    m = store.manifest(key)
    typer.echo(f"{key} -> {out} ({m.size} bytes, sha256 {m.sha256[:12]} verified)")


@store_app.command("put")
@_friendly
def store_put(
    key: Annotated[str, typer.Argument(help="New artifact key (artifacts are immutable).")],
    file: Annotated[Path, typer.Argument(help="Local file to upload.")],
    kind: Annotated[str, typer.Option("--kind", help="What it is: model, dataset, metrics, ...")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Add a file under a new key; a different file under an existing key is refused."""
    store = _open(config, set_)
    existed = store.exists(key)
    m = store.put_file(key, file, kind=kind, meta={"source_name": file.name, "added_by": "medopt store put"})
    note = "already stored with identical content" if existed else "stored"
    typer.echo(f"{key}: {note} ({m.size} bytes, sha256 {m.sha256[:12]}) in {store.uri}")
