"""Small pointers that pipeline steps pass to each other instead of large files.

A KFP artifact produced by a medopt component holds one JSON document naming the store, the key and the sha256 of
the real artifact, so KFP shows lineage while large files are written once, into the artifact store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medopt.errors import MedoptError
from medopt.store import Manifest


class RefError(MedoptError, ValueError):
    """A pipeline artifact does not hold a valid medopt store reference."""


@dataclass(frozen=True)
class StoreRef:
    store_uri: str
    key: str
    sha256: str
    kind: str

    @classmethod
    def from_manifest(cls, store_uri: str, manifest: Manifest) -> "StoreRef":
        return cls(store_uri=store_uri, key=manifest.key, sha256=manifest.sha256, kind=manifest.kind)

    def write(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: str | Path) -> "StoreRef":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise RefError(f"{path} is not a medopt store reference: {exc}") from None


def mark_disabled(*artifacts: Any) -> None:
    """Fill the outputs of a step that its config switched off with ``{"enabled": false}`` (KFP needs every output)."""
    for artifact in artifacts:
        path = Path(artifact.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"enabled": False}))
        artifact.metadata.update({"enabled": False})
