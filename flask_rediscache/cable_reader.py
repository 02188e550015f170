"""The one blocking reader of a process: ``XREAD BLOCK`` on every watched channel, fanned out.

Every open stream of an app (see :mod:`~flask_rediscache.cable`) registers a
:class:`~flask_rediscache.cable_subscription.Subscription` here; one daemon
thread per :class:`Reader` sends one ``XREAD BLOCK`` for all the channels
that have subscribers and pushes what arrives to each subscription's queue.
So 500 open streams in a worker are one blocked Redis connection, not 500.

The reader learns about a channel it is not reading yet through a small *wake
stream* (``XADD`` by the new subscriber): ``CLIENT UNBLOCK`` would be simpler
but needs admin rights, and the cable purpose runs with ``+@read +@write``.

No message is lost between a subscriber's replay and its live feed: a
subscriber registers *before* reading the channel's tip (or replaying after
``Last-Event-ID``), then tells the reader to read from that tip
(:meth:`Reader.start`). Whatever the reader delivers twice is dropped by the
subscriber, which keeps the id of the last message it sent.

The reader thread starts with the first subscription and exits after
:data:`IDLE_EXIT_SECONDS` without any, releasing its connection; a forked
child (gunicorn ``--preload``) starts its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .cable_subscription import Entry, Subscription, parse_id

logger = logging.getLogger("flask_rediscache")

#: Seconds one ``XREAD`` blocks; the reader's socket timeout is this plus ``REDIS_READ_TIMEOUT``.
BLOCK_SECONDS: Final = 5.0
#: Entries read per channel per ``XREAD``.
READ_COUNT: Final = 500
#: Seconds without any subscription after which the reader thread exits.
IDLE_EXIT_SECONDS: Final = 10.0
#: Entries kept in the wake stream.
WAKE_HISTORY: Final = 100

_FAILED: Final = object()


@dataclass
class _Watch:
    key: bytes
    #: The id to read after; ``None`` until a subscriber has told where to start.
    position: bytes | None = None
    subscribers: set[Subscription] = field(default_factory=set)


class Reader:
    """One blocking ``XREAD`` connection fanning messages out to a process's open streams.

    :param connect: builds the reader's own client (one connection, socket
        timeout above :data:`BLOCK_SECONDS`); called in the thread, lazily.
    :param call: ``call(method, returning, func, *args)``, the purpose's
        fail-open boundary (:meth:`~flask_rediscache.failopen.Boundary.call`).
    :param wake: appends to the wake stream (through the pooled client).
    :param backoff: ``backoff(failures) -> seconds`` to wait after a failed read.
    """

    def __init__(self, connect: Callable[[], Any], call: Callable[..., Any], wake_key: bytes,
                 wake: Callable[[], Any], backoff: Callable[[int], float], *,
                 block_seconds: float = BLOCK_SECONDS, idle_exit: float = IDLE_EXIT_SECONDS) -> None:
        self._connect = connect
        self._call = call
        self._wake_key = wake_key
        self._wake = wake
        self._backoff = backoff
        self.block_ms = max(1, int(block_seconds * 1000))
        self.idle_exit = idle_exit
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watches: dict[str, _Watch] = {}
        self._by_key: dict[bytes, _Watch] = {}
        self._generation = 0
        #: The generation of the XREAD in flight (None: not blocked in Redis).
        self._reading: int | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._pid = os.getpid()
        self._closed = False
        #: Completed XREAD calls (tests and ``stats``).
        self.reads = 0

    # -- the subscriber's side ------------------------------------------------
    def subscribe(self, channel: str, key: bytes, sub: Subscription) -> None:
        """Register ``sub`` (before the subscriber reads the channel's tip)."""
        with self._lock:
            self._after_fork()
            watch = self._watches.get(channel)
            if watch is None:
                watch = self._watches[channel] = _Watch(key)
                self._by_key[key] = watch
            watch.subscribers.add(sub)
            self._ensure_thread()

    def start(self, channel: str, after: bytes) -> None:
        """Read ``channel`` from after ``after`` (the subscriber's tip), waking the reader if needed."""
        wake = False
        with self._lock:
            watch = self._watches.get(channel)
            if watch is None:
                return
            if watch.position is None or parse_id(after) < parse_id(watch.position):
                # Never move a channel's position forward here: an earlier
                # subscriber may still need what lies between.
                watch.position = after
                self._generation += 1
                self._changed.notify()
                wake = self._reading is not None
            self._ensure_thread()
        if wake:
            self._wake()

    def unsubscribe(self, channel: str, sub: Subscription) -> None:
        with self._lock:
            watch = self._watches.get(channel)
            if watch is None:
                return
            watch.subscribers.discard(sub)
            if not watch.subscribers:
                del self._watches[channel]
                self._by_key.pop(watch.key, None)
                self._changed.notify()

    def watched(self) -> dict[str, int]:
        """``{channel: subscribers}`` (for tests and diagnostics)."""
        with self._lock:
            return {name: len(w.subscribers) for name, w in self._watches.items()}

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        """Stop the thread and end every subscription (app teardown, tests)."""
        with self._lock:
            self._closed = True
            subs = [s for w in self._watches.values() for s in w.subscribers]
            self._watches.clear()
            self._by_key.clear()
            self._changed.notify()
        for sub in subs:
            sub.end()

    def _ensure_thread(self) -> None:
        """Start the reader thread if it is not running (lock held)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="rediscache-cable-reader", daemon=True)
            self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child the parent's thread and connection are not ours (lock held)."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._thread = None
            self._client = None
            self._reading = None
            self._watches.clear()
            self._by_key.clear()

    # -- the reader thread -------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        wake_position: bytes | None = None
        try:
            while True:
                with self._lock:
                    idle_since = time.monotonic()
                    while not self._closed and not any(w.position for w in self._watches.values()):
                        if self._watches:  # subscribers still replaying: wait for start()
                            idle_since = time.monotonic()
                        left = self.idle_exit - (time.monotonic() - idle_since)
                        if left <= 0:
                            self._thread = None
                            self._disconnect()
                            return
                        self._changed.wait(left)
                    if self._closed:
                        self._disconnect()
                        return
                    streams = {w.key: w.position for w in self._watches.values() if w.position}
                    snapshot = dict(streams)
                    self._reading = self._generation
                if wake_position is None:
                    wake_position = self._guarded(None, self._wake_tip)
                    if wake_position is None:
                        failures += 1
                        self._sleep(self._backoff(failures))
                        continue
                streams[self._wake_key] = wake_position
                result = self._guarded(_FAILED, self._read, streams)
                with self._lock:
                    self._reading = None
                if result is _FAILED:
                    failures += 1
                    self._sleep(self._backoff(failures))
                    continue
                failures = 0
                self.reads += 1
                wake_position = self._deliver(result, snapshot, wake_position)
        except BaseException:  # pragma: no cover - a bug; the streams must not wait forever
            logger.exception("flask-rediscache: the cable reader stopped")
            with self._lock:
                self._thread = None
                subs = [s for w in self._watches.values() for s in w.subscribers]
            for sub in subs:
                sub.end()

    def _guarded(self, returning: Any, func: Callable[..., Any], *args: Any) -> Any:
        """``func`` through the boundary; with ``REDIS_FAIL_OPEN = False`` the boundary
        re-raises (after logging): the reader still only backs off and retries."""
        try:
            return self._call("stream", returning, func, *args)
        except Exception:
            if self._client is not None and hasattr(self._client, "close"):
                self._client.close()
            return returning

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            if not self._closed:
                self._changed.wait(seconds)

    def _disconnect(self) -> None:
        """Close the reader's own connection (the thread is leaving)."""
        client, self._client = self._client, None
        close = getattr(client, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # pragma: no cover - closing a dead socket
                logger.debug("flask-rediscache: closing the cable reader's connection failed", exc_info=True)

    def _client_or_connect(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _wake_tip(self) -> bytes:
        """The wake stream's newest id, so no wake-up is missed from here on."""
        client = self._client_or_connect()
        newest = client.xrevrange(self._wake_key, count=1)
        return newest[0][0] if newest else b"0-0"

    def _read(self, streams: dict[bytes, bytes]) -> Any:
        return self._client_or_connect().xread(streams, count=READ_COUNT, block=self.block_ms)

    def _deliver(self, result: Any, snapshot: dict[bytes, bytes], wake_position: bytes) -> bytes:
        if isinstance(result, dict):  # RESP3: {key: [[entries]]}
            items = [(key, value[0] if value and isinstance(value[0], list) else value)
                     for key, value in result.items()]
        else:  # RESP2: [[key, entries], ...]
            items = [(pair[0], pair[1]) for pair in result or ()]
        fanout: list[tuple[list[Subscription], list[Entry]]] = []
        with self._lock:
            for key, entries in items:
                if not entries:
                    continue
                if key == self._wake_key:
                    wake_position = entries[-1][0]
                    continue
                watch = self._by_key.get(key)
                if watch is None:
                    continue
                # Advance only if no subscriber moved the position back meanwhile.
                if watch.position == snapshot.get(key):
                    watch.position = entries[-1][0]
                fanout.append((list(watch.subscribers), entries))
        for subs, entries in fanout:
            for sub in subs:
                sub.push(entries)
        return wake_position
