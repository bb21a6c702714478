"""What input a model takes and what it outputs: one record, computed once at training and read by every stage.

Why one record: training, evaluation, compression, federation and serving must feed a network exactly what it was
trained on; deriving channels or the input size in each stage lets them drift apart (e.g. crop vs resize size).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from medopt.config import ModelConfig, PreprocessConfig
from medopt.data.types import TASKS, ImageDataset, Task
from medopt.models.model_spec import ModelError

if TYPE_CHECKING:  # torch, timm: imported only where a network is built (the slim predictor has neither)
    from torch import nn


@dataclass(frozen=True)
class ModelGeometry:
    """Input channels and side length after preprocessing, the classes and task, and the input normalisation.

    ``mean``/``std`` are the per-channel normalisation of ``preprocess`` ("meanstd"), or None for "unit" scaling.
    """

    in_chans: int
    input_size: int
    num_classes: int
    class_names: tuple[str, ...]
    task: Task
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.in_chans < 1 or self.input_size < 1 or self.num_classes < 1:
            raise ModelError(f"model geometry needs positive in_chans, input_size and num_classes, got {self}")
        if self.task not in TASKS:
            raise ModelError(f"model geometry task must be one of {', '.join(TASKS)}; got {self.task!r}")

    @classmethod
    def from_dataset(cls, preprocess: PreprocessConfig, dataset: ImageDataset) -> ModelGeometry:
        """The geometry a model needs to eat ``dataset`` after ``preprocess`` (what training computes and saves)."""
        return cls.for_preprocess(preprocess, in_chans=3 if preprocess.to_rgb else dataset.channels,
                                  class_names=dataset.class_names, task=dataset.task)

    @classmethod
    def for_preprocess(cls, preprocess: PreprocessConfig, *, in_chans: int, class_names: tuple[str, ...],
                       task: Task) -> ModelGeometry:
        """The geometry of a model taking ``in_chans`` channels after ``preprocess``: size and normalisation from it."""
        from medopt.data.transforms import crop_size_of  # imports torch; serving reads a saved geometry instead

        mean, std = normalisation(preprocess)
        return cls(in_chans=int(in_chans), input_size=crop_size_of(preprocess), num_classes=len(class_names),
                   class_names=tuple(str(c) for c in class_names), task=task, mean=mean, std=std)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one preprocessed sample."""
        return self.in_chans, self.input_size, self.input_size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/torch.save-able values (lists, not tuples)."""
        return {"in_chans": self.in_chans, "input_size": self.input_size, "num_classes": self.num_classes,
                "class_names": list(self.class_names), "task": self.task,
                "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelGeometry:
        """Read ``to_dict`` output back.

        Raises:
            ModelError: a key is missing or a value has the wrong type.
        """
        try:
            mean, std = data.get("mean"), data.get("std")
            return cls(in_chans=int(data["in_chans"]), input_size=int(data["input_size"]),
                       num_classes=int(data["num_classes"]), class_names=tuple(str(c) for c in data["class_names"]),
                       task=cast(Task, str(data["task"])),
                       mean=None if mean is None else tuple(float(m) for m in mean),
                       std=None if std is None else tuple(float(s) for s in std))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"unreadable model geometry ({exc.__class__.__name__}: {exc})") from None


def normalisation(preprocess: PreprocessConfig) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """(mean, std) the inputs are normalised with: the configured ones for "meanstd", (None, None) for "unit"."""
    if preprocess.normalize != "meanstd":
        return None, None
    return tuple(float(m) for m in preprocess.mean), tuple(float(s) for s in preprocess.std)


def build_model(model_config: ModelConfig, geometry: ModelGeometry) -> nn.Module:
    """The configured architecture, shaped for ``geometry`` (input channels and size, output classes)."""
    from medopt.models.factory import create_model

    return create_model(model_config, in_chans=geometry.in_chans, num_classes=geometry.num_classes,
                        input_size=geometry.input_size)
