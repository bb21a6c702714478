"""Round 1 waits until every simulated hospital has registered with the grid."""

from __future__ import annotations

import time
from typing import Any

from medopt.federate.grid import wait_for_nodes


class _RegisteringGrid:
    """Nodes appear one by one, as Flower's simulation registers them in its own thread."""

    def __init__(self, total: int, every_s: float) -> None:
        self.start, self.total, self.every_s = time.monotonic(), total, every_s

    def get_node_ids(self) -> list[int]:
        ready = int((time.monotonic() - self.start) / self.every_s) + 1
        return list(range(min(ready, self.total)))


def test_waits_until_all_nodes_registered() -> None:
    grid: Any = _RegisteringGrid(total=3, every_s=0.1)
    assert wait_for_nodes(grid, expected=3, timeout_s=5.0) == 3
    assert time.monotonic() - grid.start >= 0.2


def test_gives_up_after_the_timeout_and_reports_what_came(caplog) -> None:
    grid: Any = _RegisteringGrid(total=2, every_s=0.01)
    t0 = time.monotonic()
    assert wait_for_nodes(grid, expected=3, timeout_s=0.3) == 2
    assert 0.3 <= time.monotonic() - t0 < 3.0
    assert "only 2 of 3 clients registered" in caplog.text
