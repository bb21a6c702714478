"""The manifest stored beside every artifact: what it is, its content hash, and where it came from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed so multi-GB checkpoints never sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """Hex sha256 and byte count of a readable stream."""
    h = hashlib.sha256()
    n = 0
    for block in iter(lambda: stream.read(CHUNK), b""):
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


@dataclass(frozen=True)
class Manifest:
    """Metadata of one stored artifact. ``sha256`` is the identity: same key + same hash = same artifact."""

    key: str
    kind: str
    sha256: str
    size: int
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    parents: tuple[str, ...] = ()
    meta: dict[str, Any] | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["parents"] = list(self.parents)
        return json.dumps(data, indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        data["parents"] = tuple(data.get("parents") or ())
        return cls(**data)
