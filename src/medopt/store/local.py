"""Local-folder artifact store: the embedded default.

Layout: ``<root>/<key>`` holds the bytes and ``<root>/<key>.manifest.json`` the manifest. Both are written to a
temporary file in the same folder and renamed into place, so a crash never leaves a half-written artifact; the
manifest is written last, so an artifact without a manifest is invisible.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from medopt.atomic import atomic_copy, atomic_write_bytes
from medopt.store.base import (
    ArtifactConflict,
    ArtifactCorrupted,
    ArtifactNotFound,
    StoreError,
    ensure_same_content,
    validate_key,
)
from medopt.store.manifest import Manifest, sha256_file

MANIFEST_SUFFIX = ".manifest.json"


class LocalStore:
    """An ArtifactStore over a folder on the local disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _manifest_path(self, key: str) -> Path:
        return self.root / (validate_key(key) + MANIFEST_SUFFIX)

    def _check_conflict(self, key: str, sha: str) -> Manifest | None:
        if not self.exists(key):
            return None
        return ensure_same_content(self.manifest(key), sha)

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
    ) -> Manifest:
        src = Path(src)
        if not src.is_file():
            raise StoreError(f"cannot store '{key}': source file {src} does not exist")
        sha = sha256_file(src)
        existing = self._check_conflict(key, sha)
        if existing is not None:
            return existing
        dest = self._path(key)
        if dest.is_dir():
            raise ArtifactConflict(f"artifact key '{key}' is a folder of other artifacts")
        atomic_copy(src, dest)
        if sha256_file(dest) != sha:  # the source changed while we copied it
            dest.unlink(missing_ok=True)
            raise StoreError(f"cannot store '{key}': {src} changed while it was being copied")
        manifest = Manifest(
            key=key, kind=kind, sha256=sha, size=dest.stat().st_size, config=config, metrics=metrics,
            parents=tuple(parents), meta=meta,
        )
        atomic_write_bytes(self._manifest_path(key), manifest.to_json().encode())
        return manifest

    def put_bytes(self, key: str, data: bytes, *, kind: str, **kwargs: Any) -> Manifest:
        validate_key(key)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "blob"
            src.write_bytes(data)
            return self.put_file(key, src, kind=kind, **kwargs)

    def manifest(self, key: str) -> Manifest:
        path = self._manifest_path(key)
        if not path.is_file():
            raise ArtifactNotFound(f"artifact '{key}' not found in {self.uri}")
        try:
            return Manifest.from_json(path.read_text())
        except (ValueError, TypeError) as exc:
            raise ArtifactCorrupted(f"manifest of '{key}' is unreadable: {exc}") from None

    def verify(self, key: str) -> Manifest:
        manifest = self.manifest(key)
        path = self._path(key)
        if not path.is_file():
            raise ArtifactCorrupted(f"artifact '{key}' has a manifest but its file is missing")
        actual = sha256_file(path)
        if actual != manifest.sha256:
            raise ArtifactCorrupted(
                f"artifact '{key}' is corrupted: sha256 {actual[:12]} != manifest {manifest.sha256[:12]}"
            )
        return manifest

    def get_file(self, key: str, dest: Path) -> Path:
        self.verify(key)
        dest = Path(dest)
        atomic_copy(self._path(key), dest)
        if sha256_file(dest) != self.manifest(key).sha256:
            dest.unlink(missing_ok=True)
            raise ArtifactCorrupted(f"artifact '{key}' changed while it was being read")
        return dest

    def get_bytes(self, key: str) -> bytes:
        manifest = self.manifest(key)
        data = self._path(key).read_bytes() if self._path(key).is_file() else None
        if data is None:
            raise ArtifactCorrupted(f"artifact '{key}' has a manifest but its file is missing")
        if hashlib.sha256(data).hexdigest() != manifest.sha256:
            raise ArtifactCorrupted(f"artifact '{key}' is corrupted: content does not match its manifest sha256")
        return data

    def local_path(self, key: str) -> Path:
        """Verified path of an artifact inside the store (no copy): for large files read in place."""
        self.verify(key)
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._manifest_path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for p in self.root.rglob("*" + MANIFEST_SUFFIX):
            key = p.relative_to(self.root).as_posix()[: -len(MANIFEST_SUFFIX)]
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)
