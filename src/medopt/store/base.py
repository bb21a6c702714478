"""The ArtifactStore protocol: one interface over a local folder and S3/MinIO."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from medopt.errors import MedoptError
from medopt.store.manifest import Manifest

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*(/[A-Za-z0-9][A-Za-z0-9._=+-]*)*$")


class StoreError(MedoptError, RuntimeError):
    """Base class for artifact store failures."""


class ArtifactNotFound(StoreError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class ArtifactConflict(StoreError):
    """A different artifact already lives under this key; artifacts are immutable."""


class ArtifactCorrupted(StoreError):
    """The stored bytes no longer match the manifest's sha256."""


def validate_key(key: str) -> str:
    """Keys are relative slash-separated names; no '..', no absolute paths, no odd characters."""
    if not isinstance(key, str) or not _KEY.match(key) or any(p in (".", "..") for p in key.split("/")):
        raise StoreError(f"invalid artifact key {key!r}: use letters, digits and ._=+- separated by '/'")
    if key.endswith(".manifest.json"):
        raise StoreError(f"invalid artifact key {key!r}: the suffix .manifest.json is reserved")
    return key


def ensure_same_content(existing: Manifest, sha256: str) -> Manifest:
    """Artifacts are immutable: re-putting identical content is a no-op, different content is refused."""
    if existing.sha256 != sha256:
        raise ArtifactConflict(
            f"artifact '{existing.key}' already exists with sha256 {existing.sha256[:12]}; refusing to overwrite it "
            f"with different content ({sha256[:12]}). Use a new key."
        )
    return existing


@runtime_checkable
class ArtifactStore(Protocol):
    """Immutable, content-hashed artifacts addressed by key.

    ``put_*`` is idempotent for identical content and raises ArtifactConflict for different content under an existing
    key. ``get_*`` verifies the sha256 recorded in the manifest and raises ArtifactCorrupted on mismatch.
    """

    uri: str

    def put_file(
        self,
        key: str,
        src: Path,
        *,
        kind: str,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        parents: tuple[str, ...] | list[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> Manifest: ...

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        kind: str,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        parents: tuple[str, ...] | list[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> Manifest: ...

    def get_file(self, key: str, dest: Path) -> Path: ...

    def get_bytes(self, key: str) -> bytes: ...

    def manifest(self, key: str) -> Manifest: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def verify(self, key: str) -> Manifest: ...
