"""Training history on disk: one JSON object of equal-length lists, written atomically."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from medopt.atomic import atomic_write_text
from medopt.errors import MedoptError


class HistoryError(MedoptError, ValueError):
    """A history is malformed (ragged lists, non-numbers) or its file cannot be read back."""


def _clean(history: Mapping[str, Sequence[float]]) -> dict[str, list[float | None]]:
    lengths = {key: len(values) for key, values in history.items()}
    if len(set(lengths.values())) > 1:
        raise HistoryError(f"history lists must have equal lengths, got {lengths}")
    out: dict[str, list[float | None]] = {}
    for key, values in history.items():
        row: list[float | None] = []
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                try:
                    v = float(v)  # numpy / 0-d torch scalars
                except (TypeError, ValueError):
                    raise HistoryError(f"history['{key}'][{i}] is not a number: {v!r}") from None
            row.append(None if math.isnan(v) or math.isinf(v) else v)
        out[str(key)] = row
    return out


def save_history(history: Mapping[str, Sequence[float]], path_json: str | Path) -> Path:
    """Write the history as strict JSON (NaN/inf become null) via a temp file and rename.

    Why atomic: a reader (the report stage, a UI) must never see a half-written file, and a crash mid-write must
    leave the previous version intact.
    """
    path = Path(path_json)
    text = json.dumps(_clean(history), indent=1, allow_nan=False)
    atomic_write_text(path, text)
    return path


def load_history(path_json: str | Path) -> dict[str, list[float]]:
    """Read a history written by ``save_history``; nulls come back as NaN."""
    path = Path(path_json)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HistoryError(f"cannot read history {path}: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise HistoryError(f"history {path} must be a JSON object of lists")
    return {k: [math.nan if v is None else float(v) for v in vals] for k, vals in raw.items()}
