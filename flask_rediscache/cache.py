"""The cache API for one app: Flask-Caching's method names over Redis.

Every command goes through the app's :class:`~flask_rediscache.guard.Guard`,
so each method is written as if Redis never failed and returns what a miss
returns when it does. Values go through the :class:`~flask_rediscache.codec.Codec`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import signals
from .codec import MISS, Codec
from .config import Settings, timeout_seconds
from .guard import Guard
from .keys import make_key


class Cache:
    """Cache operations bound to one app's settings, client and guard."""

    def __init__(self, app: Flask, settings: Settings, client: Any, guard: Guard,
                 codec: Codec, is_cluster: bool = False) -> None:
        self.app = app
        self.settings = settings
        self.namespace = settings.namespace
        self.client = client
        self.guard = guard
        self.codec = codec
        self.is_cluster = is_cluster
        self.hits = 0
        self.misses = 0

    # -- helpers ---------------------------------------------------------
    def key(self, key: str) -> bytes:
        """The Redis key for a cache key (namespaced, digested when long)."""
        return make_key(self.namespace, key)

    def expiry(self, timeout: Any) -> int:
        """Seconds to live for ``timeout`` (None = default, 0 = forever)."""
        if timeout is None:
            return self.settings.default_timeout
        return timeout_seconds(timeout)

    def _record(self, key: str, hit: bool) -> None:
        if hit:
            self.hits += 1
            if signals.cache_hit.receivers:
                signals.cache_hit.send(self.app, key=key)
        else:
            self.misses += 1
            if signals.cache_miss.receivers:
                signals.cache_miss.send(self.app, key=key)

    def read(self, method: str, key: str) -> tuple[Any, float | None]:
        """One GET: ``(value, expires_at)`` or ``(MISS, None)``; records hit/miss."""
        rkey = self.key(key)
        raw = self.guard.run(method, None, self.client.get, rkey)
        value, expires_at = self.codec.decode(rkey, raw)
        self._record(key, value is not MISS)
        return value, expires_at

    def write(self, method: str, key: str, value: Any, timeout: Any = None, *,
              nx: bool = False, expires_at: float | None = None, extra_ttl: float = 0) -> bool:
        """One SET (``nx`` for add). ``extra_ttl`` keeps the entry past its
        logical ``expires_at`` (race_condition_ttl)."""
        rkey = self.key(key)
        ttl = self.expiry(timeout)
        data = self.codec.encode(rkey, value, expires_at)
        ex = ttl + int(extra_ttl + 0.999) if ttl else None
        return bool(self.guard.run(method, False, self.client.set, rkey, data, ex=ex, nx=nx))

    # -- the public API --------------------------------------------------
    def get(self, key: str) -> Any:
        value, _ = self.read("get", key)
        return None if value is MISS else value

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        return self.write("set", key, value, timeout)

    def delete(self, key: str) -> bool:
        return bool(self.guard.run("delete", 0, self.client.delete, self.key(key)))
