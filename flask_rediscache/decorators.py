"""``@cache.memoize`` and ``@cache.cached``: what both decorators share.

The decorators are Flask-Caching's, over the public cache API:
:mod:`~flask_rediscache.memoize` (with its key layout in
:mod:`~flask_rediscache.memoize_keys`) and :mod:`~flask_rediscache.cached_view`.
This module holds what both use: the :class:`Front` they call, the per-app
:class:`DecoratorDefaults`, :class:`CachedResponse`, and the checks of the
options they share.

Both are app-agnostic when applied (at import time, usually before any app
exists) and resolve the current app on every call, so one decorated function
serves every app of a factory. Every read, write and delete goes through the
extension's public ``get``/``set``/``delete``/``delete_matched`` (a subclass
that instruments them sees the decorators' traffic too), and each of those is
a fail-open operation of its own: on Redis errors the function is simply called.

Flask-Caching's options keep its meaning: ``unless(f, *args, **kwargs)``,
``forced_update(*args, **kwargs)`` and ``is_stale(value, *args, **kwargs)``
get the call's arguments when they accept them; the wrappers carry
``uncached``, ``cache_timeout`` and ``make_cache_key`` (both writable, read on
every call), memoized ones also ``delete_memoized()``; a generator's items are
joined before they are cached; its four signals are sent when
``CACHE_ENABLE_SIGNALS``/``REDIS_ENABLE_SIGNALS`` is on.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import Response as FlaskResponse
from werkzeug.wrappers import Response

from . import signals
from .config import timeout_seconds

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

F = TypeVar("F", bound=Callable[..., Any])

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
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



def default_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def make_hasher(hash_method: Callable[..., Any] | None) -> Callable[[str], str]:
    """``text -> hex digest`` with Flask-Caching's ``hash_method`` (a hashlib
    constructor such as ``hashlib.md5``); ``None`` means SHA-256."""
    if hash_method is None:
        return default_digest
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


class SourceDigest:
    """The digest of a function's source, worked out on first use."""

    def __init__(self, func: Callable[..., Any], hasher: Callable[[str], str]) -> None:
        self.func = func
        self.hasher = hasher
        self._digest: str | None = None

    def __call__(self) -> str:
        if self._digest is None:
            self._digest = self.hasher(_source_of(self.func))[:_SOURCE_DIGITS]
        return self._digest


def _wants_args(func: Callable[..., Any], more_than: int = 0) -> bool:
    """Flask-Caching's rule: does ``func`` take more than ``more_than``
    arguments that can be passed positionally (``*args``/``**kwargs`` count)?"""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return sum(1 for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY) > more_than


def check_callable(name: str, option: Any) -> None:
    if option is not None and not callable(option):
        raise TypeError(f"{name} must be callable, not {type(option).__name__}")


Check = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], bool]


def make_bypass(unless: Callable[..., Any] | None) -> Check | None:
    """Flask-Caching's ``unless``: called with no arguments, or, if it takes
    any, with ``(f, *args, **kwargs)``. Truthy means "skip the cache"."""
    if unless is None:
        return None
    check_callable("unless", unless)
    if _wants_args(unless):
        return lambda f, args, kwargs: bool(unless(f, *args, **kwargs))
    return lambda f, args, kwargs: bool(unless())


ArgsCheck = Callable[[tuple[Any, ...], dict[str, Any]], bool]


def make_forcer(forced_update: Callable[..., Any] | None) -> ArgsCheck | None:
    """Flask-Caching's ``forced_update``: called with no arguments, or, if it
    takes any, with the call's ``(*args, **kwargs)``. Truthy means "recompute"."""
    if forced_update is None:
        return None
    check_callable("forced_update", forced_update)
    if _wants_args(forced_update):
        return lambda args, kwargs: bool(forced_update(*args, **kwargs))
    return lambda args, kwargs: bool(forced_update())


def make_stale_check(is_stale: Callable[..., Any] | None) -> Callable[[Any, tuple[Any, ...], dict[str, Any]],
                                                                bool] | None:
    """Flask-Caching's ``is_stale``: called on a hit with the cached value,
    plus the call's ``(*args, **kwargs)`` if it takes more than one argument.
    Truthy means "recompute"."""
    if is_stale is None:
        return None
    check_callable("is_stale", is_stale)
    if _wants_args(is_stale, 1):
        return lambda value, args, kwargs: bool(is_stale(value, *args, **kwargs))
    return lambda value, args, kwargs: bool(is_stale(value))


def make_store_filter(response_filter: Callable[[Any], Any] | None,
                  cache_none: bool) -> Callable[[Any], bool] | None:
    check_callable("response_filter", response_filter)
    if response_filter is None and cache_none:
        return None

    def should_store(value: Any) -> bool:
        if value is None and not cache_none:
            return False
        return response_filter is None or bool(response_filter(value))
    return should_store


def check_timeout(timeout: Any) -> None:
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


def emit(front: Front, signal: Any, **payload: Any) -> None:
    """Send one of Flask-Caching's signals (the caller checked ``receivers``)
    if the app turned them on; the sender is the app."""
    if front.decorator_defaults().enable_signals:
        signal.send(front.app_cache().app, cache=front, **payload)


async def generate_async(front: Front, key: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
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
