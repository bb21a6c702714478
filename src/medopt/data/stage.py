"""The data stage: load a configured source, split it, and store it as one hashed dataset artifact."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medopt.config import DataConfig
from medopt.data import describe_dataset, load_dataset, save_dataset
from medopt.store import ArtifactStore, Manifest


@dataclass(frozen=True)
class DataResult:
    manifest: Manifest
    summary: dict[str, Any]


def run_data(cfg: DataConfig, store: ArtifactStore, *, prefix: str, provenance: dict[str, Any] | None = None) -> DataResult:
    """Load ``cfg``'s source and store it at ``<prefix>/data/dataset.npz`` with its description in the manifest."""
    dataset = load_dataset(cfg)
    summary = describe_dataset(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.npz"
        save_dataset(dataset, path)
        manifest = store.put_file(
            f"{prefix}/data/dataset.npz", path, kind="dataset", config=provenance, meta=summary
        )
    return DataResult(manifest=manifest, summary=summary)
