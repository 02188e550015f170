"""The :class:`RedisCache` extension: ``init_app`` and the per-app state.

One ``RedisCache`` object may serve several apps (application factory). All
per-app state (settings, clients, guards, the cache) lives in
``app.extensions["rediscache_state"]``; the extension object itself holds
nothing app-specific except, like Flask-Caching, the app passed to the
constructor, used when a cache call happens outside an app context.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context

from . import decorators, signals
from .cache import Cache
from .cli import redis_cli
from .clients import Target, build_targets
from .codec import Codec
from .config import DEFAULTS, ConfigError, Settings, load_settings
from .guard import CircuitBreaker, Guard
from .health import register_health_endpoint
from .sessions import RedisSessionInterface

_cv_app: Any
try:  # the app context's contextvar, read directly on the hot path
    from flask.globals import _cv_app
except ImportError:  # pragma: no cover - a future Flask: fall back to current_app
    _cv_app = None

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "rediscache"
STATE_KEY = "rediscache_state"


@dataclass
class AppState:
    """Everything flask-rediscache keeps for one app."""

    settings: Settings
    targets: dict[str, Target]
    guards: dict[str, Guard]
    cache: Cache
    secret_key: bytes


def _secret_key(app: Flask) -> bytes:
    secret = app.config.get("SECRET_KEY")
    if not secret:
        if app.debug or app.testing:
            logger.warning("flask-rediscache: SECRET_KEY is not set; signing with a random "
                           "per-process key (entries and sessions won't survive a restart)")
            secret = app.config["SECRET_KEY"] = os.urandom(32).hex()
        else:
            raise ConfigError("SECRET_KEY is not set: expected a secret string; flask-rediscache "
                              "signs cache entries and session ids with it")
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _breaker_signal(app: Flask) -> Any:
    def on_change(name: str, state: str) -> None:
        if signals.breaker_state.receivers:
            signals.breaker_state.send(app, client=name, state=state)
    return on_change


class RedisCache:
    """Redis as the cache and session store of a Flask app.

    ``RedisCache(app)`` or ``cache = RedisCache(); cache.init_app(app)``.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._default_app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and validate ``REDIS_*``, build the clients, register the
        session interface, the ``flask redis`` CLI and the health endpoint."""
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = load_settings(app.config, debug=app.debug or app.testing)
        secret = _secret_key(app)
        targets = build_targets(settings)
        breakers: dict[int, CircuitBreaker] = {}
        guards: dict[str, Guard] = {}
        for purpose, target in targets.items():
            breaker = breakers.get(id(target))
            if breaker is None:
                breaker = breakers[id(target)] = CircuitBreaker(
                    target.name, settings.breaker_threshold, settings.breaker_cooldown,
                    _breaker_signal(app))
            guards[purpose] = Guard(app, f"{purpose} Redis ({target.name})", breaker,
                                    settings.error_handler)
        codec = Codec(secret, settings.compress_threshold)
        cache = Cache(app, settings, targets["cache"].client, guards["cache"], codec,
                      targets["cache"].is_cluster)
        state = AppState(settings, targets, guards, cache, secret)
        app.extensions[EXTENSION_KEY] = self
        app.extensions[STATE_KEY] = state
        # Each feature registers itself from its own module (sessions, CLI, health).
        if settings.session:
            app.session_interface = RedisSessionInterface(app, state)
        app.cli.add_command(redis_cli)
        if settings.health_endpoint:
            register_health_endpoint(app, settings.health_endpoint)

    # -- resolving the app ---------------------------------------------
    def state(self, app: Flask | None = None) -> AppState:
        """The :class:`AppState` of ``app`` (default: the current app)."""
        if app is None:
            app = current_app._get_current_object() if has_app_context() else self._default_app  # type: ignore[attr-defined]
            if app is None:
                raise RuntimeError("flask-rediscache: no app context; push one with app.app_context()")
        try:
            state: AppState = app.extensions[STATE_KEY]
        except KeyError:
            raise RuntimeError("flask-rediscache: init_app(app) was not called for this app") from None
        return state

    def _cache(self) -> Cache:
        # On every cache call and memoize hit: read the app context's contextvar
        # directly (about 1 µs cheaper than the current_app proxy).
        ctx = _cv_app.get(None) if _cv_app is not None else None
        if ctx is not None:
            state = ctx.app.extensions.get(STATE_KEY)
            if state is not None:
                return state.cache  # type: ignore[no-any-return]
        elif has_app_context():
            state = current_app.extensions.get(STATE_KEY)
            if state is not None:
                return state.cache  # type: ignore[no-any-return]
        return self.state().cache

    @property
    def client(self) -> Any:
        """The redis-py client of the cache purpose (use it for what the API lacks)."""
        return self._cache().client

    # -- cache API (see flask_rediscache.cache.Cache) ------------------
    def get(self, key: str) -> Any:
        """The value stored at ``key``, or ``None``."""
        return self._cache().get(key)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value``; ``timeout`` in seconds or a timedelta, None = default, 0 = forever."""
        return self._cache().set(key, value, timeout)

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        return self._cache().delete(key)

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent (atomic ``SET NX``); True if stored."""
        return self._cache().add(key, value, timeout)

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed."""
        return self._cache().delete_many(*keys)

    def has(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return self._cache().has(key)

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order (``None`` for misses), in one round trip."""
        return self._cache().get_many(*keys)

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """``{key: value}`` for ``keys`` (``None`` for misses), in one round trip."""
        return self._cache().get_dict(*keys)

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip; returns the keys stored."""
        return self._cache().set_many(mapping, timeout)

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self._cache().inc(key, delta, timeout)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically subtract ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self._cache().dec(key, delta, timeout)

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires; None if it has no expiry or is missing."""
        return self._cache().ttl(key)

    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False) -> T:
        """The cached value of ``key``, or ``func()`` stored and returned, with stampede control."""
        return self._cache().fetch(key, func, timeout, race_condition_ttl, force)

    def delete_matched(self, pattern: str) -> int:
        """Delete the namespace's keys matching the glob ``pattern`` (SCAN + UNLINK); returns the count."""
        return self._cache().delete_matched(pattern)

    def clear(self) -> int:
        """Delete every key of the namespace (never FLUSHDB); returns the count."""
        return self._cache().clear()

    def memoize(self, timeout: Any = None, unless: Callable[..., Any] | None = None,
                race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
                forced_update: Callable[[], Any] | None = None,
                response_filter: Callable[[Any], Any] | None = None,
                args_to_ignore: list[str] | tuple[str, ...] | None = None,
                cache_none: bool = True) -> Callable[[F], F]:
        """Cache a function's results per arguments; a hit is one Redis round trip.

        The key is the function's ``module.qualname`` plus its arguments bound
        to the signature with defaults applied, so ``f(1)``, ``f(1, 2)`` and
        ``f(a=1, b=2)`` share one entry when ``b`` defaults to 2 (arguments
        are keyed by ``repr``, so give argument types a stable ``repr``).
        Methods (first parameter ``self``/``cls``) key on the instance's
        ``__cache_key__()`` if it has one, else ``repr(self)``. ``async def``
        functions work (the Redis calls themselves are synchronous). ``None``
        results are cached. ``f.uncached`` is the undecorated function.

        :param timeout: seconds or ``timedelta``; ``None`` = ``REDIS_DEFAULT_TIMEOUT``, ``0`` = forever.
        :param unless: callable; truthy skips the cache. Called with no arguments,
            or with ``(f, *args, **kwargs)`` if it accepts any (as in Flask-Caching).
        :param race_condition_ttl: stampede control as in :meth:`fetch`; default
            ``REDIS_RACE_CONDITION_TTL``, ``0`` turns it off.
        :param make_name: ``make_name("module.qualname") -> str`` replaces the
            function's name in keys (called per call, so it may depend on the request).
        :param forced_update: callable; truthy recomputes and stores without reading.
        :param response_filter: ``response_filter(result)``; falsy means "don't store".
        :param args_to_ignore: parameter names left out of the key (``["self"]``
            shares entries between instances).
        :param cache_none: ``False`` leaves ``None`` results uncached.

        On Redis errors the function is simply called.
        """
        return decorators.memoize(self._cache, timeout=timeout, unless=unless,
                                  race_condition_ttl=race_condition_ttl, make_name=make_name,
                                  forced_update=forced_update, response_filter=response_filter,
                                  args_to_ignore=args_to_ignore, cache_none=cache_none)

    def cached(self, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
               unless: Callable[..., Any] | None = None, forced_update: Callable[[], Any] | None = None,
               response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
               make_cache_key: Callable[..., str] | None = None,
               response_hit_indication: bool = False) -> Callable[[F], F]:
        """Cache a view's response (Flask-Caching's ``@cache.cached``).

        Only GET and HEAD requests use the cache (they share entries), and only
        a 200 response is stored, and only if it is the same for everyone: no
        ``Set-Cookie``, no ``Cache-Control: private``/``no-store``, and the view
        did not read the session (``session.accessed``). The key is
        ``key_prefix % request.path`` (default ``"view/%s"``, so
        ``cache.delete("view//about")`` drops ``/about``); the query string
        is ignored unless ``query_string=True``, which adds its parameters
        sorted by name, so their order does not matter. A hit replays status, headers
        and body; ``after_request`` hooks still run. Outside a request (a plain
        function) the return value is cached under ``key_prefix``.

        :param timeout: as in :meth:`set`.
        :param key_prefix: a string (``%s`` = the path) or a callable returning the key.
        :param unless: callable; truthy skips the cache.
        :param forced_update: callable; truthy renders and stores without reading.
        :param response_filter: ``response_filter(response)``; falsy means "don't store".
        :param make_cache_key: ``make_cache_key(*view_args, **view_kwargs) -> key``, replaces the above.
        :param response_hit_indication: add a ``hit_cache: True`` header to hits.

        On Redis errors the view is simply called.
        """
        return decorators.cached(self._cache, timeout=timeout, key_prefix=key_prefix, unless=unless,
                                 forced_update=forced_update, response_filter=response_filter,
                                 query_string=query_string, make_cache_key=make_cache_key,
                                 response_hit_indication=response_hit_indication)

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Forget memoized results of ``f``: with arguments, that call's entry;
        without, every entry of ``f`` (for a bound method ``obj.f``, every entry
        of ``obj``). Returns the number of entries deleted."""
        return decorators.delete_memoized(self._cache, f, *args, **kwargs)
