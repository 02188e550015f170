"""``@cache.memoize`` and ``@cache.cached``: Flask-Caching's decorators over the public cache API.

Both are app-agnostic when applied (at import time, usually before any app
exists) and resolve the current app on every call, so one decorated function
serves every app of a factory. Every read, write and delete goes through the
extension's public ``get``/``set``/``delete``/``delete_matched`` (a subclass
that instruments them sees the decorators' traffic too), and each of those is
a fail-open operation of its own: on Redis errors the function is simply called.

A memoize hit is exactly one ``GET``: the key is built from the function and
its arguments alone (no per-function "version" key to read first, as
Flask-Caching does), and ``delete_memoized(f)`` instead deletes the function's
entries by their common key prefix with SCAN + UNLINK. Everything that can be
worked out once per function (the signature binding, the key prefix) is done
at decoration time.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, cast
from urllib.parse import urlencode

from flask import current_app, g, has_request_context, request, session
from werkzeug.wrappers import Response

from .codec import MISS
from .config import timeout_seconds
from .keys import escape_glob
from .stampede import Stale, run_plan, run_plan_async, stampede_plan
from .state import SESSION_G_ATTR

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

F = TypeVar("F", bound=Callable[..., Any])

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_REQUIRED: Final = object()
#: Attribute of a memoized wrapper holding its :class:`Memoized`.
MEMO_ATTR: Final = "__rediscache_memoized__"
_RESPONSE_TAG: Final = "flask-rediscache:response:1"
#: Longest memoize key (characters, without the namespace) kept readable;
#: longer argument parts are replaced by a digest so the prefix survives.
_MAX_MEMO_KEY = 200
#: Longest function name and instance segment kept readable in memoize keys.
_MAX_NAME, _MAX_INSTANCE = 100, 40


class Front(Protocol):
    """What the decorators need from :class:`~flask_rediscache.RedisCache`."""

    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def delete_matched(self, pattern: str) -> int: ...

    def app_cache(self) -> Cache: ...


class _Binder:
    """Maps ``(args, kwargs)`` of a call to one tuple of argument values in
    signature order, defaults applied, so ``f(1)``, ``f(1, 2)`` and
    ``f(a=1, b=2)`` give the same tuple when ``b`` defaults to 2.

    :meth:`inspect.Signature.bind` costs several microseconds, so signatures
    without ``*args``/``**kwargs`` use a precomputed fast path; the others
    (and calls the fast path cannot settle) fall back to it.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.kinds = {p.name: p.kind for p in params}
        self.simple = not any(p.kind in _VARIADIC for p in params)
        self.count = len(params)
        self.positional = sum(1 for p in params if p.kind in _POSITIONAL)
        self.all_positional = self.positional == self.count
        self.index = {p.name: i for i, p in enumerate(params)
                      if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        self.defaults = tuple(_REQUIRED if p.default is p.empty else p.default for p in params)
        # tails[n]: the defaults of the parameters after the n-th, when all have one.
        self.tails: list[tuple[Any, ...] | None] = [
            None if any(d is _REQUIRED for d in self.defaults[n:]) else self.defaults[n:]
            for n in range(self.count + 1)
        ]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """The bound values, or ``None`` if the call does not fit the signature."""
        if self.simple:
            n = len(args)
            if not kwargs:
                if n == self.count and self.all_positional:
                    return args
                if n <= self.positional:
                    tail = self.tails[n]
                    if tail is not None:
                        return args + tail
            elif n <= self.positional:
                values = list(args)
                values.extend(self.defaults[n:])
                index = self.index
                for name, value in kwargs.items():
                    i = index.get(name)
                    if i is None or i < n:
                        return self._slow(args, kwargs)
                    values[i] = value
                for value in values:
                    if value is _REQUIRED:
                        return None
                return tuple(values)
        return self._slow(args, kwargs)

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        out = []
        for name, value in bound.arguments.items():
            if self.kinds[name] is inspect.Parameter.VAR_KEYWORD:
                value = tuple(sorted(value.items()))
            out.append(value)
        return tuple(out)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _instance_key(obj: Any) -> Any:
    """What identifies ``self``/``cls`` in a method's cache key: ``__cache_key__()``,
    else Flask-Caching's ``__caching_id__()``, else ``repr``."""
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    for name in ("__cache_key__", "__caching_id__"):
        method = getattr(obj, name, None)
        if method is not None:
            return method()
    return repr(obj)


class Memoized:
    """What ``@memoize`` knows about one function: its name, binder and key layout.

    Keys are ``memoize:<module.qualname>:<repr of the bound arguments>`` inside
    the namespace (the arguments digested when long). For methods (first
    parameter named ``self`` or ``cls``) the instance gets its own segment,
    ``memoize:<qualname>:<instance key>:<arguments>``, so one instance's
    entries can be deleted together.
    """

    def __init__(self, func: Callable[..., Any], make_name: Callable[[str], str] | None = None,
                 args_to_ignore: tuple[str, ...] | list[str] | None = None, name: str | None = None) -> None:
        self.func = func
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"memoize(name={name!r}): expected a non-empty string")
        # module.qualname depends on how the module was loaded ("__main__.f"
        # under `python app.py`, "app.f" under flask/gunicorn): `name` pins it.
        self.name = name if name is not None else f"{func.__module__}.{func.__qualname__}"
        self.make_name = make_name
        self.binder = _Binder(func)
        names = list(self.binder.signature.parameters)
        ignore = set()
        for name in args_to_ignore or ():
            if name not in names:
                raise ValueError(f"args_to_ignore: {self.name} has no parameter {name!r}")
            ignore.add(names.index(name))
        self.ignore = frozenset(ignore)
        # args_to_ignore=["self"] shares the entries between instances.
        self.method = bool(names) and names[0] in ("self", "cls") and 0 not in self.ignore
        self._prefix = self._make_prefix(self.name)

    @staticmethod
    def _make_prefix(name: str) -> str:
        if len(name) > _MAX_NAME:
            name = name[:70] + "~" + _digest(name)[:24]
        return f"memoize:{name}:"

    def prefix(self) -> str:
        """The key prefix shared by every entry of the function."""
        if self.make_name is not None:  # may depend on the request: never cached
            return self._make_prefix(self.make_name(self.name))
        return self._prefix

    @staticmethod
    def instance_segment(obj: Any) -> str:
        """``repr(instance key) + ":"``; digested when long, so the arguments keep room."""
        text = repr(_instance_key(obj))
        if len(text) > _MAX_INSTANCE:
            text = "#" + _digest(text)[:32]
        return text + ":"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The cache key of the call, or ``None`` if the arguments don't fit the signature."""
        values = self.binder.bind(args, kwargs)
        if values is None:
            return None
        prefix = self._prefix if self.make_name is None else self.prefix()
        if self.ignore:
            ignore = self.ignore
            values = tuple(v for i, v in enumerate(values) if i not in ignore)
        if self.method:  # self is never in ignore here, so still first
            prefix += self.instance_segment(values[0])
            values = values[1:]
        rest = repr(values)
        if len(prefix) + len(rest) <= _MAX_MEMO_KEY and rest.isascii():
            return prefix + rest
        return prefix + "#" + _digest(rest)


def _bypass(unless: Callable[..., Any] | None) -> Callable[[Callable[..., Any], tuple[Any, ...],
                                                            dict[str, Any]], bool] | None:
    """Flask-Caching's ``unless``: called with no arguments, or, if it takes
    any, with ``(f, *args, **kwargs)``. Truthy means "skip the cache"."""
    if unless is None:
        return None
    if not callable(unless):
        raise TypeError(f"unless must be callable, not {type(unless).__name__}")
    try:
        takes_args = bool(inspect.signature(unless).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        takes_args = False
    if takes_args:
        return lambda f, args, kwargs: bool(unless(f, *args, **kwargs))
    return lambda f, args, kwargs: bool(unless())


def _store_filter(response_filter: Callable[[Any], Any] | None,
                  cache_none: bool) -> Callable[[Any], bool] | None:
    if response_filter is None and cache_none:
        return None

    def should_store(value: Any) -> bool:
        if value is None and not cache_none:
            return False
        return response_filter is None or bool(response_filter(value))
    return should_store


def _check_timeout(timeout: Any) -> None:
    if timeout is not None:
        timeout_seconds(timeout)  # raises a clear error at decoration time


def memoize(front: Front, timeout: Any = None, unless: Callable[..., Any] | None = None,
            race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
            forced_update: Callable[[], Any] | None = None,
            response_filter: Callable[[Any], Any] | None = None,
            args_to_ignore: tuple[str, ...] | list[str] | None = None,
            cache_none: bool = True, name: str | None = None) -> Callable[[F], F]:
    """Build the ``@memoize`` decorator; see :meth:`flask_rediscache.RedisCache.memoize`."""
    from .cache import race_seconds

    _check_timeout(timeout)
    if race_condition_ttl is not None:
        race_seconds(race_condition_ttl)
    bypass = _bypass(unless)
    should_store = _store_filter(response_filter, cache_none)

    def decorator(f: F) -> F:
        memo = Memoized(f, make_name, args_to_ignore, name)

        def lookup(key: str) -> Any:
            """``MISS``/:class:`Stale` for the plan, or the fresh value (hit recorded by get)."""
            if forced_update is not None and forced_update():
                return _FORCE
            return front.get(key, MISS, signed=True, stale=True)

        def plan(key: str, found: Any) -> Any:
            cache = front.app_cache()
            return stampede_plan(cache, key, cache.expiry(timeout), cache.race_ttl(race_condition_ttl),
                                 MISS if found is _FORCE else found, force=found is _FORCE,
                                 front=front, should_store=should_store)

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(f, args, kwargs):
                    return await f(*args, **kwargs)
                key = memo.key(args, kwargs)
                if key is None:  # let Python raise its TypeError
                    return await f(*args, **kwargs)
                found = lookup(key)
                if found is MISS or found is _FORCE or isinstance(found, Stale):
                    return await run_plan_async(plan(key, found), f, *args, **kwargs)
                return found

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(f)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(f, args, kwargs):
                    return f(*args, **kwargs)
                key = memo.key(args, kwargs)
                if key is None:
                    return f(*args, **kwargs)
                found = lookup(key)
                if found is MISS or found is _FORCE or isinstance(found, Stale):
                    return run_plan(plan(key, found), f, *args, **kwargs)
                return found

            wrapper = sync_wrapper

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        setattr(wrapper, MEMO_ATTR, memo)
        return cast(F, wrapper)

    return decorator


_FORCE: Final = object()


def delete_memoized(front: Front, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """See :meth:`flask_rediscache.RedisCache.delete_memoized`; returns the number
    of entries deleted."""
    instance: Any = _REQUIRED
    if inspect.ismethod(f):
        instance, f = f.__self__, f.__func__
    memo: Memoized | None = getattr(f, MEMO_ATTR, None)
    if memo is None:
        raise TypeError(f"{f!r} is not decorated with @cache.memoize")
    if args or kwargs:
        if instance is not _REQUIRED:
            args = (instance, *args)
        key = memo.key(args, kwargs)
        if key is None:
            memo.binder.signature.bind(*args, **kwargs)  # raises the TypeError that says why
            raise TypeError(f"arguments do not fit {memo.name}")  # pragma: no cover
        return int(front.delete(key))
    prefix = memo.prefix()
    if instance is not _REQUIRED and memo.method:
        prefix += memo.instance_segment(instance)
    return front.delete_matched(escape_glob(prefix) + "*")


# -- views ---------------------------------------------------------------
def _session_touched() -> bool:
    """Did this request read or change the session's data?

    The session interface of flask-rediscache records its session in ``g``
    when it opens one, and the session knows whether its data was touched;
    this holds on every Flask version (3.2 opens the session lazily, on first
    use, so an untouched session may never be opened at all). With another
    session interface, Flask's own ``session.accessed`` is the answer (since
    Flask 3.1.3 reading the proxy marks it accessed, so such views are then
    never cached: safe, not fast).
    """
    ours = g.get(SESSION_G_ATTR)
    if ours is not None:
        return bool(ours.touched)
    if getattr(current_app.session_interface, "tracks_access", False):
        return False  # ours, and never opened in this request
    return bool(getattr(session, "accessed", True))


def _cacheable(response: Response) -> bool:
    """A response that is the same for every user and safe to replay."""
    if response.status_code != 200 or response.is_streamed or response.direct_passthrough:
        return False
    if "Set-Cookie" in response.headers:
        return False
    cache_control = response.cache_control
    if cache_control.no_store or cache_control.private:
        return False
    # A view that read the session may render per-user data.
    return not _session_touched()


def _is_view(wrapper: Callable[..., Any]) -> bool:
    """Is ``wrapper`` the view serving this request (possibly under other decorators)?

    Only then is the result turned into a response; a helper decorated with
    ``@cached`` and called from a view caches its own return value, as in
    Flask-Caching.
    """
    func: Any = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    while func is not None:
        if func is wrapper:
            return True
        func = getattr(func, "__wrapped__", None)
    return False


def _pack(response: Response) -> tuple[Any, ...]:
    return (_RESPONSE_TAG, response.status_code, list(response.headers.items()), response.get_data())


def _unpack(value: Any, hit_header: bool) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == _RESPONSE_TAG:
        response = current_app.response_class(value[3], status=value[1], headers=value[2])
    else:  # a value stored with cache.set(): let Flask turn it into a response
        response = current_app.make_response(value)
    if hit_header:
        response.headers["hit_cache"] = "True"
    return response


def _pair_name(pair: tuple[str, str]) -> str:
    return pair[0]


def cached(front: Front, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
           unless: Callable[..., Any] | None = None, forced_update: Callable[[], Any] | None = None,
           response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
           make_cache_key: Callable[..., str] | None = None,
           response_hit_indication: bool = False) -> Callable[[F], F]:
    """Build the ``@cached`` decorator; see :meth:`flask_rediscache.RedisCache.cached`."""
    _check_timeout(timeout)
    bypass = _bypass(unless)

    def cache_key(args: tuple[Any, ...], kwargs: Mapping[str, Any], in_request: bool) -> str:
        if make_cache_key is not None:
            return make_cache_key(*args, **kwargs)
        base = key_prefix() if callable(key_prefix) else key_prefix
        if not in_request:
            return base
        if "%s" in base:
            base = base % request.path
        if query_string:
            # Sorted by name then value, so ?a=1&b=2, ?b=2&a=1 and repeated
            # parameters in any order are one entry.
            pairs = sorted(request.args.items(multi=True))
            base = f"{base}?{urlencode(pairs)}"
        return base

    def decorator(f: F) -> F:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bool, Any] | None:
            """``None`` to bypass the cache, else (key, is a view, cached value or MISS)."""
            in_request = has_request_context()
            if in_request and request.method not in ("GET", "HEAD"):
                return None
            if bypass is not None and bypass(f, args, kwargs):
                return None
            key = cache_key(args, kwargs, in_request)
            view = in_request and _is_view(wrapper)
            if forced_update is not None and forced_update():
                front.app_cache().record(key, False)
                return key, view, MISS
            return key, view, front.get(key, MISS, signed=True)

        def after(key: str, view: bool, rv: Any) -> Any:
            if not view:  # a plain function: cache what it returns
                if response_filter is None or response_filter(rv):
                    front.set(key, rv, timeout, signed=True)
                return rv
            response = current_app.make_response(rv)
            if _cacheable(response) and (response_filter is None or response_filter(response)):
                front.set(key, _pack(response), timeout, signed=True)
            return response

        def hit(view: bool, value: Any) -> Any:
            return _unpack(value, response_hit_indication) if view else value

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return await f(*args, **kwargs)
                key, view, value = state
                if value is not MISS:
                    return hit(view, value)
                return after(key, view, await f(*args, **kwargs))

            wrapper: Any = async_view
        else:
            @functools.wraps(f)
            def sync_view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return f(*args, **kwargs)
                key, view, value = state
                if value is not MISS:
                    return hit(view, value)
                return after(key, view, f(*args, **kwargs))

            wrapper = sync_view

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        return cast(F, wrapper)

    return decorator
