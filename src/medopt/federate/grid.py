"""A Grid that sees every message between the server and the clients: bytes per client, and what the server gets.

Why a wrapper rather than a strategy hook: SecAgg+ exchanges keys and masked vectors outside the strategy, and
both the byte accounting and the privacy inspection must see *everything* the server receives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from flwr.app import Message
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

from medopt.federate.rounds import RoundRecorder

logger = logging.getLogger(__name__)
MessageObserver = Callable[[Message], None]


def wait_for_nodes(grid: Grid, expected: int, timeout_s: float, poll_s: float = 0.05) -> int:
    """Block until ``expected`` nodes have registered with the grid, or ``timeout_s`` passed; returns the count.

    Why: Flower's simulation registers its nodes in another thread while the ServerApp starts, and the legacy
    client manager samples whatever has registered so far; without this wait, round 1 under load sometimes ran
    with fewer hospitals than the federation has.
    """
    deadline = time.monotonic() + timeout_s
    count = len(list(grid.get_node_ids()))
    while count < expected and time.monotonic() < deadline:
        time.sleep(poll_s)
        count = len(list(grid.get_node_ids()))
    if count < expected:
        logger.warning("only %d of %d clients registered within %.0f s; round 1 starts without the rest",
                       count, expected, timeout_s)
    return count


def message_bytes(message: Message) -> int:
    """Size of a message in Flower's wire format: the deflated bytes of the message and every nested object."""
    return int(sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values()))


class ObservedGrid(Grid):
    """Delegates to Flower's grid; counts bytes per node and shows every received message to ``observer``."""

    def __init__(self, inner: Grid, recorder: RoundRecorder, observer: MessageObserver | None = None) -> None:
        self._inner = inner
        self._recorder = recorder
        self._observer = observer

    def set_run(self, run: object) -> None:
        self._inner.set_run(run)  # type: ignore[arg-type]

    @property
    def run(self) -> object:
        return self._inner.run

    def create_message(self, content: object, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return self._inner.create_message(content, message_type, dst_node_id, group_id, ttl)  # type: ignore

    def get_node_ids(self) -> Iterable[int]:
        return self._inner.get_node_ids()

    def get_nodes(self) -> Iterable[object]:
        return self._inner.get_nodes()

    def _sent(self, messages: list[Message]) -> None:
        for msg in messages:
            self._recorder.traffic(msg.metadata.dst_node_id, sent=message_bytes(msg))

    def _received(self, replies: list[Message]) -> None:
        for msg in replies:
            self._recorder.traffic(msg.metadata.src_node_id, received=message_bytes(msg))
            if self._observer is not None:
                self._observer(msg)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        batch = list(messages)
        self._sent(batch)
        return self._inner.push_messages(batch)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self._inner.pull_messages(message_ids))
        self._received(replies)
        return replies

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        batch = list(messages)
        self._sent(batch)
        replies = list(self._inner.send_and_receive(batch, timeout=timeout))
        self._received(replies)
        return replies
