"""A rich progress display driven by progress events (see ``medopt.pipeline.progress``)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class PipelineProgress:
    """Shows an overall spinner and a per-epoch training bar with the latest validation numbers."""

    def __init__(self, console: Console, *, epochs: int) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self._epochs = epochs
        self._train = None

    def __enter__(self) -> "PipelineProgress":
        self._progress.__enter__()
        self._train = self._progress.add_task("train", total=self._epochs, info="waiting for data")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def update(self, event: dict[str, Any]) -> None:
        """Apply one event; unknown events are ignored."""
        if self._train is None:
            return
        if event.get("stage") == "train" and "epoch" in event:
            info = "  ".join(
                f"{k} {event[k]:.3f}" for k in ("train_loss", "val_loss", "val_auc", "val_acc") if k in event
            )
            self._progress.update(self._train, completed=int(event["epoch"]) + 1, info=info)
        elif event.get("stage") == "evaluate" and event.get("done"):
            self._progress.update(self._train, info="evaluated")
