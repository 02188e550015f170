"""The cache API for one app: Flask-Caching's method names, Rails' ``fetch``.

Each public method is one user-visible operation: it builds keys and encodes
values, then runs its Redis work through the cache purpose's
:class:`~flask_rediscache.failopen.Boundary` (which fails open, or raises when
``REDIS_FAIL_OPEN`` is off) and the strict :class:`~flask_rediscache.store.Store`.
User code (``fetch``'s ``func``) never runs inside the boundary, so its
exceptions propagate untouched.

Only commands of Redis' ``@read`` and ``@write`` ACL categories are used (GET,
SET, MGET, UNLINK, EXISTS, INCRBY, EXPIRE, TTL, SCAN) and pipelines are never
transactional, so the cache runs for a least-privilege ACL user such as
``~cache:* +@read +@write``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeVar

from flask import Flask

from . import signals
from .codec import MISS
from .config import Settings, timeout_seconds
from .failopen import Boundary
from .keys import escape_glob, lock_key, make_key
from .stampede import Stale, run_plan, stampede_plan
from .store import Entry, Store

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")

_FAILED: Final = object()


def race_seconds(value: Any) -> float:
    """Validate a ``race_condition_ttl`` (seconds or ``timedelta``; 0 = off)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86400:
        raise ValueError(f"race_condition_ttl={value!r} is invalid: expected seconds from 0 to 86400 "
                         "or a timedelta (0 turns stampede control off)")
    return float(seconds)


class Cache:
    """Cache operations bound to one app's settings, store and boundary.

    Reached through :class:`~flask_rediscache.RedisCache`, which resolves the
    current app's ``Cache`` on every call.
    """

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

    def record(self, key: str, hit: bool) -> None:
        """Count a hit or a miss and send :data:`~flask_rediscache.signals.cache_hit`
        or :data:`~flask_rediscache.signals.cache_miss`."""
        if hit:
            self.hits += 1
            if signals.cache_hit.receivers:
                signals.cache_hit.send(self.app, key=key)
        else:
            self.misses += 1
            if signals.cache_miss.receivers:
                signals.cache_miss.send(self.app, key=key)

    # -- reads -------------------------------------------------------------
    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False) -> Any:
        """The value stored at ``key``, or ``default`` when it is missing,
        expired or unreadable (pass a sentinel ``default`` to tell a cached
        ``None`` from a miss).

        ``signed=True`` accepts only entries this package signed (memoize,
        cached and fetch read that way; plain counters written by :meth:`inc`
        are then a miss). ``stale=True`` is the stampede-aware read used by
        :meth:`fetch` and the decorators: an entry past its logical expiry
        comes back as :class:`Stale`, and only a fresh hit is recorded (for
        a miss or a stale entry the caller records exactly one outcome).
        """
        return self._read("get", key, default, signed, stale)

    def _read(self, method: str, key: str, default: Any, signed: bool, stale: bool) -> Any:
        rkey = make_key(self.namespace, key)
        entry: Entry | None = self.boundary.call(method, None, self.store.read, rkey, not signed)
        if entry is None or entry.value is MISS:
            if not stale:
                self.record(key, False)
            return default
        if entry.stale:
            if stale:
                return Stale(entry.value)
            self.record(key, False)
            return default
        self.record(key, True)
        return entry.value

    def get_many(self, *keys: str, signed: bool = False) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss; one ``MGET``
        (per hash slot on a cluster). Records one hit or miss per key."""
        if not keys:
            return []
        namespace = self.namespace
        rkeys = [make_key(namespace, k) for k in keys]
        entries: list[Entry] | None = self.boundary.call("get_many", None, self.store.read_many,
                                                         rkeys, not signed)
        out: list[Any] = []
        if entries is None:
            for key in keys:
                self.record(key, False)
                out.append(None)
            return out
        if signals.cache_hit.receivers or signals.cache_miss.receivers:
            record = self.record
            for key, entry in zip(keys, entries, strict=True):
                hit = entry.value is not MISS and not entry.stale
                record(key, hit)
                out.append(entry.value if hit else None)
            return out
        # Nobody listens: count in bulk (a hundred method calls less per batch).
        append = out.append
        hits = 0
        for entry in entries:
            if entry.value is not MISS and not entry.stale:
                hits += 1
                append(entry.value)
            else:
                append(None)
        self.hits += hits
        self.misses += len(entries) - hits
        return out

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """:meth:`get_many` as a ``{key: value}`` dict (``None`` for misses)."""
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def has(self, key: str) -> bool:
        """Whether ``key`` exists (``EXISTS``; the value is not transferred)."""
        return bool(self.boundary.call("has", False, self.store.exists, self.key(key)))

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires (django-redis' meaning): ``None`` when
        it has no expiry, ``0`` when it is missing (or Redis failed). For an
        entry written with ``race_condition_ttl`` this includes the stale window."""
        seconds = self.boundary.call("ttl", -2, self.store.ttl, self.key(key))
        if seconds == -1:
            return None
        return max(0, seconds)

    # -- writes --------------------------------------------------------------
    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0) -> bool:
        """Store ``value`` (any picklable object) for ``timeout`` seconds or a
        ``timedelta``; ``None`` means ``REDIS_DEFAULT_TIMEOUT``, ``0`` no expiry.
        ``False`` if Redis failed. An unpicklable value raises
        :class:`~flask_rediscache.errors.UnpicklableError` (a ``TypeError``).

        ``signed=True`` never uses the plain counter form for an ``int``;
        ``race_condition_ttl`` keeps the entry that many seconds past its
        logical expiry (what :meth:`fetch` and ``memoize`` write).
        """
        rkey = self.key(key)
        ttl = self.expiry(timeout)
        store = self.store
        if race_condition_ttl and ttl:
            data = store.encode(rkey, value, signed=True, expires_at=time.time() + ttl)
            return bool(self.boundary.call("set", False, store.write, rkey, data, ttl, race_condition_ttl))
        data = store.encode(rkey, value, signed=signed)
        return bool(self.boundary.call("set", False, store.write, rkey, data, ttl))

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent, atomically (``SET NX``).
        ``True`` if this call stored it; ``False`` if the key existed or Redis
        failed (the command is never retried, so a lost reply is ``False``,
        never a second attempt that reports the opposite)."""
        rkey = self.key(key)
        data = self.store.encode(rkey, value)
        return bool(self.boundary.call("add", False, self.store.add, rkey, data, self.expiry(timeout)))

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip (a non-transactional
        pipeline). Returns the keys that were stored (``[]`` if Redis failed)."""
        items = list(mapping.items())
        if not items:
            return []
        store = self.store
        encoded = []
        for key, value in items:
            rkey = self.key(key)
            encoded.append((rkey, store.encode(rkey, value)))
        results = self.boundary.call("set_many", None, store.write_many, encoded, self.expiry(timeout))
        if results is None:
            return []
        return [key for (key, _), ok in zip(items, results, strict=True) if ok]

    def delete(self, key: str) -> bool:
        """Delete ``key`` (``UNLINK``: the memory is freed in the background);
        ``True`` if it existed."""
        return bool(self.boundary.call("delete", 0, self.store.unlink, [self.key(key)]))

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed."""
        if not keys:
            return 0
        return int(self.boundary.call("delete_many", 0, self.store.unlink, [self.key(k) for k in keys]))

    def unlink(self, *keys: str) -> int:
        """Flask-Caching's ``unlink``: delete ``keys`` in one round trip with
        ``UNLINK`` (the memory is freed in the background); returns how many
        existed. :meth:`delete` and :meth:`delete_many` use ``UNLINK`` too."""
        if not keys:
            return 0
        return int(self.boundary.call("unlink", 0, self.store.unlink, [self.key(k) for k in keys]))

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta`` (``INCRBY``) and return the new value; a
        missing key counts from 0. ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``,
        ``0`` = none) sets a TTL only when the key has none, so a rate-limit
        window is not extended by each hit; INCRBY and ``EXPIRE NX`` share one
        round trip. ``None`` if Redis failed (the command is never retried: a
        lost reply must not count twice) or the key holds a non-counter."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self.boundary.call("inc", None, self.store.incr, self.key(key), delta, self.expiry(timeout))

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """:meth:`inc` by ``-delta``."""
        return self.inc(key, -delta, timeout)

    def delete_matched(self, pattern: str) -> int:
        """Delete every key of the namespace matching the Redis glob ``pattern``
        (``"user:*"`` deletes ``<namespace>:user:*``) with ``SCAN`` in batches and
        ``UNLINK``, never ``KEYS``, so Redis is not blocked; on a cluster every
        primary is scanned. Returns how many keys were deleted (0 if Redis
        failed). Keys longer than 250 bytes are stored as a head and a
        digest, so match them by their start."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
        match = (escape_glob(self.namespace) + ":" + pattern).encode("utf-8", "surrogatepass")
        return int(self.boundary.call("delete_matched", 0, self.store.delete_matching, match))

    def clear(self) -> int:
        """Delete every key of the namespace (``delete_matched("*")``); never
        ``FLUSHDB``/``FLUSHALL``, so other data in the same Redis survives."""
        return self.delete_matched("*")

    # -- fetch and its stampede lock -----------------------------------------
    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False) -> T:
        """The cached value of ``key``, or ``func()`` computed, stored and returned.

        With ``race_condition_ttl`` (default ``REDIS_RACE_CONDITION_TTL``; ``0``
        turns it off) the entry stays in Redis that many seconds past its
        logical expiry. Once it has expired, one caller takes a short lock and
        recomputes while the others get the stale value at once; on a cold
        key the others poll briefly for the winner's value instead of all
        computing. ``force=True`` recomputes and stores without reading. A
        Redis failure just means ``func()`` is called; exceptions from
        ``func`` propagate and nothing is stored.
        """
        race_ttl = self.race_ttl(race_condition_ttl)  # a bad value raises even on a hit
        ttl = self.expiry(timeout)
        found = MISS if force else self._read("fetch", key, MISS, True, True)
        if found is not MISS and not isinstance(found, Stale):
            return found  # type: ignore[return-value]
        plan = stampede_plan(self, key, ttl, race_ttl, found, force=force)
        return run_plan(plan, func)

    def try_lock(self, key: str, token: bytes, seconds: float) -> bool | None:
        """Take the stampede lock of ``key``: ``True`` if taken, ``False`` if
        someone holds it, ``None`` if Redis failed (then compute without it)."""
        ms = max(1, int(seconds * 1000))
        got = self.boundary.call("lock", _FAILED, self.store.acquire, lock_key(self.namespace, self.key(key)),
                                 token, ms)
        return None if got is _FAILED else bool(got)

    def unlock(self, key: str, token: bytes) -> None:
        """Release the stampede lock of ``key`` if it still holds ``token``."""
        self.boundary.call("unlock", None, self.store.release, lock_key(self.namespace, self.key(key)), token)

    def unpicklable(self, value: Any, exc: BaseException) -> None:
        """A computed value could not be pickled: it is served uncached; say so once per type."""
        kind = type(value).__name__
        if kind not in self._unpicklable_logged:
            self._unpicklable_logged.add(kind)
            logger.warning("flask-rediscache: a %s result was not cached, it cannot be "
                           "pickled: %s: %s", kind, type(exc).__name__, exc)
