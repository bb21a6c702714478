"""`load_dataset`: one entry point from a DataConfig to a split, validated ImageDataset."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from medopt.config import DataConfig
from medopt.data.folder import load_folder
from medopt.data.medmnist import load_medmnist
from medopt.data.splits import stratified_split, stratified_subsample
from medopt.data.synthetic import synthetic_dataset
from medopt.data.tabular import load_table
from medopt.data.types import SPLIT_NAMES, ArraySplit, DataError, ImageDataset, LabeledPool

logger = logging.getLogger(__name__)


def _take(split_images: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, sites: np.ndarray | None,
          idx: np.ndarray) -> ArraySplit:
    return ArraySplit(
        images=split_images[idx],
        labels=labels[idx],
        groups=None if groups is None else groups[idx],
        sites=None if sites is None else sites[idx],
    )


def split_pool(pool: LabeledPool, cfg: DataConfig) -> ImageDataset:
    """Split a source without a predefined split (stratified; patients kept together when groups are known)."""
    k = len(pool.class_names)
    absent = np.setdiff1d(np.arange(k), pool.labels)
    if len(absent):
        names = [pool.class_names[i] for i in absent]
        raise DataError(f"{pool.source}: no images of class(es) {names}")
    parts = stratified_split(pool.labels, cfg.split, cfg.seed, groups=pool.groups)
    splits = [_take(pool.images, pool.labels, pool.groups, pool.sites, idx) for idx in parts]
    task = "binary" if k == 2 else "multiclass"
    return ImageDataset(*splits, class_names=pool.class_names, task=task, source=pool.source)


def _subsample(ds: ImageDataset, max_samples: int, seed: int) -> ImageDataset:
    """Stratified subsample of each split to at most ``max_samples`` (quick runs)."""
    out = {}
    for offset, name in enumerate(SPLIT_NAMES):
        split: ArraySplit = getattr(ds, name)
        idx = stratified_subsample(split.labels, max_samples, seed + offset)
        out[name] = _take(split.images, split.labels, split.groups, split.sites, idx)
    return dataclasses.replace(ds, **out)


def _load_unsubsampled(cfg: DataConfig) -> ImageDataset:
    if cfg.source == "synthetic":
        ds = synthetic_dataset(cfg.synthetic, cfg.seed, split=cfg.split)
        if cfg.class_names is None:
            return ds
        if len(cfg.class_names) != ds.num_classes:
            raise DataError(f"data.class_names has {len(cfg.class_names)} names but synthetic.num_classes is "
                            f"{ds.num_classes}")
        return dataclasses.replace(ds, class_names=cfg.class_names)
    path = Path(str(cfg.path))
    if cfg.source == "medmnist":
        return load_medmnist(path, cfg.class_names)
    if cfg.source == "folder":
        pool = load_folder(path, cfg.preprocess.image_size)
        if cfg.class_names is not None and tuple(cfg.class_names) != pool.class_names:
            raise DataError(f"{path}: class folders {pool.class_names} differ from data.class_names {cfg.class_names}")
        return split_pool(pool, cfg)
    return split_pool(load_table(cfg), cfg)


def load_dataset(cfg: DataConfig) -> ImageDataset:
    """Load ``cfg.source``, split it if the source has no split of its own, and subsample if ``max_samples`` is set.

    Raises:
        DataError: anything wrong with the data, naming the file, key or column.
    """
    ds = _load_unsubsampled(cfg)
    if cfg.max_samples is not None:
        ds = _subsample(ds, cfg.max_samples, cfg.seed)
    logger.info("loaded %s: task %s, %d classes, train/val/test %d/%d/%d, image %s x %d ch", ds.source, ds.task,
                ds.num_classes, len(ds.train), len(ds.val), len(ds.test), ds.image_size, ds.channels)
    return ds
