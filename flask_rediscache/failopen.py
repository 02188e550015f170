"""The fail-open boundary: the one place where Redis errors are caught.

The counterpart of Rails' ``failsafe(method, returning:)``. Each user-visible
operation (a public cache method, ``open_session``, ``save_session``, a
broadcast) runs its Redis work through :meth:`Boundary.call` exactly once per
round trip group; everything below it (:mod:`flask_rediscache.store`) raises,
and everything above it is written as if Redis never failed.

On an error the boundary

1. updates the circuit breaker (connection failures and timeouts count; a
   refused command such as ``READONLY``, ``OOM`` or ``NOPERM`` proves the
   server answers; a pool wait counts only against a server already suspect),
2. logs one warning line, rate-limited per app (secrets masked),
3. sends :data:`~flask_rediscache.signals.cache_error`,
4. calls ``REDIS_ERROR_HANDLER(method=, returning=, exception=)``,
5. returns ``returning``, or re-raises when ``REDIS_FAIL_OPEN = False``.

A signal receiver or error handler that raises is logged once and never
breaks steps 1–5.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import signals
from .breaker import CLOSED, CircuitBreaker
from .errors import CircuitOpenError, PoolExhaustedError
from .masking import mask

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")
R = TypeVar("R")

#: What the boundary catches: everything redis-py raises, plus socket and TLS
#: errors (``OSError``) that escape it during connect. ``RedisClusterException``
#: is not a ``RedisError``: ``RedisCluster`` raises it when no node answers.
#: Only store calls run inside the boundary, never user code, so an
#: ``OSError`` here always comes from the network.
CAUGHT: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
#: What counts towards opening the breaker: the server is unreachable or hung.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError,
                                                      RedisClusterException, OSError)
#: Seconds between two error log lines of one app (the others are counted).
LOG_INTERVAL = 10.0


class LogLimiter:
    """At most one error line per :data:`LOG_INTERVAL` for one app, all purposes together."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = -LOG_INTERVAL
        self._suppressed = 0
        self._lock = threading.Lock()

    def admit(self) -> int | None:
        """``None`` to stay quiet, else how many lines were suppressed since the last one."""
        now = self._clock()
        with self._lock:
            if now - self._last < LOG_INTERVAL:
                self._suppressed += 1
                return None
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        return suppressed


class Boundary:
    """Fail-open for one app and one Redis purpose (cache, session, ...)."""

    def __init__(self, app: Flask, name: str, breaker: CircuitBreaker, *,
                 handler: Callable[..., Any] | None, fail_open: bool, limiter: LogLimiter,
                 secrets: Iterable[str | None] = ()) -> None:
        self.app = app
        #: Safe to print: the purpose and the masked address.
        self.name = name
        self.breaker = breaker
        self.handler = handler
        self.fail_open = fail_open
        self.limiter = limiter
        self.secrets = tuple(s for s in secrets if s)
        #: Errors seen (for ``flask redis stats``).
        self.errors = 0

    def call(self, method: str, returning: R, func: Callable[..., T], *args: Any) -> T | R:
        """``func(*args)``, or ``returning`` after reporting a Redis error."""
        breaker = self.breaker
        if breaker.state is not CLOSED and not breaker.allow():
            return self._fail(method, returning, CircuitOpenError(f"circuit breaker open for {self.name}"))
        try:
            result = func(*args)
        except PoolExhaustedError as exc:
            breaker.pool_wait_failed()
            return self._fail(method, returning, exc)
        except CONNECTION_ERRORS as exc:
            breaker.failure()
            return self._fail(method, returning, exc)
        except CAUGHT as exc:
            breaker.success()  # the server answered, with a refusal
            return self._fail(method, returning, exc)
        if breaker.failures or breaker.state is not CLOSED:
            breaker.success()
        return result

    def _fail(self, method: str, returning: R, exc: BaseException) -> R:
        self.report(method, returning, exc)
        if not self.fail_open:
            raise exc
        return returning

    def report(self, method: str, returning: Any, exc: BaseException) -> None:
        """Log (rate-limited), signal and hand ``exc`` to ``REDIS_ERROR_HANDLER``."""
        self.errors += 1
        suppressed = self.limiter.admit()
        if suppressed is not None:
            more = f" ({suppressed} similar errors suppressed)" if suppressed else ""
            action = "failing open" if self.fail_open else "raising (REDIS_FAIL_OPEN is False)"
            line = (f"flask-rediscache: {method} on {self.name} failed, {action}: "
                    f"{type(exc).__name__}: {exc}{more}")
            logger.warning("%s", mask(line, self.secrets))
        if signals.cache_error.receivers:
            protect("cache_error receiver", signals.cache_error.send, self.app,
                    method=method, exception=exc, returning=returning)
        if self.handler is not None:
            protect("REDIS_ERROR_HANDLER", self.handler, method=method, returning=returning, exception=exc)


_broken: set[str] = set()


def protect(what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a user callback; if it raises, log it (once per kind per process) and go on."""
    try:
        func(*args, **kwargs)
    except Exception:
        if what not in _broken:
            _broken.add(what)
            logger.exception("flask-rediscache: a %s raised; ignored so fail-open holds "
                             "(logged once)", what)


def breaker_notifier(app: Flask) -> Callable[[str, str], None]:
    """The breaker's ``on_change``: sends :data:`~flask_rediscache.signals.breaker_state`."""
    def on_change(name: str, state: str) -> None:
        if signals.breaker_state.receivers:
            protect("breaker_state receiver", signals.breaker_state.send, app, client=name, state=state)
    return on_change
