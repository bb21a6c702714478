"""Per-round bookkeeping of a federated run: global test metrics, per-client metrics and bytes, wall time, failures.

The server-side parts (strategy, observed grid, workflows) write into one ``RoundRecorder``; each finished round
becomes a plain JSON-friendly dict, handed to the ``on_round`` callback (progress bar, table) and stored.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
RoundFn = Callable[[dict[str, Any]], None]
TABLE_COLUMNS: tuple[str, ...] = ("round", "test_bacc", "test_auc", "test_loss", "fit_results", "failures",
                                  "sent_mb", "received_mb", "seconds")


def one_line(reason: object, limit: int = 160) -> str:
    """The last non-empty line of an error text, shortened: what the user sees instead of a traceback."""
    lines = [ln.strip() for ln in str(reason).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(reason).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Open:
    number: int
    start: float
    clients: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    sent: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    node_client: dict[int, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class RoundRecorder:
    """Collects one record per round; thread-safe because Flower's server runs in its own thread."""

    def __init__(self, on_round: RoundFn | None = None) -> None:
        self.rounds: list[dict[str, Any]] = []
        self._open: _Open | None = None
        self._lock = threading.Lock()
        self._on_round = on_round
        self._node_client: dict[int, int] = {}

    def start(self, number: int) -> None:
        """Open round ``number`` (the clock starts here: the fit instructions are about to be sent)."""
        with self._lock:
            self._open = _Open(number, time.perf_counter())

    def _current(self) -> _Open:
        if self._open is None:
            self._open = _Open(0, time.perf_counter())  # traffic before round 1 (initial parameters)
        return self._open

    def traffic(self, node_id: int, *, sent: int = 0, received: int = 0) -> None:
        """Count bytes sent to / received from a Flower node in the open round."""
        with self._lock:
            cur = self._current()
            cur.sent[node_id] = cur.sent.get(node_id, 0) + sent
            cur.received[node_id] = cur.received.get(node_id, 0) + received

    def client_metrics(self, node_id: int, metrics: dict[str, Any], prefix: str) -> None:
        """Scalar metrics a client reported; its 'client' entry maps the Flower node to the hospital index."""
        with self._lock:
            cur = self._current()
            cid = int(metrics.get("client", -1))
            if cid >= 0:
                self._node_client[node_id] = cid
            row = cur.clients.setdefault(str(cid if cid >= 0 else node_id), {})
            row.update({f"{prefix}{k}": float(v) for k, v in metrics.items() if k != "client"})

    def failure(self, reason: object) -> None:
        """A client failed or timed out: one line here, the full traceback stays in Flower's log."""
        line = one_line(reason)
        logger.warning("round %s: a client failed: %s", self._current().number, line)
        with self._lock:
            self._current().failures.append(line)

    def note(self, **values: Any) -> None:
        """Extra round facts (global metrics, epsilon, number of results)."""
        with self._lock:
            self._current().extra.update(values)

    def finish(self) -> dict[str, Any]:
        """Close the open round and hand its record to ``on_round``."""
        with self._lock:
            cur = self._current()
            self._open = None
        record = self._record(cur)
        self.rounds.append(record)
        logger.info("round %d: %s", record["round"], {k: record.get(k) for k in TABLE_COLUMNS})
        if self._on_round is not None:
            self._on_round(record)
        return record

    def _record(self, cur: _Open) -> dict[str, Any]:
        clients = {k: dict(v) for k, v in cur.clients.items()}
        for node, nbytes in cur.sent.items():
            key = str(self._node_client.get(node, node))
            clients.setdefault(key, {})["bytes_sent"] = float(nbytes)  # server -> client
        for node, nbytes in cur.received.items():
            key = str(self._node_client.get(node, node))
            clients.setdefault(key, {})["bytes_received"] = float(nbytes)  # client -> server
        return {"round": cur.number, "seconds": time.perf_counter() - cur.start, "failures": list(cur.failures),
                "sent_mb": sum(cur.sent.values()) / 1e6, "received_mb": sum(cur.received.values()) / 1e6,
                "clients": clients, **cur.extra}


def round_table(rounds: list[dict[str, Any]]) -> str:
    """The per-round table shown to the user (failures as a count; their one-line reasons are in the records)."""
    def cell(row: dict[str, Any], col: str) -> str:
        value = row.get(col, "")
        if col == "failures":
            value = len(value) if isinstance(value, list) else value
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
        return str(value)

    cells = [[cell(r, c) for c in TABLE_COLUMNS] for r in rounds]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(TABLE_COLUMNS, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
