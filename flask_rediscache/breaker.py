"""The circuit breaker: a dead or hung server costs microseconds, not timeouts.

Closed → open after ``threshold`` consecutive connection failures → half-open
after ``cooldown`` seconds (exactly one probe goes through) → closed when the
probe succeeds, open again when it fails.

A wait for a pooled connection that timed out says nothing about the server,
so it never counts as a success (which would keep the breaker closed while
every thread queues behind a frozen server) and never resets the failure
count. It does count as a failure once the server is already suspect (a
failure was recorded and no success since): with a frozen server and more
threads than connections, most callers only ever see the pool wait, and
without this the breaker would open only as fast as the few connection
holders time out.

The clock is injectable so tests never sleep for a cooldown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("flask_rediscache")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """One breaker per Redis server (purposes sharing a server share it).

    The closed-state check on the hot path is one attribute read; transitions
    take a lock. ``on_change(name, state)`` is called after every transition,
    outside the lock; the caller protects itself from a raising callback.
    """

    def __init__(self, name: str, threshold: int, cooldown: float,
                 on_change: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = CLOSED
        self.failures = 0
        self._since = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self._on_change = on_change
        self._clock = clock

    @property
    def closed(self) -> bool:
        return self.state is CLOSED

    def allow(self) -> bool:
        """May a command be sent now? While open, lets one probe through per cooldown."""
        if self.state is CLOSED:
            return True
        with self._lock:
            if self.state is CLOSED:
                return True
            now = self._clock()
            # A probe that never reported back (its caller died) does not keep
            # the breaker half-open forever: after another cooldown, probe again.
            if now - self._since >= self.cooldown:
                changed = self._set(HALF_OPEN, now)
            else:
                return False
        self._notify(changed)
        return True

    def success(self) -> None:
        """A command got a reply: the server is alive."""
        if self.state is CLOSED and not self.failures:
            return
        with self._lock:
            self.failures = 0
            changed = self._set(CLOSED, self._clock()) if self.state is not CLOSED else None
        self._notify(changed)

    def failure(self) -> None:
        """A command failed to connect or timed out."""
        with self._lock:
            self.failures += 1
            changed = None
            if self.state is HALF_OPEN or (self.state is CLOSED and self.failures >= self.threshold):
                changed = self._set(OPEN, self._clock())
        self._notify(changed)

    def pool_wait_failed(self) -> None:
        """No pooled connection became free in time (see the module docstring)."""
        if self.failures:
            self.failure()

    def _set(self, state: str, now: float) -> str | None:
        if state is self.state and state is not OPEN:
            return None
        self.state = state
        self._since = now
        if state is OPEN:
            logger.warning("flask-rediscache: circuit breaker for %s opened after %d failures; "
                           "skipping Redis for %gs", self.name, self.failures, self.cooldown)
        elif state is CLOSED:
            logger.warning("flask-rediscache: circuit breaker for %s closed; Redis answers again",
                           self.name)
        return state

    def _notify(self, state: str | None) -> None:
        if state is not None and self._on_change is not None:
            self._on_change(self.name, state)
