"""Config sections of the data stage: sources, splits, preprocessing, augmentation, partitions, DICOM."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from medopt.config.base import Section


class SyntheticConfig(Section):
    """Deterministic lesion-like images for tests and the quick start."""

    num_samples: int = Field(600, ge=10, description="Total images generated (before splitting).")
    image_size: int = Field(28, ge=8, le=1024)
    num_classes: int = Field(2, ge=2, le=20)
    channels: Literal[1, 3] = 1
    noise: float = Field(0.15, ge=0.0, le=1.0, description="Std of additive Gaussian noise in [0,1] units.")


class SplitConfig(Section):
    """Stratified split used when a source has no predefined train/val/test split."""

    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train+val+test must sum to 1, got {total:g}")
        return self


class PreprocessConfig(Section):
    """Deterministic preprocessing applied at training and evaluation alike."""

    image_size: int = Field(28, ge=8, le=1024, description="Images are resized to this square size.")
    crop: Literal["none", "center", "random"] = "none"
    crop_size: int | None = Field(None, ge=8, description="Crop size after resize; defaults to image_size.")
    normalize: Literal["unit", "meanstd"] = "unit"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    to_rgb: bool = Field(False, description="Repeat a grayscale channel to 3 channels (ImageNet backbones).")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class AugmentConfig(Section):
    """Random augmentation, applied to training batches only (never at evaluation)."""

    enabled: bool = False
    rotation_deg: float = Field(10.0, ge=0, le=180)
    hflip: bool = True
    vflip: bool = False
    scale_min: float = Field(0.9, gt=0, le=1)
    scale_max: float = Field(1.1, ge=1, le=2)


class PartitionConfig(Section):
    """How to split the training set across simulated hospitals for federated runs."""

    kind: Literal["iid", "dirichlet", "quantity", "site"] = "iid"
    num_clients: int = Field(3, ge=1, le=1000)
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; small = strong label or quantity skew.")
    min_per_client: int = Field(2, ge=1)


class DicomConfig(Section):
    """Intensity and frame handling for DICOM sources; the window defaults to the file's own tags."""

    window_center: float | None = None
    window_width: float | None = Field(None, gt=0)
    frame_policy: Literal["first", "middle", "reject"] = Field(
        "middle", description="Which frame of a multi-frame file is read; 'reject' refuses such files.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> "DicomConfig":
        if (self.window_center is None) != (self.window_width is None):
            raise ValueError("set both data.dicom.window_center and window_width, or neither")
        return self


class DataConfig(Section):
    source: Literal["synthetic", "medmnist", "folder", "dicom", "nifti", "csv"] = "synthetic"
    path: str | None = Field(None, description="npz file, image folder, or CSV of labels, by source.")
    image_root: str | None = Field(None, description="Folder the CSV's image paths are relative to.")
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = Field(None, description="Patient/group id column; splits keep groups together.")
    site_column: str | None = Field(None, description="Hospital/site column, used by partition kind 'site'.")
    class_names: tuple[str, ...] | None = None
    max_samples: int | None = Field(None, ge=10, description="Subsample each split (stratified) for quick runs.")
    seed: int = 0
    synthetic: SyntheticConfig = SyntheticConfig()
    split: SplitConfig = SplitConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    augment: AugmentConfig = AugmentConfig()
    partition: PartitionConfig = PartitionConfig()
    dicom: DicomConfig = DicomConfig()

    @model_validator(mode="after")
    def _path_needed(self) -> "DataConfig":
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}'")
        return self
