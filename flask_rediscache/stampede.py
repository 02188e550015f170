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

    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool: ...


def stampede_plan(cache: Cache, key: str, ttl: int, race_ttl: float, found: Any, *,
                  force: bool = False, front: Front | None = None,
                  should_store: Callable[[Any], bool] | None = None, version: Any = None) -> Plan:
    """The miss path of fetch/memoize for ``key``.

    ``found`` is what the caller's stale-aware read returned: ``MISS`` for a
    cold key or a :class:`~flask_rediscache.cache.Stale` entry. Records
    exactly one hit or miss.
    """
    reader: Front = front if front is not None else cache
    if force or not race_ttl:
        cache.record(key, False)
        value = yield None
        _store(cache, reader, key, value, ttl, race_ttl, should_store, version)
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
            value = reader.get(key, MISS, signed=True, stale=True, version=version)
            if value is not MISS and not isinstance(value, Stale):
                return value  # the hit was recorded by get
            locked = cache.try_lock(key, token, lock_seconds)
            if locked is not False:
                break
            delay = min(delay * 1.5, _MAX_POLL)
    cache.record(key, False)
    try:
        value = yield None
        _store(cache, reader, key, value, ttl, race_ttl, should_store, version)
    finally:
        if locked is True:
            cache.unlock(key, token)
    return value


def _store(cache: Cache, front: Front, key: str, value: Any, ttl: int, race_ttl: float,
           should_store: Callable[[Any], bool] | None, version: Any = None) -> None:
    if should_store is not None and not should_store(value):
        return
    try:
        if version is None:
            front.set(key, value, ttl, signed=True, race_condition_ttl=race_ttl)
        else:
            front.set(key, value, ttl, signed=True, race_condition_ttl=race_ttl, version=version)
    except UnpicklableError as exc:
        cache.unpicklable(value, exc)


#: One step of :func:`multi_plan`: a list of keys asks the driver for
#: ``compute(keys)`` (a mapping, sent back in); a float asks it to sleep.
MultiPlan = Generator[list[str] | float, Any, dict[str, Any]]


def multi_plan(cache: Cache, found: dict[str, Any], ttl: int, race_ttl: float, *,
               version: Any = None, skip_nil: bool = False) -> MultiPlan:
    """The miss path of ``fetch_multi`` for the keys of ``found`` (each
    ``MISS`` or a :class:`Stale` entry); returns ``{key: value}`` for them.

    Without ``race_ttl``: one compute, one write round trip. With it, as
    :func:`stampede_plan` per key but batched: one pipeline of lock attempts;
    stale entries whose lock another caller holds are served stale; cold keys
    another caller is computing are polled for (one MGET per poll) until they
    arrive, their lock lapses (then taken over) or the wait ends; whatever is
    left is computed in the one ``compute`` call; the locks taken are released.
    """
    missing = list(found)
    if not race_ttl:
        for key in missing:
            cache.record(key, False)
        values = yield missing
        cache.store_many({k: values[k] for k in missing}, ttl, 0, version, skip_nil)
        return {k: values[k] for k in missing}
    token = os.urandom(12).hex().encode()
    lock_seconds = min(race_ttl, MAX_LOCK_SECONDS)
    locked = cache.try_locks(missing, token, lock_seconds)
    result: dict[str, Any] = {}
    mine: list[str] = []
    held: list[str] = []
    waiting: list[str] = []
    for key, got in zip(missing, locked if locked is not None else [None] * len(missing), strict=True):
        entry = found[key]
        if got is not True and isinstance(entry, Stale):
            cache.record(key, True)  # someone else recomputes (or Redis refused): stale now
            result[key] = entry.value
        elif got is False:
            waiting.append(key)
        else:
            mine.append(key)
            if got is True:
                held.append(key)
    try:
        if waiting:
            deadline = time.monotonic() + lock_seconds * MAX_WAIT_FACTOR
            delay = _FIRST_POLL
            while waiting and time.monotonic() < deadline:
                yield delay
                arrived = cache.read_fresh(waiting, version)
                result.update(arrived)
                waiting = [k for k in waiting if k not in arrived]
                if not waiting:
                    break
                got_now = cache.try_locks(waiting, token, lock_seconds)
                if got_now is None:  # Redis failed: compute them without locks
                    mine += waiting
                    waiting = []
                    break
                taken = [k for k, ok in zip(waiting, got_now, strict=True) if ok]
                mine += taken
                held += taken
                waiting = [k for k, ok in zip(waiting, got_now, strict=True) if not ok]
                delay = min(delay * 1.5, _MAX_POLL)
            mine += waiting  # waited long enough: compute them too
        if mine:
            for key in mine:
                cache.record(key, False)
            values = yield mine
            computed = {k: values[k] for k in mine}
            cache.store_many(computed, ttl, race_ttl, version, skip_nil)
            result.update(computed)
    finally:
        if held:
            cache.unlock_many(held, token)
    return result


def _drive(plan: Generator[Any, Any, Any], compute: Callable[[Any], Any]) -> Any:
    """Drive a plan synchronously: a number asks for a sleep; anything else
    (``None`` from :func:`stampede_plan`, the missing keys from
    :func:`multi_plan`) asks for ``compute(step)``, whose result is sent back."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, (int, float)):
                time.sleep(step)
                step = plan.send(None)
                continue
            try:
                value = compute(step)
            except BaseException as exc:
                plan.throw(exc)  # releases the lock, then re-raises exc
                raise  # pragma: no cover - throw() always raises here
            step = plan.send(value)
    except StopIteration as stop:
        return stop.value


def run_multi_plan(plan: MultiPlan, compute: Callable[[list[str]], Any]) -> dict[str, Any]:
    """Drive a :func:`multi_plan`, calling ``compute(keys)`` (at most once)."""
    return _drive(plan, compute)  # type: ignore[no-any-return]


def run_plan(plan: Plan, compute: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Drive a plan synchronously, calling ``compute(*args, **kwargs)``."""
    return _drive(plan, lambda _step: compute(*args, **kwargs))  # type: ignore[no-any-return]


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
