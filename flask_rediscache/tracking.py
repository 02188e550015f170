"""The process near-cache (``REDIS_LOCAL_CACHE = "process"``), kept correct by Redis.

One :class:`Tracker` per process and Redis server holds the local copies and
one dedicated connection on which Redis reports every change under the
namespace (see :mod:`~flask_rediscache.tracking_protocol`).

The rules that keep a copy correct:

* **Sequencing.** Each invalidation bumps a sequence number. A read
  registers its key (:meth:`Tracker.begin`) before it is sent; its result
  is kept (:meth:`Tracker.finish`) only if no invalidation of that key, no
  flush and no reconnect happened since. A write racing a read can
  therefore never leave the older value behind.
* **Polling on the read path.** A listener thread drains the connection
  every :attr:`Tracker.poll_interval`, but a thread that holds the GIL could
  delay it by milliseconds, so lookups check the connection themselves (a
  non-blocking ``can_read``) and apply what is pending before answering: the
  first lookup after :attr:`Tracker.check_interval` (0.2 ms) since the last
  check does, so a copy is served at most that long after its invalidation
  arrived, and a busy reader does not pay a system call on every hit.
* **Unknown state empties and bypasses.** Until tracking is established,
  after any error on the connection, after :attr:`Tracker.dead_after`
  seconds without an answer to the listener's ``PING``, and when a Sentinel
  reports another primary, the copies are dropped and every read goes to
  Redis; they are dropped again once tracking is back (messages may have
  been missed meanwhile).
* **Fork safety.** A child process (``gunicorn --preload``) forgets the
  parent's connection, thread and copies, and starts its own lazily on its
  first read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .local_cache import ABSENT, Copies, Copy, _Absent
from .masking import mask
from .tracking_protocol import FLUSH, KEYS, PONG, parse, start_tracking

logger = logging.getLogger("flask_rediscache")

_trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tracker in list(_trackers):
        tracker._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Tracker:
    """The near-cache of one process for one Redis server (see the module docstring).

    ``connect`` returns a new, unconnected redis-py ``Connection`` speaking
    RESP2 to the current primary; ``primary`` (Sentinel only) returns the
    address the primary should be at, checked against the connection's every
    :attr:`ping_interval`.
    """

    #: Seconds between the listener's drains of the connection while no one reads.
    poll_interval = 0.05
    #: Longest time (seconds) a lookup serves copies without checking the
    #: connection for pending invalidations.
    check_interval = 0.0002
    #: Seconds between the listener's ``PING``\\ s (the liveness check).
    ping_interval = 1.0
    #: Seconds without a ``PING`` answer after which the state is unknown.
    dead_after = 3.0
    #: Longest wait between two attempts to re-establish tracking.
    max_backoff = 2.0

    def __init__(self, connect: Callable[[], Any], prefix: bytes, copies: Copies, *,
                 where: str = "redis", secrets: tuple[str, ...] = (),
                 primary: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self.prefix = prefix
        self.copies = copies
        self.where = where
        self._secrets = secrets
        self._primary = primary
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: Any = None
        self._address: Any = None
        self._up = False
        self._seq = 0
        self._flush_seq = 0
        self._inflight: dict[bytes, int] = {}
        self._key_seq: dict[bytes, int] = {}
        self._last_ping = 0.0
        self._last_pong = 0.0
        self._next_check = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._logged_down = False
        #: Counters for stats: keys invalidated by messages, times the copies were emptied
        #: (flush, reconnect, lost connection), reads that bypassed the copies.
        self.invalidations = 0
        self.resets = 0
        self.bypassed = 0
        self.last_error: str | None = None
        _trackers.add(self)

    # -- the read path ---------------------------------------------------------
    @property
    def tracking(self) -> bool:
        """Whether copies are being served (tracking established and healthy)."""
        return self._up

    def lookup(self, key: bytes) -> Copy | _Absent:
        """The copy of ``key`` (after applying any pending invalidation), or :data:`ABSENT`."""
        if not self._up:
            self._wake()
            self.bypassed += 1
            return ABSENT
        with self._lock:
            now = self._clock()
            if now >= self._next_check:
                if not self._poll():
                    self.bypassed += 1
                    return ABSENT
                self._next_check = now + self.check_interval
            return self.copies.get(key, now)

    def begin(self, key: bytes) -> int | None:
        """Register a read of ``key`` about to be sent; None: don't keep its result."""
        if not self._up:
            self._wake()
            return None
        with self._lock:
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return self._seq

    def finish(self, key: bytes, token: int, raw: Copy | _Absent,
               expires_in: float | None = None) -> None:
        """End the read :meth:`begin` registered; keep ``raw`` (unless it is
        :data:`ABSENT`) if nothing could have invalidated it meanwhile."""
        with self._lock:
            up = self._poll()
            count = self._inflight.get(key, 0) - 1
            if count > 0:
                self._inflight[key] = count
                last = self._key_seq.get(key, 0)
            else:
                self._inflight.pop(key, None)
                last = self._key_seq.pop(key, 0)
            if up and raw is not ABSENT and last <= token and self._flush_seq <= token:
                self.copies.put(key, raw, self._clock(), expires_in)

    def wait(self, timeout: float) -> str | None:
        """Start tracking if needed and wait up to ``timeout`` seconds for it:
        None once copies can be served, else why not (for ``doctor``)."""
        deadline = self._clock() + timeout
        self._wake()
        while not self._up and self._clock() < deadline:
            time.sleep(0.01)
        if self._up:
            return None
        return self.last_error or f"not established within {timeout:g} s"

    def invalidate(self, keys: Iterable[bytes]) -> None:
        """Drop ``keys`` now (this process wrote them) and fail racing reads of them."""
        with self._lock:
            for key in keys:
                self._invalidated(key)

    def invalidate_all(self) -> None:
        with self._lock:
            self._reset()

    def stats(self) -> dict[str, Any]:
        copies = self.copies
        looked = copies.hits + copies.misses
        return {"mode": "process", "tracking": self._up, "entries": len(copies),
                "bytes": copies.bytes, "max_entries": copies.max_entries,
                "max_bytes": copies.max_bytes, "hits": copies.hits, "misses": copies.misses,
                "hit_ratio": round(copies.hits / looked, 4) if looked else None,
                "invalidations": self.invalidations, "resets": self.resets,
                "bypassed": self.bypassed, "evictions": copies.evictions,
                "last_error": self.last_error}

    # -- under the lock ------------------------------------------------------------
    def _poll(self) -> bool:
        """Apply what the connection holds; False if tracking is (now) down."""
        conn = self._conn
        if not self._up or conn is None:
            return False
        try:
            while conn.can_read(0):
                self._handle(conn.read_response())
        except Exception as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            return False
        if self._clock() - self._last_pong > self.dead_after:
            self._lost(f"no answer to PING for {self.dead_after:g} s")
            return False
        return True

    def _handle(self, message: Any) -> None:
        parsed = parse(message)
        if parsed is None:
            return
        kind, keys = parsed
        if kind == KEYS:
            for key in keys:
                self.invalidations += 1
                self._invalidated(key)
        elif kind == FLUSH:  # FLUSHDB / FLUSHALL
            self._reset()
        elif kind == PONG:
            self._last_pong = self._clock()

    def _invalidated(self, key: bytes) -> None:
        self.copies.discard(key)
        self._seq += 1
        if key in self._inflight:
            self._key_seq[key] = self._seq

    def _reset(self) -> None:
        self.copies.clear()
        self._seq += 1
        self._flush_seq = self._seq
        self.resets += 1

    def _lost(self, why: str) -> None:
        """Tracking is down: drop the connection and the copies; the listener reconnects."""
        conn, self._conn, self._up = self._conn, None, False
        self._reset()
        self.last_error = mask(why, self._secrets)
        if not self._logged_down:
            self._logged_down = True
            logger.warning("flask-rediscache: local cache tracking on %s lost (%s); reads go to "
                           "Redis until it is re-established", self.where, self.last_error)
        if conn is not None:
            with contextlib.suppress(Exception):  # it is being thrown away
                conn.disconnect()

    # -- the listener thread -------------------------------------------------------
    def _wake(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop = threading.Event()
                    self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                                    name="flask-rediscache-tracking", daemon=True)
                    self._thread.start()

    def close(self) -> None:
        """Stop the listener and drop the connection (tests; a process exiting needs nothing)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        with self._lock:
            if self._conn is not None or self._up:
                self._logged_down = True  # closing on purpose: nothing to warn about
                self._lost("closed")
        self._thread = None

    def _run(self, stop: threading.Event) -> None:
        backoff = 0.05
        pid = os.getpid()
        while not stop.is_set() and os.getpid() == pid:
            if not self._up:
                try:
                    self._establish()
                except Exception as exc:
                    self.last_error = mask(f"{type(exc).__name__}: {exc}", self._secrets)
                    if not self._logged_down:
                        self._logged_down = True
                        logger.warning("flask-rediscache: cannot start local cache tracking on %s "
                                       "(%s); reads go to Redis until it can", self.where,
                                       self.last_error)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                backoff = 0.05
            self._tick()
            stop.wait(self.poll_interval)

    def _tick(self) -> None:
        now = self._clock()
        check_primary = False
        with self._lock:
            if not self._poll():
                return
            if now - self._last_ping >= self.ping_interval:
                self._last_ping = now
                check_primary = self._primary is not None
                try:
                    self._conn.send_command("PING")
                except Exception as exc:
                    self._lost(f"{type(exc).__name__}: {exc}")
                    return
        if check_primary:
            self._check_primary()

    def _check_primary(self) -> None:
        assert self._primary is not None
        try:
            address = tuple(self._primary())
        except Exception as exc:
            with self._lock:
                self._lost(f"cannot ask the sentinels for the primary: {type(exc).__name__}: {exc}")
            return
        if address != self._address:
            with self._lock:
                self._lost(f"the primary moved to {address[0]}:{address[1]}")

    def _establish(self) -> None:
        conn = self._connect()
        try:
            start_tracking(conn, self.prefix)
        except BaseException:
            conn.disconnect()
            raise
        address = (conn.host, conn.port) if self._primary is not None else None
        with self._lock:
            self._reset()  # messages may have been missed while down
            self._conn, self._address, self._up = conn, address, True
            self._last_pong = self._last_ping = self._clock()
            self.last_error = None
        if self._logged_down:
            self._logged_down = False
            logger.warning("flask-rediscache: local cache tracking on %s re-established", self.where)

    def _forget(self) -> None:
        """In a forked child: nothing of the parent's is used (not even closed: the
        socket is the parent's too), and the copies start empty."""
        self._lock = threading.Lock()
        self._conn = None
        self._up = False
        self._thread = None
        self._stop = threading.Event()
        self._inflight.clear()
        self._key_seq.clear()
        self.copies.clear()
        self._seq += 1
        self._flush_seq = self._seq
