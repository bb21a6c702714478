"""Progress events that cross process boundaries as one marked log line each.

A stage running in a kfp.local subprocess (or a pod) cannot draw on the user's terminal; it emits
``MEDOPT_PROGRESS {json}`` lines into its log, and the parent turns them into a progress bar.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKER = "MEDOPT_PROGRESS "


def emit(event: dict[str, Any]) -> None:
    """Write one progress event to stdout (flushed, so the parent sees it at once)."""
    sys.stdout.write(MARKER + json.dumps(event, default=float) + "\n")
    sys.stdout.flush()


def parse(line: str) -> dict[str, Any] | None:
    """The event in a log line, or None when the line is not a progress event."""
    idx = line.find(MARKER)
    if idx < 0:
        return None
    try:
        event = json.loads(line[idx + len(MARKER):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def epoch_event(stage: str, epoch: int, epochs: int, row: dict[str, Any]) -> dict[str, Any]:
    """A per-epoch event with the scalar numbers of the history row."""
    scalars = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    return {"stage": stage, "epoch": epoch, "epochs": epochs, **scalars}
