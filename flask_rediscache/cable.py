"""Broadcast: the Rails guide's Action Cable role, over Redis Streams and server-sent events.

* :meth:`Cable.broadcast` JSON-encodes the data and appends it to the
  channel's stream (``XADD ... MAXLEN ~ REDIS_CABLE_HISTORY`` plus an
  ``EXPIRE``, one round trip, sent once: a lost reply is not worth a
  duplicate message), and returns the message id, or ``None`` through the
  cable purpose's fail-open boundary.
* :meth:`Cable.stream` returns a ``text/event-stream`` response: a ``retry:``
  line at once, then (with ``Last-Event-ID``) the messages the client missed,
  then every new message with its id, with heartbeat comments in between. It
  ends after ``REDIS_CABLE_MAX_STREAM_SECONDS`` (the browser reconnects and
  replays), when the client goes away (a failed write, or gunicorn's socket
  read as closed), or when Redis is unreachable as it opens. It is built in
  :mod:`~flask_rediscache.cable_stream`.
* All open streams of the process share one blocking Redis connection, the
  :class:`~flask_rediscache.cable_reader.Reader`'s.

Key layout: the stream of channel ``news`` is ``{<REDIS_CHANNEL_PREFIX>}:news``.
The prefix is a Redis Cluster hash tag (unless it already carries one), so
all of a purpose's streams and its wake stream live in one slot and one
``XREAD`` can read them all: on Cluster, the cable purpose is served by the
one node owning that slot (a busy cable purpose deserves its own Redis:
``REDIS_CABLE_URL``).

This module is a feature at the level of :mod:`~flask_rediscache.sessions`:
it finds its app's state through :mod:`~flask_rediscache.state` and never
imports :mod:`~flask_rediscache.extension`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from flask import Flask

from .cable_reader import BLOCK_SECONDS, WAKE_HISTORY, Reader
from .cable_stream import Streams
from .clients import build_target
from .config import channel_key_prefix
from .failopen import Boundary
from .retrying import Retrier

if TYPE_CHECKING:  # pragma: no cover
    from .state import AppState

logger = logging.getLogger("flask_rediscache")

#: Seconds a channel's stream outlives its last broadcast (keys never live forever).
CHANNEL_TTL: Final = 86_400
#: Default seconds between heartbeat comments of an open stream.
HEARTBEAT_SECONDS: Final = 15.0
#: Default ``retry:`` sent to the browser (milliseconds before it reconnects).
RETRY_MS: Final = 2000
#: The reserved name of the wake stream (channels may not start with ``__``).
WAKE_CHANNEL: Final = "__wake__"
#: Longest channel name accepted.
MAX_CHANNEL_LENGTH: Final = 256

_EVENT_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass(frozen=True)
class CableSettings:
    """The cable purpose's settings (``REDIS_CHANNEL_PREFIX`` and friends, validated)."""

    prefix: str
    history: int
    max_stream_seconds: float
    heartbeat: float = HEARTBEAT_SECONDS
    retry_ms: int = RETRY_MS


def check_channel(channel: Any) -> str:
    """The channel name, or ``ValueError`` saying what a channel name may be."""
    if (not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_LENGTH
            or channel.startswith("__") or any(ch.isspace() or not ch.isprintable() for ch in channel)):
        raise ValueError(f"channel {channel!r} is invalid: expected a non-empty string of at most "
                         f"{MAX_CHANNEL_LENGTH} printable characters without spaces, not starting with '__'")
    return channel


def encode(data: Any, event: str | None) -> dict[bytes, bytes]:
    """The stream entry's fields: ``d`` (the JSON text) and ``e`` (the event name, if any)."""
    if event is not None and (not isinstance(event, str) or not _EVENT_RE.match(event)):
        raise ValueError(f"event {event!r} is invalid: expected 1-64 characters from A-Z a-z 0-9 _ . : -")
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"broadcast data must be JSON-serialisable: {exc}") from exc
    fields = {b"d": text.encode("utf-8")}
    if event is not None:
        fields[b"e"] = event.encode("ascii")
    return fields


class Cable(Streams):
    """Broadcast and stream for one app (``state.extras["cable"]``).

    Publishing is here; subscribing (:meth:`stream`, :meth:`replay`) is its
    :class:`~flask_rediscache.cable_stream.Streams` base.

    :param client: the cable purpose's pooled redis-py client (broadcasts, replays).
    :param boundary: the cable purpose's fail-open boundary.
    :param connect_reader: builds the reader's own one-connection client.
    :param retrier: retries the reads that are safe to repeat (replay).
    """

    def __init__(self, app: Flask, client: Any, boundary: Boundary, settings: CableSettings, *,
                 connect_reader: Callable[[], Any], retrier: Retrier,
                 backoff: Callable[[int], float], block_seconds: float = BLOCK_SECONDS) -> None:
        self.app = app
        self.client = client
        self.boundary = boundary
        self.settings = settings
        self.key_prefix = channel_key_prefix(settings.prefix)
        self._idempotent = retrier
        self._recorded: dict[str, list[Any]] = {}
        self._record_lock = threading.Lock()
        self.wake_key = self.key(WAKE_CHANNEL, check=False)
        self.reader = Reader(connect_reader, boundary.call, self.wake_key, self._wake, backoff,
                             block_seconds=block_seconds)

    def key(self, channel: str, *, check: bool = True) -> bytes:
        """The Redis key of ``channel``'s stream."""
        if check:
            check_channel(channel)
        return f"{self.key_prefix}:{channel}".encode()

    # -- publishing ------------------------------------------------------------
    def _append(self, key: bytes, fields: dict[bytes, bytes], maxlen: int) -> bytes:
        """``XADD key MAXLEN ~ maxlen * fields`` + ``EXPIRE``: one round trip, sent once."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
        pipe.expire(key, CHANNEL_TTL)
        entry_id, _ = pipe.execute()
        return entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()

    def publish(self, channel: str, data: Any, event: str | None = None) -> str:
        """:meth:`broadcast` without the boundary: raises Redis' errors (the CLI's path)."""
        key = self.key(channel)
        fields = encode(data, event)
        self._record(channel, fields)
        return self._append(key, fields, self.settings.history).decode("ascii")

    def broadcast(self, channel: str, data: Any, *, event: str | None = None) -> str | None:
        """Append ``data`` (JSON) to ``channel``; the message id, or ``None`` if Redis failed.

        An invalid channel or event name, or data that JSON cannot encode,
        raises (a bug in the caller, not an outage).
        """
        key = self.key(channel)
        fields = encode(data, event)
        self._record(channel, fields)
        entry_id = self.boundary.call("broadcast", None, self._append, key, fields, self.settings.history)
        return None if entry_id is None else entry_id.decode("ascii")

    def _record(self, channel: str, fields: dict[bytes, bytes]) -> None:
        if self.app.testing:
            with self._record_lock:
                self._recorded.setdefault(channel, []).append(json.loads(fields[b"d"]))

    def broadcasts(self, channel: str) -> list[Any]:
        """What this process broadcast to ``channel`` (decoded), in order; only when ``app.testing``."""
        if not self.app.testing:
            raise RuntimeError("flask-rediscache: broadcasts() records only when app.testing is true")
        with self._record_lock:
            return list(self._recorded.get(check_channel(channel), ()))

    def clear_broadcasts(self) -> None:
        """Forget what :meth:`broadcasts` recorded."""
        with self._record_lock:
            self._recorded.clear()

    def _wake(self) -> None:
        """Wake the reader blocked in ``XREAD`` (a newly watched channel)."""
        client = self.client

        def append() -> Any:
            return client.xadd(self.wake_key, {b"w": b"1"}, maxlen=WAKE_HISTORY, approximate=True)

        self.boundary.call("stream", None, append)

    def close(self) -> None:
        """Stop the reader thread and end the open streams (app teardown, tests)."""
        self.reader.close()


def reader_backoff(base: float, cap: float) -> Callable[[int], float]:
    """Seconds to wait after the ``n``-th consecutive failed read: exponential, capped, at least 50 ms."""
    base = max(base, 0.05)
    cap = max(cap, base)

    def backoff(failures: int) -> float:
        return float(min(cap, base * 2 ** min(failures - 1, 16)))

    return backoff


def build_cable(state: AppState) -> Cable:
    """The :class:`Cable` of an app, on its ``cable`` target and boundary.

    The reader gets its own one-connection client for the same URL and
    topology, whose socket timeout (``REDIS_READ_TIMEOUT`` plus the ``XREAD``
    block time) lets it block; it connects on the first open stream.
    """
    settings = state.settings
    target = state.targets["cable"]
    reader_settings = replace(settings, pool_size=1, read_timeout=settings.read_timeout + BLOCK_SECONDS)
    url = settings.cable_url

    def connect_reader() -> Any:
        return build_target(url, reader_settings).client

    cable_settings = CableSettings(prefix=settings.channel_prefix, history=settings.cable_history,
                                   max_stream_seconds=settings.cable_max_stream_seconds)
    return Cable(state.app, target.client, state.boundaries["cable"], cable_settings,
                 connect_reader=connect_reader, retrier=Retrier.from_settings(settings),
                 backoff=reader_backoff(settings.reconnect_delay, max(settings.reconnect_delay_max, 1.0)))
