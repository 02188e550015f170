"""What every part of :class:`~flask_rediscache.cache.Cache` shares: the app's
settings, store and boundary, the key and TTL helpers, the hit/miss counts,
and the instrumentation.

Instrumentation: each operation checks its signal's ``receivers`` once;
only when someone listens is it timed (:meth:`CacheBase._observed`) and sent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Flask

from . import signals
from .config import Settings, timeout_seconds
from .errors import CircuitOpenError
from .failopen import Boundary, protect
from .keys import make_key
from .store import Store

T = TypeVar("T")

_GENERATE = signals.cache_generate


def epoch_seconds(when: Any, name: str = "expires_at") -> float:
    """An aware ``datetime`` or epoch seconds as epoch seconds (a naive
    datetime is refused: its zone would be a guess)."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"{name}={when!r} is a naive datetime: give it a timezone "
                             "(datetime.now(timezone.utc) + ...) or pass epoch seconds")
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        raise ValueError(f"{name}={when!r} is invalid: expected an aware datetime or epoch seconds")
    return float(when)


def race_seconds(value: Any) -> float:
    """Validate a ``race_condition_ttl`` (seconds or ``timedelta``; 0 = off)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86400:
        raise ValueError(f"race_condition_ttl={value!r} is invalid: expected seconds from 0 to 86400 "
                         "or a timedelta (0 turns stampede control off)")
    return float(seconds)


class CacheBase:
    """Cache state and helpers bound to one app's settings, store and boundary
    (the base of :class:`~flask_rediscache.cache.Cache`)."""

    def __init__(self, app: Flask, settings: Settings, store: Store, boundary: Boundary) -> None:
        self.app = app
        self.settings = settings
        self.namespace = settings.namespace
        self.store = store
        self.boundary = boundary
        self.hits = 0
        self.misses = 0
        self._unpicklable_logged: set[str] = set()

    @property
    def client(self) -> Any:
        """The redis-py client of the cache purpose."""
        return self.store.client

    # -- helpers ---------------------------------------------------------
    def key(self, key: str) -> bytes:
        """The Redis key for a cache key (namespaced, digested when long)."""
        return make_key(self.namespace, key)

    def expiry(self, timeout: Any) -> int:
        """Seconds to live for ``timeout`` (None = default, 0 = forever)."""
        if timeout is None:
            return self.settings.default_timeout
        return timeout_seconds(timeout)

    def race_ttl(self, race_condition_ttl: Any) -> float:
        """``race_condition_ttl`` in seconds, ``REDIS_RACE_CONDITION_TTL`` when None."""
        if race_condition_ttl is None:
            return self.settings.race_condition_ttl or 0.0
        return race_seconds(race_condition_ttl)

    def record(self, key: str, hit: bool, local: bool = False) -> None:
        """Count a hit or a miss and send :data:`~flask_rediscache.signals.cache_hit`
        (with ``local=True`` when a local copy served it: only then, so receivers
        written for ``key`` alone keep working without ``REDIS_LOCAL_CACHE``)
        or :data:`~flask_rediscache.signals.cache_miss`."""
        if hit:
            self.hits += 1
            if signals.cache_hit.receivers:
                if local:
                    signals.cache_hit.send(self.app, key=key, local=True)
                else:
                    signals.cache_hit.send(self.app, key=key)
        else:
            self.misses += 1
            if signals.cache_miss.receivers:
                signals.cache_miss.send(self.app, key=key)

    def _observed(self, signal: Any, method: str, returning: Any, func: Callable[..., Any],
                  args: tuple[Any, ...], payload: dict[str, Any],
                  outcome: Callable[[Any, dict[str, Any]], Any] | None = None) -> Any:
        """``boundary.call(method, returning, func, *args)``, timed and sent as
        ``signal`` (called only when ``signal`` has receivers). ``outcome(result,
        payload)`` may add fields from the result and returns what the
        operation returns; ``error`` is added when the call failed open."""
        ran: list[Any] = [False, None]

        def run(*call_args: Any) -> Any:
            ran[0] = True
            try:
                return func(*call_args)
            except BaseException as exc:
                ran[1] = exc
                raise

        start = time.perf_counter()
        try:
            result = self.boundary.call(method, returning, run, *args)
        except BaseException as exc:  # REDIS_FAIL_OPEN = False re-raised it, or a bug
            payload["error"] = exc
            self._send(signal, time.perf_counter() - start, method, payload)
            raise
        duration = time.perf_counter() - start
        if not ran[0]:  # the breaker refused to send it
            payload["error"] = CircuitOpenError(f"circuit breaker open for {self.boundary.name}")
        elif ran[1] is not None:  # the store raised and the boundary failed open
            payload["error"] = ran[1]
        if outcome is not None:
            result = outcome(result, payload)
        self._send(signal, duration, method, payload)
        return result

    def _send(self, signal: Any, duration: float, method: str, payload: dict[str, Any]) -> None:
        payload.setdefault("operation", method)
        payload.setdefault("local", False)
        protect(f"{signal.name} receiver", signal.send, self.app, duration=duration, purpose="cache",
                **payload)

    def _op(self, signal: Any, method: str, returning: Any, func: Callable[..., Any], *args: Any,
            **payload: Any) -> Any:
        """One fail-open store call; timed and sent as ``signal`` when someone listens."""
        if signal.receivers:
            return self._observed(signal, method, returning, func, args, payload)
        return self.boundary.call(method, returning, func, *args)

    def generate(self, key: Any, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call user code computing a missed value, sending
        :data:`~flask_rediscache.signals.cache_generate` when someone listens."""
        if not _GENERATE.receivers:
            return func(*args, **kwargs)
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            protect("cache_generate receiver", _GENERATE.send, self.app, key=key,
                    duration=time.perf_counter() - start, purpose="cache", local=False, operation="generate")

