"""The cache API for one app: Flask-Caching's method names, Rails' ``fetch``.

Each public method is one user-visible operation: it builds keys and encodes
values, then runs its Redis work through the cache purpose's
:class:`~flask_rediscache.failopen.Boundary` (which fails open, or raises when
``REDIS_FAIL_OPEN`` is off) and the strict :class:`~flask_rediscache.store.Store`.
User code (``fetch``'s ``func``) never runs inside the boundary, so its
exceptions propagate untouched.

Only commands of Redis' ``@read`` and ``@write`` ACL categories are used (GET,
GETRANGE, SET, MGET, UNLINK, EXISTS, INCRBY, EXPIRE, PEXPIREAT, PERSIST, TTL,
PTTL, SCAN) and pipelines are never transactional, so the cache runs for a
least-privilege ACL user such as ``~cache:* +@read +@write``. The one
exception is :meth:`Cache.lock`, whose release is a script (``+evalsha``),
and which raises instead of failing open.

Reads are in :mod:`~flask_rediscache.cache_reads`, writes, counters and
expiry in :mod:`~flask_rediscache.cache_writes`, the shared state and the
instrumentation in :mod:`~flask_rediscache.cache_base`; this module composes
them and adds ``fetch``/``fetch_multi`` (with the stampede lock they use)
and the named locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from .cache_base import epoch_seconds
from .cache_reads import Reads
from .cache_writes import Writes
from .codec import MISS
from .keys import lock_key, make_key
from .locks import Lock
from .stampede import Stale, multi_plan, run_multi_plan, run_plan, stampede_plan
from .store import MISSING

T = TypeVar("T")

_FAILED: Final = object()


class Cache(Reads, Writes):
    """Cache operations bound to one app's settings, store and boundary.

    Reached through :class:`~flask_rediscache.RedisCache`, which resolves the
    current app's ``Cache`` on every call.
    """

    # -- fetch and its stampede lock -----------------------------------------
    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False, *,
              skip_nil: bool = False, expires_at: Any = None, version: Any = None) -> T:
        """The cached value of ``key``, or ``func()`` computed, stored and returned.

        With ``race_condition_ttl`` (default ``REDIS_RACE_CONDITION_TTL``; ``0``
        turns it off) the entry stays in Redis that many seconds past its
        logical expiry. Once it has expired, one caller takes a short lock and
        recomputes while the others get the stale value at once; on a cold
        key the others poll briefly for the winner's value instead of all
        computing. ``force=True`` recomputes and stores without reading. A
        Redis failure just means ``func()`` is called; exceptions from
        ``func`` propagate and nothing is stored.

        ``skip_nil=True`` does not store a ``None`` result (Rails'
        ``skip_nil``). ``expires_at`` (an aware ``datetime`` or epoch seconds)
        replaces ``timeout``; a time already past computes without storing.
        ``version`` as in :meth:`get`/:meth:`set`.
        """
        race_ttl = self.race_ttl(race_condition_ttl)  # a bad value raises even on a hit
        should_store: Callable[[Any], bool] | None = (lambda value: value is not None) if skip_nil else None
        if expires_at is not None:
            if timeout is not None:
                raise ValueError("fetch(): give timeout or expires_at, not both")
            remaining = epoch_seconds(expires_at) - time.time()
            ttl = math.ceil(remaining) if remaining > 0 else 0
            if not ttl:
                should_store = _never
        else:
            ttl = self.expiry(timeout)
        found = MISS if force else self._read("fetch", key, MISS, True, True, version)
        if found is not MISS and not isinstance(found, Stale):
            return found  # type: ignore[return-value]
        plan = stampede_plan(self, key, ttl, race_ttl, found, force=force, should_store=should_store,
                             version=version)
        value: T = run_plan(plan, self.generate, key, func)
        return value

    def fetch_multi(self, keys: Iterable[str], compute: Callable[[list[str]], Mapping[str, Any]], *,
                    timeout: Any = None, race_condition_ttl: float | None = None, skip_nil: bool = False,
                    version: Any = None) -> dict[str, Any]:
        """Rails' ``fetch_multi``: ``{key: value}`` for every key, in the order of ``keys``.

        One read round trip for all keys (``MGET``; one per slot group on a
        cluster); then ``compute(missing)`` is called **once** with the list
        of keys that missed and returns a mapping with a value for each; those
        are stored in one round trip (a pipeline) and returned with the hits.
        With ``race_condition_ttl`` the missing keys get what :meth:`fetch`
        gives one key: expired entries are served stale to everyone but the
        caller that takes their lock (one pipeline of ``SET NX PX``), and keys
        another caller is computing are waited for. ``skip_nil`` and
        ``version`` as in :meth:`fetch`. A mapping that lacks a missing key
        raises ``KeyError`` (nothing is stored); exceptions from ``compute``
        propagate.
        """
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be str, not {type(key).__name__}: {key!r:.80}")
        race_ttl = self.race_ttl(race_condition_ttl)
        ttl = self.expiry(timeout)
        if not wanted:
            return {}
        entries = self._read_entries("fetch_multi", wanted, True, version) or [MISSING] * len(wanted)
        result: dict[str, Any] = {}
        found: dict[str, Any] = {}
        for key, entry in zip(wanted, entries, strict=True):
            if entry.value is MISS:
                found[key] = MISS
            elif entry.stale:
                found[key] = Stale(entry.value)
            else:
                result[key] = entry.value
                self.record(key, True)
        if found:
            plan = multi_plan(self, found, ttl, race_ttl, version=version, skip_nil=skip_nil)
            result.update(run_multi_plan(plan, lambda missing: self._compute_many(compute, missing)))
        return {key: result[key] for key in wanted}

    def _compute_many(self, compute: Callable[[list[str]], Mapping[str, Any]],
                      missing: list[str]) -> Mapping[str, Any]:
        values = self.generate(list(missing), compute, list(missing))
        if not isinstance(values, Mapping):
            raise TypeError(f"fetch_multi: compute() must return a mapping of key to value, "
                            f"not {type(values).__name__}")
        absent = [key for key in missing if key not in values]
        if absent:
            raise KeyError(f"fetch_multi: compute() returned no value for {absent[:5]!r}"
                           f"{' and more' if len(absent) > 5 else ''}")
        return values

    def store_many(self, values: Mapping[str, Any], ttl: int, race_ttl: float, version: Any,
                   skip_nil: bool) -> None:
        """Store what ``fetch_multi`` computed, in one round trip (unpicklable values are skipped)."""
        items = [(k, v) for k, v in values.items() if not (skip_nil and v is None)]
        self._write_many("fetch_multi", items, ttl, race_ttl, version, skip=True)

    def read_fresh(self, keys: Sequence[str], version: Any) -> dict[str, Any]:
        """The fresh hits among ``keys`` (one MGET), each recorded as a hit."""
        entries = self._read_entries("fetch_multi", keys, True, version) or []
        out: dict[str, Any] = {}
        for key, entry in zip(keys, entries, strict=False):
            if entry.value is not MISS and not entry.stale:
                out[key] = entry.value
                self.record(key, True)
        return out

    def try_lock(self, key: str, token: bytes, seconds: float) -> bool | None:
        """Take the stampede lock of ``key``: ``True`` if taken, ``False`` if
        someone holds it, ``None`` if Redis failed (then compute without it)."""
        ms = max(1, int(seconds * 1000))
        got = self.boundary.call("lock", _FAILED, self.store.acquire, lock_key(self.namespace, self.key(key)),
                                 token, ms)
        return None if got is _FAILED else bool(got)

    def try_locks(self, keys: Sequence[str], token: bytes, seconds: float) -> list[bool] | None:
        """:meth:`try_lock` for several keys in one round trip; ``None`` if Redis failed."""
        ms = max(1, int(seconds * 1000))
        locks = [lock_key(self.namespace, self.key(k)) for k in keys]
        got = self.boundary.call("lock", None, self.store.acquire_many, locks, token, ms)
        return None if got is None else list(got)

    def unlock(self, key: str, token: bytes) -> None:
        """Release the stampede lock of ``key`` if it still holds ``token``."""
        self.boundary.call("unlock", None, self.store.release, lock_key(self.namespace, self.key(key)), token)

    def unlock_many(self, keys: Sequence[str], token: bytes) -> None:
        """:meth:`unlock` for several keys (two round trips in all)."""
        locks = [lock_key(self.namespace, self.key(k)) for k in keys]
        self.boundary.call("unlock", None, self.store.release_many, locks, token)

    # -- named locks --------------------------------------------------------
    def lock(self, name: str, timeout: float | None = 10, blocking_timeout: float | None = 5, *,
             blocking: bool = True, sleep: float = 0.1, thread_local: bool = True) -> Lock:
        """A distributed lock named ``name`` (``<namespace>:locks:<name>``), built
        on redis-py's ``Lock``: ``with cache.lock("nightly-report"): ...``.

        ``timeout`` (seconds; ``None`` = until released) bounds how long a
        holder that died keeps it; ``blocking_timeout`` how long ``with``
        waits for it (``blocking=False``: not at all). The release checks the
        token, so only the holder releases it; ``extend()``/``reacquire()``
        renew it. Never fails open: an unreachable or refusing Redis, or a
        lock not free in time, raises :class:`~flask_rediscache.errors.LockError`.
        """
        if not isinstance(name, str):
            raise TypeError(f"lock names must be str, not {type(name).__name__}")
        return self.store.lock(make_key(self.namespace, "locks:" + name), timeout, sleep, blocking,
                               blocking_timeout, thread_local)


def _never(value: Any) -> bool:
    return False
