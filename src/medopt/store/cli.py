"""`medopt store ls|get|put`: look into, fetch from and add to the configured artifact store.

Registered on the main app as ``app.add_typer(store_app, name="store")``. The config file is the ``--config`` option
(not a positional argument as elsewhere) because ``ls`` already takes an optional positional prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medopt.cli_common import ConfigOpt, SetOpt, friendly_errors, load_cli_config

if TYPE_CHECKING:
    from medopt.store.base import ArtifactStore

store_app = typer.Typer(no_args_is_help=True, help="List, fetch and add artifacts in the configured store.")


def _open(config: Path | None, overrides: list[str] | None) -> ArtifactStore:
    from medopt.store import open_store

    return open_store(load_cli_config(config, overrides).store, base_dir=Path.cwd())


@store_app.command("ls")
@friendly_errors
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
@friendly_errors
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
@friendly_errors
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
