"""Artifact stores: a local folder by default, S3/MinIO when configured, one interface."""

from __future__ import annotations

from pathlib import Path

from medopt.config import StoreConfig
from medopt.store.base import (
    ArtifactConflict,
    ArtifactCorrupted,
    ArtifactNotFound,
    ArtifactStore,
    StoreError,
    validate_key,
)
from medopt.atomic import atomic_copy, atomic_write_bytes
from medopt.store.local import LocalStore
from medopt.store.manifest import Manifest, sha256_file

__all__ = [
    "ArtifactConflict", "ArtifactCorrupted", "ArtifactNotFound", "ArtifactStore", "LocalStore", "Manifest",
    "S3Store", "StoreError", "atomic_copy", "atomic_write_bytes", "open_store", "sha256_file", "validate_key",
]


def __getattr__(name: str) -> object:
    """``S3Store`` is imported on first use, so importing the package does not load the minio client."""
    if name == "S3Store":
        from medopt.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(cfg: StoreConfig, base_dir: Path | None = None) -> ArtifactStore:
    """Open the configured store; a relative local root is resolved against ``base_dir`` (default: cwd).

    For kind "s3" this checks the endpoint, credentials and bucket now, so a misconfiguration fails before any work.
    """
    if cfg.kind == "s3":
        from medopt.store.s3 import S3Store

        return S3Store(cfg)
    root = Path(cfg.root).expanduser()
    if not root.is_absolute() and base_dir is not None:
        root = base_dir / root
    return LocalStore(root)
