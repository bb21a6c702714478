"""The data stage's artifact: a MedMNIST-like npz plus class names, task, source, patient and site ids.

Written atomically (temp file in the same folder, then os.replace) so a crashed run never leaves a half-written
dataset that a later stage would trust. Loaded without pickle, so an artifact cannot execute code.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from medopt.atomic import atomic_open
from medopt.data.types import SPLIT_NAMES, ArraySplit, DataError, ImageDataset
from medopt.store.base import ArtifactStore

FORMAT = "medopt-dataset/1"


def _id_array(values: np.ndarray) -> np.ndarray:
    """Ids as a pickle-free array: integers stay integers, everything else becomes unicode strings."""
    values = np.asarray(values)
    return values if values.dtype.kind in "iu" else values.astype(str)


def _arrays(ds: ImageDataset) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(FORMAT),
        "class_names": np.asarray(ds.class_names, dtype=str),
        "task": np.asarray(ds.task),
        "source": np.asarray(ds.source),
    }
    for name in SPLIT_NAMES:
        split: ArraySplit = getattr(ds, name)
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
        if split.groups is not None:
            arrays[f"{name}_groups"] = _id_array(split.groups)
        if split.sites is not None:
            arrays[f"{name}_sites"] = _id_array(split.sites)
    return arrays


def save_dataset(ds: ImageDataset, path: Path) -> None:
    """Write ``ds`` to ``path`` (compressed npz) atomically; parent folders are created."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **_arrays(ds))


def _split(npz: np.lib.npyio.NpzFile, name: str) -> ArraySplit:
    def optional(key: str) -> np.ndarray | None:
        return npz[key] if key in npz.files else None

    return ArraySplit(
        images=npz[f"{name}_images"],
        labels=npz[f"{name}_labels"],
        groups=optional(f"{name}_groups"),
        sites=optional(f"{name}_sites"),
    )


def read_dataset(path: Path) -> ImageDataset:
    """Read an artifact written by save_dataset.

    Raises:
        DataError: the file is missing, not an npz, not a medopt dataset, or lacks a key (named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: dataset artifact not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "format" not in npz.files or str(npz["format"]) != FORMAT:
                raise DataError(f"{path}: not a {FORMAT} artifact (keys {sorted(npz.files)})")
            splits = [_split(npz, name) for name in SPLIT_NAMES]
            return ImageDataset(
                *splits,
                class_names=tuple(str(c) for c in npz["class_names"]),
                task=str(npz["task"]),  # type: ignore[arg-type]
                source=str(npz["source"]),
            )
    except KeyError as exc:
        raise DataError(f"{path}: dataset artifact lacks key {exc}") from None
    except DataError as exc:
        if str(path) in str(exc):
            raise
        raise DataError(f"{path}: {exc}") from None
    except (OSError, ValueError, TypeError, AttributeError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: unreadable dataset artifact ({exc.__class__.__name__}: {exc})") from None


def load_dataset_artifact(store: ArtifactStore, key: str, workdir: Path) -> ImageDataset:
    """Fetch a stored dataset artifact into ``workdir`` (sha256-verified by the store) and read it."""
    return read_dataset(store.get_file(key, Path(workdir) / "dataset.npz"))
