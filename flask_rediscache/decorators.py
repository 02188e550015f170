"""``@cache.memoize`` and ``@cache.cached``: Flask-Caching's decorators over one GET.

Both are app-agnostic when applied (at import time, usually before any app
exists) and resolve the current app's :class:`~flask_rediscache.cache.Cache`
on every call, so one decorated function serves every app of a factory.

A memoize hit is exactly one Redis round trip: the key is built from the
function and its arguments alone (no per-function "version" key to read
first, as Flask-Caching does), and ``delete_memoized(f)`` instead deletes the
function's entries by their common key prefix with SCAN + UNLINK. Everything
that can be worked out once per function (the signature binding, the key
prefix) is done at decoration time, so the per-call overhead is a tuple
``repr`` and a dict lookup on top of the GET.

On Redis errors both decorators fail open: the function is called as if
nothing had been cached.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlencode

from flask import current_app, has_request_context, request, session
from werkzeug.wrappers import Response

from .cache import FORCE, Cache, race_seconds, run_plan, run_plan_async
from .codec import MISS
from .config import timeout_seconds
from .keys import MAX_KEY_BYTES, escape_glob_bytes, function_prefix

_cv_request: Any
try:  # the request context, to read its session without marking it accessed
    from flask.globals import _cv_request
except ImportError:  # pragma: no cover - a future Flask; falls back to the proxy
    _cv_request = None

F = TypeVar("F", bound=Callable[..., Any])
#: Returns the current app's :class:`Cache` (``RedisCache._cache``).
Resolver = Callable[[], Cache]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_REQUIRED: Final = object()
#: Attribute of a memoized wrapper holding its :class:`Memoized`.
MEMO_ATTR: Final = "__rediscache_memoized__"
_RESPONSE_TAG: Final = "flask-rediscache:response:1"


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


def _instance_key(obj: Any) -> Any:
    """What identifies ``self``/``cls`` in a method's cache key."""
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    cache_key = getattr(obj, "__cache_key__", None)
    return cache_key() if cache_key is not None else repr(obj)


class Memoized:
    """What ``@memoize`` knows about one function: its name, binder and key layout.

    Keys are ``<ns>:memoize:<module.qualname>:<repr of the bound arguments>``
    (the arguments digested when long). For methods (first parameter named
    ``self`` or ``cls``) the instance gets its own segment,
    ``...:<qualname>:<instance key>:<arguments>``, so one instance's entries
    can be deleted together.
    """

    def __init__(self, func: Callable[..., Any], make_name: Callable[[str], str] | None = None,
                 args_to_ignore: tuple[str, ...] | list[str] | None = None) -> None:
        self.func = func
        self.name = f"{func.__module__}.{func.__qualname__}"
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
        self._prefixes: dict[str, bytes] = {}

    def prefix(self, namespace: str) -> bytes:
        """The key prefix shared by every entry of the function in ``namespace``."""
        if self.make_name is not None:  # may depend on the request: never cached
            return function_prefix(namespace, self.make_name(self.name))
        prefix = self._prefixes.get(namespace)
        if prefix is None:
            prefix = self._prefixes[namespace] = function_prefix(namespace, self.name)
        return prefix

    @staticmethod
    def instance_segment(obj: Any) -> bytes:
        """``repr(instance key) + ":"``; digested when long, so the arguments keep room."""
        text = repr(_instance_key(obj)).encode("utf-8", "surrogatepass")
        if len(text) > 100:
            text = b"#" + hashlib.sha256(text).hexdigest()[:32].encode()
        return text + b":"

    def key(self, namespace: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | None:
        """The Redis key of the call, or ``None`` if the arguments don't fit the signature."""
        values = self.binder.bind(args, kwargs)
        if values is None:
            return None
        prefix = self._prefixes.get(namespace) if self.make_name is None else None
        if prefix is None:
            prefix = self.prefix(namespace)
        if self.ignore:
            ignore = self.ignore
            values = tuple(v for i, v in enumerate(values) if i not in ignore)
        if self.method:  # self is never in ignore here, so still first
            prefix += self.instance_segment(values[0])
            values = values[1:]
        rest = repr(values).encode("utf-8", "surrogatepass")
        if len(prefix) + len(rest) <= MAX_KEY_BYTES:
            return prefix + rest
        return prefix + b"#" + hashlib.sha256(rest).hexdigest().encode()


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


def memoize(resolve: Resolver, timeout: Any = None, unless: Callable[..., Any] | None = None,
            race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
            forced_update: Callable[[], Any] | None = None,
            response_filter: Callable[[Any], Any] | None = None,
            args_to_ignore: tuple[str, ...] | list[str] | None = None,
            cache_none: bool = True) -> Callable[[F], F]:
    """Build the ``@memoize`` decorator; see :meth:`flask_rediscache.RedisCache.memoize`."""
    _check_timeout(timeout)
    if race_condition_ttl is not None:
        race_seconds(race_condition_ttl)
    bypass = _bypass(unless)
    should_store = _store_filter(response_filter, cache_none)

    def decorator(f: F) -> F:
        memo = Memoized(f, make_name, args_to_ignore)

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cache = resolve()
                if bypass is not None and bypass(f, args, kwargs):
                    return await f(*args, **kwargs)
                rkey = memo.key(cache.namespace, args, kwargs)
                if rkey is None:  # let Python raise its TypeError
                    return await f(*args, **kwargs)
                found = _lookup(cache, rkey, forced_update)
                if found is not None and found[1] is _FRESH:
                    return found[0]
                plan = cache.plan("memoize", rkey, rkey, cache.expiry(timeout),
                                  cache.race_ttl(race_condition_ttl), found or FORCE, should_store)
                return await run_plan_async(plan, f, *args, **kwargs)

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(f)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                cache = resolve()
                if bypass is not None and bypass(f, args, kwargs):
                    return f(*args, **kwargs)
                rkey = memo.key(cache.namespace, args, kwargs)
                if rkey is None:
                    return f(*args, **kwargs)
                if forced_update is None or not forced_update():
                    # The hot path, inlined: one GET, one decode.
                    raw = cache.guard.run("memoize", None, cache.client.get, rkey)
                    if raw is None:
                        found: Any = _COLD
                    else:
                        value, expires_at = cache.codec.decode(rkey, raw)
                        if value is not MISS and (expires_at is None or expires_at > time.time()):
                            cache.hit(rkey)
                            return value
                        found = (value, expires_at)
                else:
                    found = FORCE
                plan = cache.plan("memoize", rkey, rkey, cache.expiry(timeout),
                                  cache.race_ttl(race_condition_ttl), found, should_store)
                return run_plan(plan, f, *args, **kwargs)

            wrapper = sync_wrapper

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        setattr(wrapper, MEMO_ATTR, memo)
        return cast(F, wrapper)

    return decorator


_COLD: Final = (MISS, None)
_FRESH: Final = object()


def _lookup(cache: Cache, rkey: bytes, forced_update: Callable[[], Any] | None) -> tuple[Any, Any] | None:
    """The memoize read: ``(value, _FRESH)`` on a hit (recorded), ``(value or
    MISS, expires_at)`` for the plan, or ``None`` when ``forced_update`` says so."""
    if forced_update is not None and forced_update():
        return None
    raw = cache.guard.run("memoize", None, cache.client.get, rkey)
    value, expires_at = cache.codec.decode(rkey, raw)
    if value is not MISS and (expires_at is None or expires_at > time.time()):
        cache.hit(rkey)
        return value, _FRESH
    return value, expires_at


def delete_memoized(resolve: Resolver, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Build on :meth:`flask_rediscache.RedisCache.delete_memoized`; returns the number
    of entries deleted."""
    instance: Any = _REQUIRED
    if inspect.ismethod(f):
        instance, f = f.__self__, f.__func__
    memo: Memoized | None = getattr(f, MEMO_ATTR, None)
    if memo is None:
        raise TypeError(f"{f!r} is not decorated with @cache.memoize")
    cache = resolve()
    if args or kwargs:
        if instance is not _REQUIRED:
            args = (instance, *args)
        rkey = memo.key(cache.namespace, args, kwargs)
        if rkey is None:
            memo.binder.signature.bind(*args, **kwargs)  # raises the TypeError that says why
            raise TypeError(f"arguments do not fit {memo.name}")  # pragma: no cover
        return int(cache.guard.run("delete_memoized", 0, cache.client.unlink, rkey))
    prefix = memo.prefix(cache.namespace)
    if instance is not _REQUIRED and memo.method:
        prefix += memo.instance_segment(instance)
    return cache.delete_glob("delete_memoized", escape_glob_bytes(prefix) + b"*")


# -- views ---------------------------------------------------------------
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
    return not _session_accessed()


def _session_accessed() -> bool:
    """Did this request touch ``flask.session``? Read without the proxy: since
    Flask 3.1.3 merely reading ``session.accessed`` through it sets the flag."""
    ctx = _cv_request.get(None) if _cv_request is not None else None
    if ctx is None:
        return bool(getattr(session, "accessed", True)) if has_request_context() else False
    attrs = vars(ctx)
    current = attrs["_session"] if "_session" in attrs else attrs.get("session")
    if current is None:  # never opened
        return False
    # A session class that cannot tell (no ``accessed``) counts as accessed.
    return bool(getattr(current, "accessed", True))


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


def cached(resolve: Resolver, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
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
            # Sorted by name, so ?a=1&b=2 and ?b=2&a=1 are one entry; the sort is
            # stable, so the values of a repeated name keep their order (getlist()).
            pairs = sorted(request.args.items(multi=True), key=_pair_name)
            base = f"{base}?{urlencode(pairs)}"
        return base

    def decorator(f: F) -> F:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Cache, str, bytes, Any] | None:
            """``None`` to bypass the cache, else (cache, key, rkey, cached value or MISS)."""
            in_request = has_request_context()
            if in_request and request.method not in ("GET", "HEAD"):
                return None
            if bypass is not None and bypass(f, args, kwargs):
                return None
            cache = resolve()
            key = cache_key(args, kwargs, in_request)
            rkey = cache.key(key)
            if forced_update is not None and forced_update():
                value = MISS
            else:
                value = cache.decode_fresh(rkey, cache.guard.run("cached", None, cache.client.get, rkey))
            if value is MISS:
                cache.miss(key)
            else:
                cache.hit(key)
            return cache, key, rkey, value

        def after(cache: Cache, rkey: bytes, rv: Any) -> Any:
            ttl = cache.expiry(timeout)
            if not has_request_context():  # a plain function: cache what it returns
                if response_filter is None or response_filter(rv):
                    cache.write_raw("cached", rkey, rv, ttl)
                return rv
            response = current_app.make_response(rv)
            if _cacheable(response) and (response_filter is None or response_filter(response)):
                cache.write_raw("cached", rkey, _pack(response), ttl)
            return response

        def hit(value: Any) -> Any:
            return _unpack(value, response_hit_indication) if has_request_context() else value

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return await f(*args, **kwargs)
                cache, _, rkey, value = state
                if value is not MISS:
                    return hit(value)
                return after(cache, rkey, await f(*args, **kwargs))

            wrapper: Any = async_view
        else:
            @functools.wraps(f)
            def view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return f(*args, **kwargs)
                cache, _, rkey, value = state
                if value is not MISS:
                    return hit(value)
                return after(cache, rkey, f(*args, **kwargs))

            wrapper = view

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        return cast(F, wrapper)

    return decorator
