"""What every party must agree on besides the config: model geometry and the task, plus the clients' data."""

from __future__ import annotations

from dataclasses import dataclass

from medopt.config import ExperimentConfig
from medopt.data.types import ImageDataset
from medopt.federate.partitions import ClientData


@dataclass(frozen=True)
class TaskSpec:
    """Geometry of the shared model and the task it solves (clients may lack classes, so it comes from the pool)."""

    in_chans: int
    num_classes: int
    input_size: int
    task: str
    class_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ClientBundle:
    """The simulated hospitals' data, shipped once to Ray's object store and read by each client process."""

    spec: TaskSpec
    clients: tuple[ClientData, ...]


def task_spec(cfg: ExperimentConfig, dataset: ImageDataset) -> TaskSpec:
    """The spec implied by the dataset and the preprocessing (same rule as the train stage)."""
    from medopt.train.stage import model_geometry

    in_chans, num_classes, input_size = model_geometry(cfg, dataset)
    return TaskSpec(in_chans, num_classes, input_size, dataset.task, tuple(dataset.class_names))
