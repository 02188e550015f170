"""Stream ids and :class:`Subscription`, the queue between the reader thread and one open stream.

The :class:`~flask_rediscache.cable_reader.Reader` pushes what its ``XREAD``
returns to each subscription; the stream response
(:mod:`~flask_rediscache.cable_stream`) takes it out, and compares ids with
:func:`parse_id` to drop what it already sent.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Final

#: A stream entry id, parsed: ``b"1700000000000-3"`` -> ``(1700000000000, 3)``.
StreamId = tuple[int, int]
#: What the reader hands to a subscription: ``(id, fields)`` as redis-py returns it.
Entry = tuple[bytes, dict[bytes, bytes]]

#: Undelivered entries a subscription may queue before it is dropped (the
#: client reconnects with ``Last-Event-ID`` and replays from Redis instead).
QUEUE_LIMIT: Final = 2000


def parse_id(raw: bytes | str) -> StreamId:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; raises ``ValueError`` otherwise."""
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    ms, sep, seq = text.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit() or len(ms) > 20 or len(seq) > 20:
        raise ValueError(f"not a stream id: {text!r}")
    return int(ms), int(seq)


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


class Subscription:
    """The queue between the reader thread and one open stream."""

    def __init__(self, channel: str, limit: int = QUEUE_LIMIT) -> None:
        self.channel = channel
        self.limit = limit
        self._items: deque[Entry] = deque()
        self._cond = threading.Condition(threading.Lock())
        #: Set when the queue overflowed or the reader dropped it: the stream should end.
        self.ended = False

    def push(self, entries: Sequence[Entry]) -> None:
        with self._cond:
            if self.ended:
                return
            if len(self._items) + len(entries) > self.limit:
                self.ended = True
                self._items.clear()
            else:
                self._items.extend(entries)
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify()

    def get(self, timeout: float) -> list[Entry]:
        """What arrived, waiting up to ``timeout`` seconds; ``[]`` on timeout or end."""
        with self._cond:
            if not self._items and not self.ended:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items
