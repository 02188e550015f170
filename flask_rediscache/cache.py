"""The cache API for one app: Flask-Caching's method names over Redis.

Every command goes through the app's :class:`~flask_rediscache.guard.Guard`,
so each method is written as if Redis never failed and returns what a miss
returns when it does (``get`` → ``None``, ``set`` → ``False``, ...). Values
go through the :class:`~flask_rediscache.codec.Codec`; keys through
:mod:`~flask_rediscache.keys`.

Only commands of Redis' ``@read`` and ``@write`` ACL categories are used
(GET, SET, MGET, UNLINK, EXISTS, INCRBY, EXPIRE, TTL, SCAN) and pipelines are
never transactional, so the cache runs for a least-privilege ACL user such as
``~cache:* +@read +@write``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeVar

from flask import Flask
from redis.exceptions import ResponseError

from . import signals
from .codec import MISS, Codec
from .config import Settings, timeout_seconds
from .guard import Guard
from .keys import escape_glob, lock_key, make_key

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")

#: Upper bound of a stampede lock, whatever ``race_condition_ttl`` says: a
#: worker that died while holding it delays the others by at most this long.
MAX_LOCK_SECONDS: Final = 10.0
#: Keys fetched per SCAN call and deleted per UNLINK by :meth:`Cache.delete_matched`.
SCAN_BATCH: Final = 1000
_FIRST_POLL, _MAX_POLL = 0.002, 0.05


class _Failed:
    """Returned by the guard instead of a command's result when Redis failed."""

    __slots__ = ()


_FAILED: Final = _Failed()
#: ``found`` value for :meth:`Cache.plan` meaning "don't read, recompute".
FORCE: Final = object()

#: One step of a :meth:`Cache.plan`: ``None`` asks the driver to compute the
#: value and send it back; a float asks it to sleep that long and send ``None``.
Plan = Generator[float | None, Any, Any]


def _label(key: str | bytes) -> str:
    return key if isinstance(key, str) else key.decode("utf-8", "replace")


class Cache:
    """Cache operations bound to one app's settings, client and guard.

    Reached through :class:`~flask_rediscache.RedisCache`, which resolves the
    current app's ``Cache`` on every call.
    """

    def __init__(self, app: Flask, settings: Settings, client: Any, guard: Guard,
                 codec: Codec, is_cluster: bool = False) -> None:
        self.app = app
        self.settings = settings
        self.namespace = settings.namespace
        self.client = client
        self.guard = guard
        self.codec = codec
        #: True for a :class:`redis.cluster.RedisCluster` client: multi-key
        #: commands are then split per slot.
        self.is_cluster = is_cluster
        self.hits = 0
        self.misses = 0
        self._expire_nx = True  # EXPIRE ... NX needs Redis >= 7; cleared on first refusal
        self._unpicklable_logged: set[str] = set()

    # -- helpers ---------------------------------------------------------
    def key(self, key: str) -> bytes:
        """The Redis key for a cache key (namespaced, digested when long)."""
        return make_key(self.namespace, key)

    def expiry(self, timeout: Any) -> int:
        """Seconds to live for ``timeout`` (None = default, 0 = forever)."""
        if timeout is None:
            return self.settings.default_timeout
        return timeout_seconds(timeout)

    def hit(self, key: str | bytes) -> None:
        """Count a hit and send :data:`~flask_rediscache.signals.cache_hit`."""
        self.hits += 1
        if signals.cache_hit.receivers:
            signals.cache_hit.send(self.app, key=_label(key))

    def miss(self, key: str | bytes) -> None:
        """Count a miss and send :data:`~flask_rediscache.signals.cache_miss`."""
        self.misses += 1
        if signals.cache_miss.receivers:
            signals.cache_miss.send(self.app, key=_label(key))

    def decode_fresh(self, rkey: bytes, raw: bytes | None) -> Any:
        """Decode ``raw``; an entry past its logical expiry (kept around only
        for ``race_condition_ttl``) is a :data:`MISS` here, as in Rails."""
        value, expires_at = self.codec.decode(rkey, raw)
        if expires_at is not None and expires_at <= time.time():
            return MISS
        return value

    def write(self, method: str, key: str, value: Any, timeout: Any = None, *,
              nx: bool = False, expires_at: float | None = None, extra_ttl: float = 0) -> bool:
        """One SET (``nx`` for add). ``extra_ttl`` keeps the entry past its
        logical ``expires_at`` (race_condition_ttl)."""
        return self.write_raw(method, self.key(key), value, self.expiry(timeout),
                              nx=nx, expires_at=expires_at, extra_ttl=extra_ttl)

    def write_raw(self, method: str, rkey: bytes, value: Any, ttl: int, *, nx: bool = False,
                  expires_at: float | None = None, extra_ttl: float = 0) -> bool:
        """:meth:`write` for an already built Redis key and a TTL in seconds (0 = forever)."""
        data = self.codec.encode(rkey, value, expires_at)
        ex = ttl + math.ceil(extra_ttl) if ttl else None
        return bool(self.guard.run(method, False, self.client.set, rkey, data, ex=ex, nx=nx))

    # -- the public API --------------------------------------------------
    def get(self, key: str) -> Any:
        """The value stored at ``key``, or ``None`` when it is missing, expired
        or unreadable. A cached ``None`` looks like a miss here; :meth:`fetch`
        and ``memoize`` tell them apart."""
        rkey = self.key(key)
        raw = self.guard.run("get", None, self.client.get, rkey)
        value = self.decode_fresh(rkey, raw)
        if value is MISS:
            self.miss(key)
            return None
        self.hit(key)
        return value

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` (any picklable object) for ``timeout`` seconds or a
        ``timedelta``; ``None`` means ``REDIS_DEFAULT_TIMEOUT``, ``0`` no expiry.
        ``False`` if Redis failed. An unpicklable value raises, as with pickle."""
        return self.write_raw("set", self.key(key), value, self.expiry(timeout))

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent, atomically (``SET NX``).
        ``True`` if this call stored it."""
        return self.write_raw("add", self.key(key), value, self.expiry(timeout), nx=True)

    def delete(self, key: str) -> bool:
        """Delete ``key`` (``UNLINK``: the memory is freed in the background);
        ``True`` if it existed."""
        return bool(self.guard.run("delete", 0, self.client.unlink, self.key(key)))

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed."""
        if not keys:
            return 0
        return int(self.guard.run("delete_many", 0, self._unlink, [self.key(k) for k in keys]))

    def has(self, key: str) -> bool:
        """Whether ``key`` exists (``EXISTS``: the value is not transferred, so an
        entry kept only for ``race_condition_ttl`` counts as present)."""
        return bool(self.guard.run("has", 0, self.client.exists, self.key(key)))

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss; one ``MGET``
        (per hash slot on a cluster). Sends one hit/miss signal per key."""
        if not keys:
            return []
        rkeys = [self.key(k) for k in keys]
        if self.is_cluster:
            raws = self.guard.run("get_many", None, self.client.mget_nonatomic, rkeys)
        else:
            raws = self.guard.run("get_many", None, self.client.mget, rkeys)
        if raws is None:
            raws = [None] * len(rkeys)
        out: list[Any] = []
        for key, rkey, raw in zip(keys, rkeys, raws, strict=True):
            value = self.decode_fresh(rkey, raw)
            if value is MISS:
                self.miss(key)
                out.append(None)
            else:
                self.hit(key)
                out.append(value)
        return out

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """:meth:`get_many` as a ``{key: value}`` dict (``None`` for misses)."""
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip (a non-transactional
        pipeline). Returns the keys that were stored (``[]`` if Redis failed)."""
        items = list(mapping.items())
        if not items:
            return []
        ttl = self.expiry(timeout) or None
        encoded = []
        for key, value in items:
            rkey = self.key(key)
            encoded.append((rkey, self.codec.encode(rkey, value)))

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for rkey, data in encoded:
                pipe.set(rkey, data, ex=ttl)
            return pipe.execute()  # type: ignore[no-any-return]

        results = self.guard.run("set_many", None, run)
        if results is None:
            return []
        return [key for (key, _), ok in zip(items, results, strict=True) if ok]

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta`` (``INCRBY``) and return the new value; a
        missing key counts from 0. ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``,
        ``0`` = none) sets a TTL only when the key has none, so a rate-limit
        window is not extended by each hit; INCRBY and ``EXPIRE NX`` share one
        round trip. ``None`` if Redis failed or the key holds a non-counter."""
        rkey = self.key(key)
        ttl = self.expiry(timeout)
        return self.guard.run("inc", None, self._incr, rkey, delta, ttl)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """:meth:`inc` by ``-delta``."""
        return self.inc(key, -delta, timeout)

    def _incr(self, rkey: bytes, delta: int, ttl: int) -> int:
        if not ttl:
            return int(self.client.incrby(rkey, delta))
        pipe = self.client.pipeline(transaction=False)
        pipe.incrby(rkey, delta)
        if self._expire_nx:
            pipe.expire(rkey, ttl, nx=True)
        else:
            pipe.ttl(rkey)
        value, second = pipe.execute(raise_on_error=False)
        if isinstance(value, Exception):
            raise value
        if isinstance(second, ResponseError):
            # Redis < 7 has no EXPIRE NX: read the TTL instead (two round
            # trips, and a tiny window where two callers both set it: harmless).
            self._expire_nx = False
            second = self.client.ttl(rkey)
        if not self._expire_nx and second == -1:
            self.client.expire(rkey, ttl)
        return int(value)

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires in Redis; ``None`` if it has no expiry,
        is missing, or Redis failed. For an entry written with
        ``race_condition_ttl`` this includes the stale window."""
        seconds = self.guard.run("ttl", None, self.client.ttl, self.key(key))
        return int(seconds) if seconds is not None and seconds >= 0 else None

    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False) -> T:
        """The cached value of ``key``, or ``func()`` computed, stored and returned.

        With ``race_condition_ttl`` (default ``REDIS_RACE_CONDITION_TTL``; ``0``
        turns it off) the entry stays in Redis that many seconds past its
        logical expiry. Once it has expired, one caller takes a short lock and
        recomputes while the others get the stale value at once; on a cold
        key the others poll briefly for the winner's value instead of all
        computing (a stampede on a slow query is what takes databases down).
        ``force=True`` recomputes and stores without reading. A Redis failure
        just means ``func()`` is called; exceptions from ``func`` propagate
        and nothing is stored.
        """
        rkey = self.key(key)
        race_ttl = self.race_ttl(race_condition_ttl)  # a bad value raises even on a hit
        if force:
            found: Any = FORCE
        else:
            raw = self.guard.run("fetch", None, self.client.get, rkey)
            value, expires_at = self.codec.decode(rkey, raw)
            if value is not MISS and (expires_at is None or expires_at > time.time()):
                self.hit(key)
                return value  # type: ignore[no-any-return]
            found = (value, expires_at)
        plan = self.plan("fetch", rkey, key, self.expiry(timeout), race_ttl, found)
        return run_plan(plan, func)

    def race_ttl(self, race_condition_ttl: Any) -> float:
        """``race_condition_ttl`` in seconds, ``REDIS_RACE_CONDITION_TTL`` when None."""
        if race_condition_ttl is None:
            return self.settings.race_condition_ttl or 0.0
        return race_seconds(race_condition_ttl)

    def delete_matched(self, pattern: str) -> int:
        """Delete every key of the namespace matching the Redis glob ``pattern``
        (``"user:*"`` deletes ``<namespace>:user:*``) with ``SCAN`` in batches and
        ``UNLINK``, never ``KEYS``, so Redis is not blocked; on a cluster every
        primary is scanned. Returns how many keys were deleted (so far, if
        Redis failed midway). Keys longer than 250 bytes are stored as a
        150-byte head and a digest, so match them by their start."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
        match = escape_glob(self.namespace) + ":" + pattern
        return self.delete_glob("delete_matched", match.encode("utf-8", "surrogatepass"))

    def delete_glob(self, method: str, match: bytes) -> int:
        """SCAN + UNLINK every key matching the raw glob ``match`` (already namespaced)."""
        deleted = [0]

        def run() -> None:
            batch: list[bytes] = []
            if self.is_cluster:
                from redis.cluster import RedisCluster

                keys: Iterable[bytes] = self.client.scan_iter(
                    match=match, count=SCAN_BATCH, target_nodes=RedisCluster.PRIMARIES)
            else:
                keys = self.client.scan_iter(match=match, count=SCAN_BATCH)
            for rkey in keys:
                batch.append(rkey)
                if len(batch) >= SCAN_BATCH:
                    deleted[0] += self._unlink(batch)
                    batch = []
            if batch:
                deleted[0] += self._unlink(batch)

        self.guard.run(method, None, run)
        return deleted[0]

    def _unlink(self, rkeys: list[bytes]) -> int:
        if not self.is_cluster:
            return int(self.client.unlink(*rkeys))
        # Keys of different hash slots cannot share one command on a cluster.
        pipe = self.client.pipeline(transaction=False)
        for rkey in rkeys:
            pipe.unlink(rkey)
        return sum(pipe.execute())

    def clear(self) -> int:
        """Delete every key of the namespace (``delete_matched("*")``); never
        ``FLUSHDB``/``FLUSHALL``, so other data in the same Redis survives."""
        return self.delete_matched("*")

    # -- stampede control (shared by fetch and memoize) ------------------
    def plan(self, method: str, rkey: bytes, label: str | bytes, ttl: int, race_ttl: float,
             found: Any, should_store: Callable[[Any], bool] | None = None) -> Plan:
        """The miss path of fetch/memoize as a generator, so sync and async
        callers share it (see :func:`run_plan` and :func:`run_plan_async`).

        ``found`` is what the caller's read returned: ``(MISS, None)`` for a
        cold key, ``(stale_value, expires_at)`` for a logically expired entry,
        or :data:`FORCE`. Yields ``None`` to have the value computed (sent
        back), or a delay to sleep. Records exactly one hit or miss.
        """
        if found is FORCE or not race_ttl:
            self.miss(label)
            value = yield None
            self._store(method, rkey, value, ttl, race_ttl, should_store)
            return value
        stale = found[0]
        lock = lock_key(self.namespace, rkey)
        token = os.urandom(12).hex().encode()
        lock_ms = max(1, int(min(race_ttl, MAX_LOCK_SECONDS) * 1000))
        locked = self._lock(method, lock, token, lock_ms)
        if locked is not True and stale is not MISS:
            # Someone else is recomputing (or Redis refused the lock, so it would
            # refuse the new value too): stale now beats fresh later.
            self.hit(label)
            return stale
        if locked is False:
            # Cold key, another caller is computing: poll for its value, and take
            # over if it gave up (its lock vanished) or never wrote one.
            deadline = time.monotonic() + lock_ms / 1000
            delay = _FIRST_POLL
            while time.monotonic() < deadline:
                yield delay
                value = self.decode_fresh(rkey, self.guard.run(method, None, self.client.get, rkey))
                if value is not MISS:
                    self.hit(label)
                    return value
                locked = self._lock(method, lock, token, lock_ms)
                if locked is not False:
                    break
                delay = min(delay * 1.5, _MAX_POLL)
        self.miss(label)
        try:
            value = yield None
            self._store(method, rkey, value, ttl, race_ttl, should_store)
        finally:
            if locked is True:
                self._unlock(method, lock, token)
        return value

    def _store(self, method: str, rkey: bytes, value: Any, ttl: int, race_ttl: float,
               should_store: Callable[[Any], bool] | None) -> None:
        if should_store is not None and not should_store(value):
            return
        expires_at = time.time() + ttl if ttl and race_ttl else None
        try:
            self.write_raw(method, rkey, value, ttl, expires_at=expires_at,
                           extra_ttl=race_ttl if expires_at is not None else 0)
        except Exception as exc:  # unpicklable: serve the value uncached, say so once per type
            kind = type(value).__name__
            if kind not in self._unpicklable_logged:
                self._unpicklable_logged.add(kind)
                logger.warning("flask-rediscache: %s result %r was not cached, it cannot be "
                               "pickled: %s: %s", method, kind, type(exc).__name__, exc)

    def _lock(self, method: str, lock: bytes, token: bytes, ms: int) -> bool | None:
        """``SET lock token NX PX ms``: True if taken, False if held by someone
        else, None if Redis failed (then compute without a lock: fail open)."""
        got = self.guard.run(method, _FAILED, self.client.set, lock, token, nx=True, px=ms)
        return None if got is _FAILED else bool(got)

    def _unlock(self, method: str, lock: bytes, token: bytes) -> None:
        """Release the lock only if it is still ours (it may have expired and
        been taken by another caller). GET + UNLINK rather than a Lua script,
        so a ``+@read +@write`` ACL user can do it; the race window is one
        round trip on an already expired lock."""
        def run() -> None:
            if self.client.get(lock) == token:
                self.client.unlink(lock)

        self.guard.run(method, None, run)


def race_seconds(value: Any) -> float:
    """Validate a ``race_condition_ttl`` (seconds or ``timedelta``; 0 = off)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"race_condition_ttl={value!r} is invalid: expected seconds >= 0 "
                         "or a timedelta (0 turns stampede control off)")
    return float(seconds)


def run_plan(plan: Plan, compute: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Drive a :meth:`Cache.plan` synchronously, calling ``compute(*args, **kwargs)``."""
    try:
        step = next(plan)
        while True:
            if step is None:
                try:
                    value = compute(*args, **kwargs)
                except BaseException as exc:
                    plan.throw(exc)  # releases the lock, then re-raises exc
                    raise  # pragma: no cover - throw() always raises here
                step = plan.send(value)
            else:
                time.sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def run_plan_async(plan: Plan, compute: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Drive a :meth:`Cache.plan` from a coroutine, awaiting ``compute(*args, **kwargs)``."""
    try:
        step = next(plan)
        while True:
            if step is None:
                try:
                    value = await compute(*args, **kwargs)
                except BaseException as exc:
                    plan.throw(exc)
                    raise  # pragma: no cover
                step = plan.send(value)
            else:
                await asyncio.sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
