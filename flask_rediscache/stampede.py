"""Stampede control shared by ``fetch`` and ``memoize``: Rails' ``race_condition_ttl`` plus a lock.

The miss path is written once, as a generator (:func:`stampede_plan`), so the
synchronous and the ``async`` callers drive the same logic: it yields
``None`` to have the value computed (sent back in), or a delay to sleep.

Reads and writes go through the *front* object's public ``get``/``set`` (the
:class:`~flask_rediscache.RedisCache` for the decorators, so a subclass that
instruments them sees the traffic); the lock and the hit/miss bookkeeping go
through the app's :class:`~flask_rediscache.cache.Cache`.

The lock (``SET NX PX``, never retried) lives for ``race_condition_ttl``
seconds, at most :data:`MAX_LOCK_SECONDS`: set ``race_condition_ttl`` a
little above the computation's duration. If its holder dies, the lock
expires after that bound and exactly one waiter takes it over (the waiters
keep trying ``SET NX`` while they poll); the others keep polling for that
waiter's value, up to :data:`MAX_WAIT_FACTOR` lock lifetimes, after which they
compute themselves rather than wait forever.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeVar

from .codec import MISS
from .errors import UnpicklableError

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

T = TypeVar("T")

#: Upper bound of a stampede lock, whatever ``race_condition_ttl`` says.
MAX_LOCK_SECONDS: Final = 10.0
#: Waiters give up and compute after this many lock lifetimes without a value.
MAX_WAIT_FACTOR: Final = 2
_FIRST_POLL, _MAX_POLL = 0.002, 0.05

#: One step: ``None`` asks the driver to compute the value and send it back;
#: a float asks it to sleep that long and send ``None``.
Plan = Generator[float | None, Any, Any]


class Stale(NamedTuple):
    """What ``get(key, stale=True)`` returns for an entry past its logical
    expiry that is still kept for ``race_condition_ttl``."""

    value: Any


class Front(Protocol):
    """The public read/write surface the plan goes through."""

    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0) -> bool: ...


def stampede_plan(cache: Cache, key: str, ttl: int, race_ttl: float, found: Any, *,
                  force: bool = False, front: Front | None = None,
                  should_store: Callable[[Any], bool] | None = None) -> Plan:
    """The miss path of fetch/memoize for ``key``.

    ``found`` is what the caller's stale-aware read returned: ``MISS`` for a
    cold key or a :class:`~flask_rediscache.cache.Stale` entry. Records
    exactly one hit or miss.
    """
    reader: Front = front if front is not None else cache
    if force or not race_ttl:
        cache.record(key, False)
        value = yield None
        _store(cache, reader, key, value, ttl, race_ttl, should_store)
        return value
    stale = MISS if found is MISS else found.value
    token = os.urandom(12).hex().encode()
    lock_seconds = min(race_ttl, MAX_LOCK_SECONDS)
    locked = cache.try_lock(key, token, lock_seconds)
    if locked is not True and stale is not MISS:
        # Someone else is recomputing (or Redis refused the lock, so it would
        # refuse the new value too): stale now beats fresh later.
        cache.record(key, True)
        return stale
    if locked is False:
        # Cold key, another caller is computing: poll for its value, and take
        # over the lock if its holder died (the lock expired).
        deadline = time.monotonic() + lock_seconds * MAX_WAIT_FACTOR
        delay = _FIRST_POLL
        while time.monotonic() < deadline:
            yield delay
            value = reader.get(key, MISS, signed=True, stale=True)
            if value is not MISS and not isinstance(value, Stale):
                return value  # the hit was recorded by get
            locked = cache.try_lock(key, token, lock_seconds)
            if locked is not False:
                break
            delay = min(delay * 1.5, _MAX_POLL)
    cache.record(key, False)
    try:
        value = yield None
        _store(cache, reader, key, value, ttl, race_ttl, should_store)
    finally:
        if locked is True:
            cache.unlock(key, token)
    return value


def _store(cache: Cache, front: Front, key: str, value: Any, ttl: int, race_ttl: float,
           should_store: Callable[[Any], bool] | None) -> None:
    if should_store is not None and not should_store(value):
        return
    try:
        front.set(key, value, ttl, signed=True, race_condition_ttl=race_ttl)
    except UnpicklableError as exc:
        cache.unpicklable(value, exc)


def run_plan(plan: Plan, compute: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Drive a plan synchronously, calling ``compute(*args, **kwargs)``."""
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
    """Drive a plan from a coroutine, awaiting ``compute(*args, **kwargs)``."""
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
