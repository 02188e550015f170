"""The one choke point for Redis errors, and the circuit breaker behind it.

Every Redis command the cache and the session interface send goes through
:meth:`Guard.run`, the counterpart of Rails' ``failsafe(method, returning:)``:
it catches the failure, reports it (one rate-limited log line, the
:data:`~flask_rediscache.signals.cache_error` signal, ``REDIS_ERROR_HANDLER``)
and returns the value a miss would return. The rest of the package is written
as if Redis never failed.

The :class:`CircuitBreaker` makes a dead or hung server cheap: after
``threshold`` consecutive connection failures the guard stops sending commands
for ``cooldown`` seconds and fails at once, then lets a single probe through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import signals

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")
R = TypeVar("R")

#: What the guard swallows: everything redis-py raises, plus socket and TLS
#: errors (``OSError``) that escape it during connect. ``RedisClusterException``
#: is not a ``RedisError``: ``RedisCluster`` raises it when no node answers
#: ("Redis Cluster cannot be connected") or a slot has no node.
GUARDED_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
#: What counts towards opening the breaker: the server is unreachable or hung.
#: A refused command (READONLY, OOM, NOPERM) proves the server answers.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError,
                                                      RedisClusterException, OSError)

_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
LOG_INTERVAL = 10.0


def mask_credentials(text: str) -> str:
    """Hide passwords of URLs embedded in ``text``."""
    return _CREDENTIALS.sub(r"\1***@", text)


class CircuitOpenError(RedisConnectionError):
    """Raised (and swallowed) instead of a command while the breaker is open."""


def _is_pool_exhausted(exc: BaseException) -> bool:
    # redis-py's BlockingConnectionPool signals a local wait timeout with a
    # plain ConnectionError; it says nothing about the server's health.
    return isinstance(exc, RedisConnectionError) and "No connection available" in str(exc)


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after
    ``cooldown`` seconds (one probe) → closed on the probe's success.

    The closed-state check is a single attribute read so it costs nothing on
    the hot path; transitions take a lock.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, name: str, threshold: int, cooldown: float,
                 on_change: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = self.CLOSED
        self.failures = 0
        self._since = 0.0
        self._lock = threading.Lock()
        self._on_change = on_change

    def allow(self) -> bool:
        """May a command be sent now? Lets exactly one probe through per cooldown."""
        if self.state is self.CLOSED:
            return True
        with self._lock:
            now = time.monotonic()
            if self.state is self.CLOSED:
                return True
            # A probe that never reported back (its caller died) does not keep
            # the breaker half-open forever: after another cooldown, probe again.
            if now - self._since >= self.cooldown:
                self._set(self.HALF_OPEN, now)
                return True
            return False

    def success(self) -> None:
        if self.state is self.CLOSED and not self.failures:
            return
        with self._lock:
            self.failures = 0
            if self.state is not self.CLOSED:
                self._set(self.CLOSED, time.monotonic())

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state is self.HALF_OPEN or (
                self.state is self.CLOSED and self.failures >= self.threshold
            ):
                self._set(self.OPEN, time.monotonic())

    def _set(self, state: str, now: float) -> None:
        self.state = state
        self._since = now
        if state == self.OPEN:
            logger.warning("flask-rediscache: circuit breaker for %s opened after %d failures; "
                           "skipping Redis for %gs", self.name, self.failures, self.cooldown)
        elif state == self.CLOSED:
            logger.warning("flask-rediscache: circuit breaker for %s closed; Redis is back", self.name)
        if self._on_change is not None:
            self._on_change(self.name, state)


class Guard:
    """Runs Redis calls for one app and one client, failing open.

    ``run(method, returning, func, *args)`` returns ``func(*args)`` or, on a
    Redis error, reports it and returns ``returning``.
    """

    def __init__(self, app: Flask, name: str, breaker: CircuitBreaker,
                 handler: Callable[..., Any] | None) -> None:
        self.app = app
        self.name = name
        self.breaker = breaker
        self.handler = handler
        self.errors = 0
        self._last_log = -LOG_INTERVAL
        self._suppressed = 0
        self._log_lock = threading.Lock()

    def run(self, method: str, returning: R, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | R:
        breaker = self.breaker
        if breaker.state is not CircuitBreaker.CLOSED and not breaker.allow():
            self.report(method, returning, CircuitOpenError(f"circuit open for {self.name}"))
            return returning
        try:
            result = func(*args, **kwargs)
        except GUARDED_ERRORS as exc:
            if isinstance(exc, CONNECTION_ERRORS) and not _is_pool_exhausted(exc):
                breaker.failure()
            else:
                breaker.success()
            self.report(method, returning, exc)
            return returning
        if breaker.failures or breaker.state is not CircuitBreaker.CLOSED:
            breaker.success()
        return result

    def report(self, method: str, returning: Any, exc: BaseException) -> None:
        """Log (rate-limited), signal and hand ``exc`` to ``REDIS_ERROR_HANDLER``."""
        self.errors += 1
        self._log(method, exc)
        if signals.cache_error.receivers:
            signals.cache_error.send(self.app, method=method, exception=exc, returning=returning)
        if self.handler is not None:
            try:
                self.handler(method=method, returning=returning, exception=exc)
            except Exception:  # a broken handler must not break fail-open
                logger.exception("flask-rediscache: REDIS_ERROR_HANDLER raised")

    def _log(self, method: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._log_lock:
            if now - self._last_log < LOG_INTERVAL:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last_log = self._suppressed, 0, now
        more = f" ({suppressed} similar errors suppressed)" if suppressed else ""
        logger.warning("flask-rediscache: %s on %s failed, returning a miss: %s: %s%s",
                       method, self.name, type(exc).__name__, mask_credentials(str(exc)), more)
