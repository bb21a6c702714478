"""Image folders: one sub-folder per class (sorted folder names are the class names), PNG/JPEG inside."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medopt.data.readers import PIL_SUFFIXES, read_pil, stack_images
from medopt.data.types import DataError, LabeledPool

logger = logging.getLogger(__name__)


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (data.path for source 'folder')")
    dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if len(dirs) < 2:
        raise DataError(f"{root}: need at least 2 class sub-folders, found {[d.name for d in dirs]}")
    return dirs


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in PIL_SUFFIXES)
    if not files:
        raise DataError(f"{class_dir}: class folder has no PNG/JPEG images")
    return files


def load_folder(root: Path, image_size: int) -> LabeledPool:
    """Read every PNG/JPEG under ``root/<class>/`` (recursively), resized to ``image_size`` so they stack.

    Images are stacked grayscale when every image is grayscale, else RGB.

    Raises:
        DataError: missing folder, fewer than 2 classes, an empty class folder, or an unreadable image (named).
    """
    images: list[np.ndarray] = []
    labels: list[int] = []
    dirs = _class_dirs(root)
    for k, class_dir in enumerate(dirs):
        files = _image_files(class_dir)
        images.extend(read_pil(f) for f in files)
        labels.extend([k] * len(files))
        logger.debug("folder %s: class %s has %d images", root, class_dir.name, len(files))
    return LabeledPool(
        images=stack_images(images, image_size),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=tuple(d.name for d in dirs),
        source=f"folder:{root}",
    )
