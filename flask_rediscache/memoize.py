"""``@cache.memoize`` and ``delete_memoized``: a function's results cached by its arguments.

``delete_memoized(f)`` deletes the function's entries by their common key
prefix with SCAN + UNLINK (:mod:`~flask_rediscache.memoize_keys` builds the
keys); with arguments, it deletes the one entry.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import GeneratorType
from typing import Any, Final, cast

from . import signals
from .codec import MISS
from .decorators import (
    F,
    Front,
    check_timeout,
    emit,
    generate_async,
    join_generator,
    make_bypass,
    make_forcer,
    make_hasher,
    make_stale_check,
    make_store_filter,
)
from .keys import escape_glob
from .memoize_keys import REQUIRED, Memoized
from .stampede import Stale, run_plan, run_plan_async, stampede_plan

#: Attribute of a memoized wrapper holding its :class:`Memoized`.
MEMO_ATTR: Final = "__rediscache_memoized__"
_MEMO_HIT, _MEMO_MISS = signals.cache_memoize_hit, signals.cache_memoize_miss


def memoize(front: Front, timeout: Any = None, unless: Callable[..., Any] | None = None,
            race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
            forced_update: Callable[..., Any] | None = None,
            response_filter: Callable[[Any], Any] | None = None,
            args_to_ignore: tuple[str, ...] | list[str] | None = None,
            cache_none: bool = True, name: str | None = None,
            is_stale: Callable[..., Any] | None = None, hash_method: Callable[..., Any] | None = None,
            source_check: bool | None = None, version: Any = None) -> Callable[[F], F]:
    """Build the ``@memoize`` decorator; see :meth:`flask_rediscache.RedisCache.memoize`."""
    from .cache_base import race_seconds
    from .codec import version_bytes

    if version is not None and not callable(version):
        version_bytes(version)  # a bad version raises at decoration time

    check_timeout(timeout)
    if race_condition_ttl is not None:
        race_seconds(race_condition_ttl)
    bypass = make_bypass(unless)
    force = make_forcer(forced_update)
    stale_check = make_stale_check(is_stale)
    should_store = make_store_filter(response_filter, cache_none)
    hasher = make_hasher(hash_method)

    def decorator(f: F) -> F:
        memo = Memoized(f, make_name, args_to_ignore, name, front=front, hasher=hasher,
                        source_check=source_check)

        def make_cache_key(func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
            """Flask-Caching's ``f.make_cache_key(f.uncached, *args, **kwargs)``."""
            key = memo.key(args, kwargs)
            if key is None:
                memo.binder.signature.bind(*args, **kwargs)  # raises the TypeError that says why
                raise TypeError(f"arguments do not fit {memo.name}")  # pragma: no cover
            return key

        def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
            maker = wrapper.make_cache_key
            if maker is make_cache_key:
                return memo.key(args, kwargs)
            return str(maker(f, *args, **kwargs))

        def read(key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """``MISS``/:class:`Stale`/``_FORCE`` for the plan, or the fresh value."""
            if force is not None and force(args, kwargs):
                return _FORCE
            if version is None:
                found = front.get(key, MISS, signed=True, stale=True)
            else:
                found = front.get(key, MISS, signed=True, stale=True, version=current_version())
            if found is None and not cache_none:
                return MISS  # Flask-Caching: a cached None is a miss then
            if (stale_check is not None and found is not MISS and not isinstance(found, Stale)
                    and stale_check(found, args, kwargs)):
                return _FORCE
            return found

        def plan(key: str, found: Any) -> Any:
            cache = front.app_cache()
            return stampede_plan(cache, key, cache.expiry(wrapper.cache_timeout),
                                 cache.race_ttl(race_condition_ttl),
                                 MISS if found is _FORCE else found, force=found is _FORCE,
                                 front=front, should_store=should_store,
                                 version=None if version is None else current_version())

        def current_version() -> Any:
            return version() if callable(version) else version

        fast_read = force is None and stale_check is None and cache_none and version is None

        def hit(key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            emit(front, _MEMO_HIT, cache_key=key, f=f, args=args, kwargs=kwargs)

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(f, args, kwargs):
                    return await f(*args, **kwargs)
                key = key_of(args, kwargs)
                if key is None:  # let Python raise its TypeError
                    return await f(*args, **kwargs)
                found = read(key, args, kwargs)
                if found is MISS or found is _FORCE or isinstance(found, Stale):
                    computed = False

                    async def compute(*args: Any, **kwargs: Any) -> Any:
                        nonlocal computed
                        computed = True
                        if _MEMO_MISS.receivers:
                            emit(front, _MEMO_MISS, cache_key=key, f=f, args=args, kwargs=kwargs)
                        return await generate_async(front, key, f, *args, **kwargs)

                    value = await run_plan_async(plan(key, found), compute, *args, **kwargs)
                    if not computed and _MEMO_HIT.receivers:
                        hit(key, args, kwargs)
                    return value
                if _MEMO_HIT.receivers:
                    hit(key, args, kwargs)
                return found

            wrapper: Any = async_wrapper
        else:
            def miss(key: str, found: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                computed = False

                def compute(*args: Any, **kwargs: Any) -> Any:
                    nonlocal computed
                    computed = True
                    if _MEMO_MISS.receivers:
                        emit(front, _MEMO_MISS, cache_key=key, f=f, args=args, kwargs=kwargs)
                    value = front.app_cache().generate(key, f, *args, **kwargs)
                    if isinstance(value, GeneratorType):
                        value = join_generator(value)
                    return value

                value = run_plan(plan(key, found), compute, *args, **kwargs)
                if not computed and _MEMO_HIT.receivers:  # a stale value or another caller's
                    hit(key, args, kwargs)
                return value

            @functools.wraps(f)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(f, args, kwargs):
                    return f(*args, **kwargs)
                if wrapper.make_cache_key is make_cache_key:
                    key = memo.key(args, kwargs)
                else:
                    key = key_of(args, kwargs)
                if key is None:
                    return f(*args, **kwargs)
                if fast_read:
                    found = front.get(key, MISS, signed=True, stale=True)
                else:
                    found = read(key, args, kwargs)
                if found is MISS or found is _FORCE or isinstance(found, Stale):
                    return miss(key, found, args, kwargs)
                if _MEMO_HIT.receivers:
                    hit(key, args, kwargs)
                return found

            wrapper = sync_wrapper

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = make_cache_key
        wrapper.delete_memoized = lambda: delete_memoized(front, wrapper)
        setattr(wrapper, MEMO_ATTR, memo)
        return cast(F, wrapper)

    return decorator


_FORCE: Final = object()


def delete_memoized(front: Front, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """See :meth:`flask_rediscache.RedisCache.delete_memoized`; returns the number
    of entries deleted."""
    instance: Any = REQUIRED
    if inspect.ismethod(f):
        instance, f = f.__self__, f.__func__
    memo: Memoized | None = getattr(f, MEMO_ATTR, None)
    if memo is None:
        raise TypeError(f"{f!r} is not decorated with @cache.memoize")
    if args or kwargs:
        if instance is not REQUIRED:
            if memo.first == "cls":
                # Flask-Caching's rule: a classmethod's class is passed explicitly.
                if not (args and isinstance(args[0], type)):
                    raise ValueError(f"delete_memoized() on the classmethod {memo.name} needs the class as "
                                     "its first argument: delete_memoized(Cls.method, Cls, *args)")
            elif not (args and args[0] is instance):
                args = (instance, *args)  # obj.method: the instance is implied
        maker = getattr(f, "make_cache_key", None) or functools.partial(_memo_key, memo)
        return int(front.delete(maker(getattr(f, "uncached", f), *args, **kwargs)))
    prefix = memo.prefix()
    if instance is not REQUIRED and memo.method:
        prefix += memo.instance_segment(instance)
    return front.delete_matched(escape_glob(prefix) + "*")


def _memo_key(memo: Memoized, func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    key = memo.key(args, kwargs)
    if key is None:
        memo.binder.signature.bind(*args, **kwargs)
        raise TypeError(f"arguments do not fit {memo.name}")  # pragma: no cover
    return key
