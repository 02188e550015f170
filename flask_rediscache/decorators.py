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

Flask-Caching's options keep its meaning: ``unless(f, *args, **kwargs)``,
``forced_update(*args, **kwargs)`` and ``is_stale(value, *args, **kwargs)``
get the call's arguments when they accept them; the wrappers carry
``uncached``, ``cache_timeout`` and ``make_cache_key`` (both writable, read on
every call), memoized ones also ``delete_memoized()``; a generator's items are
joined before they are cached; its four signals are sent when
``CACHE_ENABLE_SIGNALS``/``REDIS_ENABLE_SIGNALS`` is on.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import marshal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, cast
from urllib.parse import parse_qsl, urlencode

from flask import Response as FlaskResponse
from flask import current_app, has_request_context, request, url_for
from werkzeug.wrappers import Response

from . import signals
from .codec import MISS
from .config import timeout_seconds
from .errors import UnpicklableError
from .keys import escape_glob
from .session_access import session_touched
from .stampede import Stale, run_plan, run_plan_async, stampede_plan

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

F = TypeVar("F", bound=Callable[..., Any])

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_REQUIRED: Final = object()
#: Attribute of a memoized wrapper holding its :class:`Memoized`.
MEMO_ATTR: Final = "__rediscache_memoized__"
#: Attribute of a ``@cached`` wrapper (True), so ``delete_cached`` finds it under other decorators.
CACHED_ATTR: Final = "__rediscache_cached__"
_RESPONSE_TAG: Final = "flask-rediscache:response:1"
#: Longest memoize key (characters, without the namespace) kept readable;
#: longer argument parts are replaced by a digest so the prefix survives.
_MAX_MEMO_KEY = 200
#: Longest function name and instance segment kept readable in memoize keys.
_MAX_NAME, _MAX_INSTANCE = 100, 40
#: Hex digits of the source digest that ``source_check`` adds to keys.
_SOURCE_DIGITS = 16


@dataclass(frozen=True)
class DecoratorDefaults:
    """Per-app defaults of the decorators' Flask-Caching options, read by
    ``init_app`` from the app's (merged) configuration."""

    #: ``source_check=None`` means this (``CACHE_SOURCE_CHECK``).
    source_check: bool = False
    #: Send Flask-Caching's four signals (``CACHE_ENABLE_SIGNALS``/``REDIS_ENABLE_SIGNALS``).
    enable_signals: bool = False


class Front(Protocol):
    """What the decorators need from :class:`~flask_rediscache.RedisCache`."""

    #: True once an app of this object turned ``source_check`` on by default:
    #: until then the decorators never look the per-app default up.
    source_check_default: bool

    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def delete_matched(self, pattern: str) -> int: ...

    def app_cache(self) -> Cache: ...

    def decorator_defaults(self) -> DecoratorDefaults: ...


class CachedResponse(FlaskResponse):
    """A response that carries its own cache timeout (Flask-Caching's
    ``CachedResponse``): a view decorated with ``@cache.cached`` may return
    ``CachedResponse(response, timeout)`` to override the decorator's timeout
    for this response. A timeout of ``None`` or ``0`` keeps the decorator's.
    """

    timeout: int | None = None

    def __init__(self, response: Response, timeout: Any) -> None:
        # Take the response over as it is (status, headers, body), without
        # building it again through the constructor.
        self.__dict__.update(response.__dict__)
        self.timeout = None if timeout is None else timeout_seconds(timeout)


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


def _hasher(hash_method: Callable[..., Any] | None) -> Callable[[str], str]:
    """``text -> hex digest`` with Flask-Caching's ``hash_method`` (a hashlib
    constructor such as ``hashlib.md5``); ``None`` means SHA-256."""
    if hash_method is None:
        return _digest
    if not callable(hash_method):
        raise TypeError(f"hash_method must be a hash constructor such as hashlib.sha256, not {hash_method!r}")
    try:
        hash_method(b"").hexdigest()
    except Exception as exc:
        raise TypeError(f"hash_method={hash_method!r} is not a hash constructor such as "
                        f"hashlib.sha256: {exc}") from None

    def digest(text: str) -> str:
        return str(hash_method(text.encode("utf-8", "surrogatepass")).hexdigest())
    return digest


def _source_of(func: Callable[..., Any]) -> str:
    """The function's source, for ``source_check``; functions without a
    source file (``exec``, the REPL) use their compiled code instead, which
    also changes when the code does."""
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        code = getattr(inspect.unwrap(func), "__code__", None)
        if code is None:
            return repr(func)
        return marshal.dumps(code).hex()


class _Source:
    """The digest of a function's source, worked out on first use."""

    def __init__(self, func: Callable[..., Any], hasher: Callable[[str], str]) -> None:
        self.func = func
        self.hasher = hasher
        self._digest: str | None = None

    def __call__(self) -> str:
        if self._digest is None:
            self._digest = self.hasher(_source_of(self.func))[:_SOURCE_DIGITS]
        return self._digest


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


class _NoFront:
    """Stands in for the front of a :class:`Memoized` built without one."""

    source_check_default = False

    def decorator_defaults(self) -> DecoratorDefaults:
        return DecoratorDefaults()


_NO_FRONT: Any = _NoFront()


class Memoized:
    """What ``@memoize`` knows about one function: its name, binder and key layout.

    Keys are ``memoize:<module.qualname>:<repr of the bound arguments>`` inside
    the namespace (the arguments digested when long). For methods (first
    parameter named ``self`` or ``cls``) the instance gets its own segment,
    ``memoize:<qualname>:<instance key>:<arguments>``, so one instance's
    entries can be deleted together. With ``source_check`` a digest of the
    function's source follows the name (``memoize:<qualname>:~<digest>:...``),
    so changed code misses.
    """

    def __init__(self, func: Callable[..., Any], make_name: Callable[[str], str] | None = None,
                 args_to_ignore: tuple[str, ...] | list[str] | None = None, name: str | None = None,
                 *, front: Front | None = None, hasher: Callable[[str], str] = _digest,
                 source_check: bool | None = False) -> None:
        self.func = func
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"memoize(name={name!r}): expected a non-empty string")
        # module.qualname depends on how the module was loaded ("__main__.f"
        # under `python app.py`, "app.f" under flask/gunicorn): `name` pins it.
        self.name = name if name is not None else f"{func.__module__}.{func.__qualname__}"
        self.make_name = make_name
        self.front: Front = front if front is not None else _NO_FRONT
        self.hasher = hasher
        self.source_check = source_check
        self.source = _Source(func, hasher)
        self.binder = _Binder(func)
        names = list(self.binder.signature.parameters)
        self.first = names[0] if names else None
        ignore = set()
        for name in args_to_ignore or ():
            if name not in names:
                raise ValueError(f"args_to_ignore: {self.name} has no parameter {name!r}")
            ignore.add(names.index(name))
        self.ignore = frozenset(ignore)
        # args_to_ignore=["self"] shares the entries between instances.
        self.method = self.first in ("self", "cls") and 0 not in self.ignore
        self._prefix = self._make_prefix(self.name, source_check is True)
        #: No make_name and no source_check of its own: the fixed prefix, unless
        #: an app of the front turned source checks on by default.
        self.plain = make_name is None and source_check is None

    def _make_prefix(self, name: str, with_source: bool) -> str:
        if len(name) > _MAX_NAME:
            name = name[:70] + "~" + _digest(name)[:24]
        if with_source:
            return f"memoize:{name}:~{self.source()}:"
        return f"memoize:{name}:"

    def uses_source(self) -> bool:
        """``source_check``, or the app's default when it is ``None``."""
        if self.source_check is not None:
            return self.source_check
        front = self.front
        return bool(front.source_check_default and front.decorator_defaults().source_check)

    def prefix(self) -> str:
        """The key prefix shared by every entry of the function."""
        name = self.name if self.make_name is None else self.make_name(self.name)
        return self._make_prefix(name, self.uses_source())

    def instance_segment(self, obj: Any) -> str:
        """``repr(instance key) + ":"``; digested when long, so the arguments keep room."""
        text = repr(_instance_key(obj))
        if len(text) > _MAX_INSTANCE:
            text = "#" + self.hasher(text)[:32]
        return text + ":"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The cache key of the call, or ``None`` if the arguments don't fit the signature."""
        values = self.binder.bind(args, kwargs)
        if values is None:
            return None
        if (self.plain and not self.front.source_check_default) or (
                self.make_name is None and self.source_check is not None):
            prefix = self._prefix
        else:  # depends on the app's default or, with make_name, on the request
            prefix = self.prefix()
        if self.ignore:
            ignore = self.ignore
            values = tuple(v for i, v in enumerate(values) if i not in ignore)
        if self.method:  # self is never in ignore here, so still first
            prefix += self.instance_segment(values[0])
            values = values[1:]
        rest = repr(values)
        if len(prefix) + len(rest) <= _MAX_MEMO_KEY and rest.isascii():
            return prefix + rest
        return prefix + "#" + self.hasher(rest)


def _wants_args(func: Callable[..., Any], more_than: int = 0) -> bool:
    """Flask-Caching's rule: does ``func`` take more than ``more_than``
    arguments that can be passed positionally (``*args``/``**kwargs`` count)?"""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return sum(1 for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY) > more_than


def _callable_option(name: str, option: Any) -> None:
    if option is not None and not callable(option):
        raise TypeError(f"{name} must be callable, not {type(option).__name__}")


Check = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], bool]


def _bypass(unless: Callable[..., Any] | None) -> Check | None:
    """Flask-Caching's ``unless``: called with no arguments, or, if it takes
    any, with ``(f, *args, **kwargs)``. Truthy means "skip the cache"."""
    if unless is None:
        return None
    _callable_option("unless", unless)
    if _wants_args(unless):
        return lambda f, args, kwargs: bool(unless(f, *args, **kwargs))
    return lambda f, args, kwargs: bool(unless())


ArgsCheck = Callable[[tuple[Any, ...], dict[str, Any]], bool]


def _forcer(forced_update: Callable[..., Any] | None) -> ArgsCheck | None:
    """Flask-Caching's ``forced_update``: called with no arguments, or, if it
    takes any, with the call's ``(*args, **kwargs)``. Truthy means "recompute"."""
    if forced_update is None:
        return None
    _callable_option("forced_update", forced_update)
    if _wants_args(forced_update):
        return lambda args, kwargs: bool(forced_update(*args, **kwargs))
    return lambda args, kwargs: bool(forced_update())


def _staleness(is_stale: Callable[..., Any] | None) -> Callable[[Any, tuple[Any, ...], dict[str, Any]],
                                                                bool] | None:
    """Flask-Caching's ``is_stale``: called on a hit with the cached value,
    plus the call's ``(*args, **kwargs)`` if it takes more than one argument.
    Truthy means "recompute"."""
    if is_stale is None:
        return None
    _callable_option("is_stale", is_stale)
    if _wants_args(is_stale, 1):
        return lambda value, args, kwargs: bool(is_stale(value, *args, **kwargs))
    return lambda value, args, kwargs: bool(is_stale(value))


def _store_filter(response_filter: Callable[[Any], Any] | None,
                  cache_none: bool) -> Callable[[Any], bool] | None:
    _callable_option("response_filter", response_filter)
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


def join_generator(value: Any) -> Any:
    """What Flask-Caching caches for a generator: its items joined when they
    are all ``str`` or all ``bytes``, else the list of them."""
    chunks = list(value)
    if all(isinstance(chunk, str) for chunk in chunks):
        return "".join(chunks)
    if all(isinstance(chunk, bytes) for chunk in chunks):
        return b"".join(chunks)
    return chunks


def _emit(front: Front, signal: Any, **payload: Any) -> None:
    """Send one of Flask-Caching's signals (the caller checked ``receivers``)
    if the app turned them on; the sender is the app."""
    if front.decorator_defaults().enable_signals:
        signal.send(front.app_cache().app, cache=front, **payload)


_MEMO_HIT, _MEMO_MISS = signals.cache_memoize_hit, signals.cache_memoize_miss
_VIEW_HIT, _VIEW_MISS = signals.cache_view_hit, signals.cache_view_miss


def memoize(front: Front, timeout: Any = None, unless: Callable[..., Any] | None = None,
            race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
            forced_update: Callable[..., Any] | None = None,
            response_filter: Callable[[Any], Any] | None = None,
            args_to_ignore: tuple[str, ...] | list[str] | None = None,
            cache_none: bool = True, name: str | None = None,
            is_stale: Callable[..., Any] | None = None, hash_method: Callable[..., Any] | None = None,
            source_check: bool | None = None, version: Any = None) -> Callable[[F], F]:
    """Build the ``@memoize`` decorator; see :meth:`flask_rediscache.RedisCache.memoize`."""
    from .cache import race_seconds
    from .codec import version_bytes

    if version is not None and not callable(version):
        version_bytes(version)  # a bad version raises at decoration time

    _check_timeout(timeout)
    if race_condition_ttl is not None:
        race_seconds(race_condition_ttl)
    bypass = _bypass(unless)
    force = _forcer(forced_update)
    stale_check = _staleness(is_stale)
    should_store = _store_filter(response_filter, cache_none)
    hasher = _hasher(hash_method)

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
            _emit(front, _MEMO_HIT, cache_key=key, f=f, args=args, kwargs=kwargs)

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
                            _emit(front, _MEMO_MISS, cache_key=key, f=f, args=args, kwargs=kwargs)
                        return await _generate_async(front, key, f, *args, **kwargs)

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
                        _emit(front, _MEMO_MISS, cache_key=key, f=f, args=args, kwargs=kwargs)
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


async def _generate_async(front: Front, key: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await ``f(*args, **kwargs)``, sent as :data:`~flask_rediscache.signals.cache_generate`
    when someone listens (what :meth:`.Cache.generate` does for sync code)."""
    if not signals.cache_generate.receivers:
        return await f(*args, **kwargs)
    start = time.perf_counter()
    try:
        return await f(*args, **kwargs)
    finally:
        from .failopen import protect

        protect("cache_generate receiver", signals.cache_generate.send, front.app_cache().app, key=key,
                duration=time.perf_counter() - start, purpose="cache", local=False, operation="generate")


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
    if instance is not _REQUIRED and memo.method:
        prefix += memo.instance_segment(instance)
    return front.delete_matched(escape_glob(prefix) + "*")


def _memo_key(memo: Memoized, func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    key = memo.key(args, kwargs)
    if key is None:
        memo.binder.signature.bind(*args, **kwargs)
        raise TypeError(f"arguments do not fit {memo.name}")  # pragma: no cover
    return key


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
    return not session_touched()


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
def query_pairs(query_args: str | Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a query string, a mapping (a ``MultiDict``
    gives every value) or an iterable of pairs, as ``delete_cached`` and
    ``make_cache_key(query_args=...)`` accept them."""
    if isinstance(query_args, str):
        return parse_qsl(query_args.lstrip("?"), keep_blank_values=True)
    items: Iterable[tuple[str, Any]]
    if isinstance(query_args, Mapping):
        multi = getattr(query_args, "items", None)
        try:
            items = multi(multi=True) if multi is not None else query_args.items()
        except TypeError:  # a plain mapping
            items = query_args.items()
    else:
        items = query_args
    return [(str(name), str(value)) for name, value in items]


def _positional_names(func: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in _POSITIONAL]


def _endpoint_of(view: Callable[..., Any]) -> str:
    """The endpoint ``view`` is registered under in the current app, else its name."""
    for endpoint, registered in current_app.view_functions.items():
        func: Any = registered
        while func is not None:
            if func is view:
                return endpoint
            func = getattr(func, "__wrapped__", None)
    return str(getattr(view, "__name__", view))


def cached(front: Front, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
           unless: Callable[..., Any] | None = None, forced_update: Callable[..., Any] | None = None,
           response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
           make_cache_key: Callable[..., str] | None = None,
           response_hit_indication: bool = False, is_stale: Callable[..., Any] | None = None,
           cache_none: bool = True, hash_method: Callable[..., Any] | None = None,
           source_check: bool | None = None) -> Callable[[F], F]:
    """Build the ``@cached`` decorator; see :meth:`flask_rediscache.RedisCache.cached`."""
    _check_timeout(timeout)
    bypass = _bypass(unless)
    force = _forcer(forced_update)
    stale_check = _staleness(is_stale)
    _callable_option("response_filter", response_filter)
    _callable_option("make_cache_key", make_cache_key)
    hasher = _hasher(hash_method)

    def decorator(f: F) -> F:
        source = _Source(f, hasher)
        names = _positional_names(f)

        def uses_source() -> bool:
            if source_check is not None:
                return source_check
            return bool(front.source_check_default and front.decorator_defaults().source_check)

        def build_key(path: str | None, pairs: Iterable[tuple[str, str]] | None) -> str:
            if callable(key_prefix):
                key = str(key_prefix())
            elif "%s" in key_prefix and path is not None:
                key = key_prefix % path
            else:
                key = key_prefix
            if pairs is not None:
                # Sorted by name then value, so ?a=1&b=2, ?b=2&a=1 and repeated
                # parameters in any order are one entry.
                key = f"{key}?{urlencode(sorted(pairs))}"
            if uses_source():
                key = f"{key}~{source()}"
            return key

        def default_make_cache_key(*args: Any, **kwargs: Any) -> str:
            """Flask-Caching's ``f.make_cache_key``: in the request (what the
            wrapper calls, with ``use_request=True``) the key of the current
            path and query; otherwise ``make_cache_key(path=..., query_args=...)``
            or, without a path, the path ``url_for`` gives for the view's arguments."""
            if kwargs.pop("use_request", False):
                if not has_request_context():  # a plain function: key_prefix as it is
                    return build_key(None, None)
                return build_key(request.path, request.args.items(multi=True) if query_string else None)
            path = kwargs.pop("path", None)
            query_args = kwargs.pop("query_args", None)
            if path is None and not callable(key_prefix) and "%s" in key_prefix:
                values = dict(zip(names, args, strict=False))
                values.update(kwargs)
                path = url_for(_endpoint_of(wrapper), _external=False, **values)
            pairs: Iterable[tuple[str, str]] | None = None
            if query_string:
                if query_args is not None:
                    pairs = query_pairs(query_args)
                elif has_request_context():
                    pairs = request.args.items(multi=True)
                else:
                    pairs = []
            return build_key(path, pairs)

        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bool, Any] | None:
            """``None`` to bypass the cache, else (key, is a view, cached value or MISS)."""
            in_request = has_request_context()
            if in_request and request.method not in ("GET", "HEAD"):
                return None
            if bypass is not None and bypass(f, args, kwargs):
                return None
            if make_cache_key is not None:
                key = make_cache_key(*args, **kwargs)
            else:
                key = wrapper.make_cache_key(*args, use_request=True, **kwargs)
            view = in_request and _is_view(wrapper)
            if force is not None and force(args, kwargs):
                front.app_cache().record(key, False)
                value = MISS
            else:
                value = front.get(key, MISS, signed=True)
                if (value is None and not cache_none) or (
                        value is not MISS and stale_check is not None
                        and stale_check(_unpack(value, False) if view else value, args, kwargs)):
                    value = MISS
            signal = _VIEW_MISS if value is MISS else _VIEW_HIT
            if signal.receivers:
                _emit(front, signal, cache_key=key, args=args, kwargs=kwargs)
            return key, view, value

        def store(key: str, value: Any, seconds: Any) -> None:
            try:
                front.set(key, value, seconds, signed=True)
            except UnpicklableError as exc:
                front.app_cache().unpicklable(value, exc)

        def after(key: str, view: bool, rv: Any) -> Any:
            if isinstance(rv, GeneratorType):
                rv = join_generator(rv)
            keep = response_filter is None or bool(response_filter(rv))
            seconds = wrapper.cache_timeout
            if isinstance(rv, CachedResponse) and rv.timeout:
                seconds = rv.timeout
            if not view:  # a plain function: cache what it returns
                if keep and (cache_none or rv is not None):
                    store(key, rv, seconds)
                return rv
            response = current_app.make_response(rv)
            if keep and _cacheable(response):
                store(key, _pack(response), seconds)
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
                return after(key, view, await _generate_async(front, key, f, *args, **kwargs))

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
                return after(key, view, front.app_cache().generate(key, f, *args, **kwargs))

            wrapper = sync_view

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = default_make_cache_key
        setattr(wrapper, CACHED_ATTR, True)
        return cast(F, wrapper)

    return decorator


def cached_view(view_or_endpoint: Callable[..., Any] | str) -> tuple[Callable[..., Any], str | None]:
    """The ``@cached`` wrapper behind a view function or an endpoint name of
    the current app, and the endpoint (``None`` if it is not registered)."""
    endpoint: str | None = None
    func: Any = view_or_endpoint
    if isinstance(view_or_endpoint, str):
        endpoint = view_or_endpoint
        func = current_app.view_functions.get(endpoint)
        if func is None:
            raise ValueError(f"delete_cached(): the app has no endpoint {endpoint!r}")
    start = func
    while func is not None and not getattr(func, CACHED_ATTR, False):
        func = getattr(func, "__wrapped__", None)
    if func is None:
        raise TypeError(f"{start!r} is not decorated with @cache.cached")
    return func, endpoint


def delete_cached(front: Front, view_or_endpoint: Callable[..., Any] | str, path: str | None = None,
                  query_args: Any = None, **view_args: Any) -> bool:
    """See :meth:`flask_rediscache.RedisCache.delete_cached`."""
    view, endpoint = cached_view(view_or_endpoint)
    if path is None and endpoint is not None:
        path = url_for(endpoint, _external=False, **view_args)
        view_args = {}
    maker: Callable[..., str] = getattr(view, "make_cache_key")  # noqa: B009 - set by cached()
    return front.delete(maker(path=path, query_args=query_args, **view_args))
