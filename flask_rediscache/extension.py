"""The :class:`RedisCache` extension: ``init_app``, app resolution, and the cache API's front.

``init_app`` wires the layers together with
:func:`~flask_rediscache.wiring.build_state`, bottom up: settings
(:mod:`~flask_rediscache.config`) → clients (:mod:`~flask_rediscache.clients`)
→ circuit breakers and fail-open boundaries (:mod:`~flask_rediscache.failopen`)
→ the strict store (:mod:`~flask_rediscache.store`) → the cache API
(:mod:`~flask_rediscache.cache`), then registers the features: the session
interface, the CLI and the health endpoint. This is the only module that
imports the features; they find their app's state through
:func:`flask_rediscache.state.get_state`.

One ``RedisCache`` object may serve several apps (application factory): its
per-app :class:`~flask_rediscache.state.AppState` lives in a weak mapping
keyed by the app (as Flask-SQLAlchemy 3 keeps its engines), and
``app.extensions["rediscache"]`` is the extension object itself. A call
outside an app context uses the app given to the constructor, or the single
app given to ``init_app``, as Flask-Caching does.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, current_app

from . import cached_view, decorators
from . import memoize as memoize_module
from .cable import Cable, build_cable
from .cache import Cache
from .cli import redis_cli
from .errors import ConfigError
from .health import register_health_endpoint
from .jinja import ENV_ATTR, FragmentCacheExtension
from .locks import Lock
from .session_access import TrackingSessionInterface
from .sessions import RedisSessionInterface
from .state import EXTENSION_KEY, AppState
from .wiring import build_state

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _check_config(config: Any) -> Mapping[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"config={config!r} is invalid: expected a dict of settings or None")
    return config


class RedisCache:
    """Redis as the cache and session store of a Flask app.

    ``RedisCache(app)`` or ``cache = RedisCache(); cache.init_app(app)``.

    :param with_jinja2_ext: register the ``{% cache %}`` template tag (Flask-Caching's name).
    :param config: settings of this instance, overriding ``app.config`` for it
        (Flask-Caching's ``Cache(app, config={...})``); nothing is written
        into ``app.config``. ``init_app(app, config=...)`` overrides both.

    Several instances may serve one app side by side, each with its own
    settings (say, two namespaces). ``app.extensions["rediscache"]`` is the
    first one, and only the first registers the session interface, the
    ``flask redis`` CLI and the health endpoint; the others are plain caches.
    """

    def __init__(self, app: Flask | None = None, with_jinja2_ext: bool = True,
                 config: Mapping[str, Any] | None = None) -> None:
        self._default_app = app
        self._config = dict(_check_config(config))
        self._with_jinja2_ext = with_jinja2_ext
        self._last_app: weakref.ref[Flask] | None = None
        self._states: weakref.WeakKeyDictionary[Flask, AppState] = weakref.WeakKeyDictionary()
        #: True once an app of this object turned ``source_check`` on by default.
        self.source_check_default = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, config: Mapping[str, Any] | None = None) -> None:
        """Read and validate ``REDIS_*``, build the clients, register the
        session interface, the ``flask redis`` CLI, the health endpoint and
        the ``{% cache %}`` template tag.

        ``config`` overrides ``app.config`` and the constructor's ``config``
        for this instance on this app. Raises :class:`RuntimeError` if this
        object was already initialised on ``app``, and
        :class:`~flask_rediscache.ConfigError` (naming the key) for a bad
        setting. Nothing is written into ``app.config``.
        """
        if app in self._states:
            raise RuntimeError("flask-rediscache: init_app() was already called for this app "
                               f"({app.name!r}); create the app again instead of re-initialising it")
        overrides = {**self._config, **_check_config(config)}
        merged: Mapping[str, Any] = {**app.config, **overrides} if overrides else app.config
        state = build_state(app, merged)
        state.extras["decorator_defaults"] = defaults = decorators.DecoratorDefaults(
            source_check=state.settings.source_check,  # CACHE_SOURCE_CHECK
            enable_signals=state.settings.enable_signals,  # REDIS_/CACHE_ENABLE_SIGNALS
        )
        if defaults.source_check:
            self.source_check_default = True
        self._states[app] = state
        self._last_app = weakref.ref(app)
        if self._with_jinja2_ext:
            app.jinja_env.add_extension(FragmentCacheExtension)
            app.jinja_env.extend(**{ENV_ATTR: self})  # keeps the first instance's
        if EXTENSION_KEY in app.extensions:
            return  # a second instance on this app: a cache only
        app.extensions[EXTENSION_KEY] = self
        if state.settings.session:
            interface = RedisSessionInterface(state)
            state.extras["session_interface"] = interface
            app.session_interface = interface
        elif not getattr(app.session_interface, "tracks_access", False):
            # So @cached can tell whether a view used the app's own sessions.
            app.session_interface = TrackingSessionInterface(app.session_interface)
        state.extras["cable"] = build_cable(state)
        app.cli.add_command(redis_cli)
        if state.settings.health_endpoint:
            register_health_endpoint(app, state.settings.health_endpoint)

    # -- resolving the app ---------------------------------------------
    def state_for(self, app: Flask) -> AppState:
        """The :class:`~flask_rediscache.state.AppState` of ``app``."""
        state = self._states.get(app)
        if state is None:
            raise RuntimeError(f"flask-rediscache: init_app() was not called for the app {app.name!r}")
        return state

    def _fallback_app(self) -> Flask:
        if self._default_app is not None:
            return self._default_app
        apps = list(self._states.keys())
        if len(apps) == 1:
            return apps[0]
        raise RuntimeError("flask-rediscache: no app context, and this RedisCache serves "
                           f"{len(apps)} apps; push one with app.app_context()")

    def state(self, app: Flask | None = None) -> AppState:
        """The :class:`~flask_rediscache.state.AppState` of ``app`` (default:
        the current app, else the constructor's or the only one)."""
        if app is None:
            try:
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            except RuntimeError:  # no app context
                app = self._fallback_app()
        return self.state_for(app)

    def app_cache(self) -> Cache:
        """The :class:`~flask_rediscache.cache.Cache` of the current app."""
        try:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        except RuntimeError:  # no app context: Flask-Caching's rule
            app = self._fallback_app()
        state = self._states.get(app)
        if state is None:
            return self.state_for(app).cache
        return state.cache

    @property
    def app(self) -> Flask:
        """The app calls use (Flask-Caching's ``cache.app``): the current app
        if this object serves it, else the constructor's app, else the last
        app given to :meth:`init_app`."""
        try:
            current = current_app._get_current_object()  # type: ignore[attr-defined]
        except RuntimeError:  # no app context
            current = None
        if current is not None and current in self._states:
            return current  # type: ignore[no-any-return]
        if self._default_app is not None:
            return self._default_app
        last = self._last_app() if self._last_app is not None else None
        if last is None:
            raise RuntimeError("flask-rediscache: init_app() was not called yet")
        return last

    def decorator_defaults(self) -> decorators.DecoratorDefaults:
        """The current app's defaults for the decorators' Flask-Caching options."""
        found = self.state().extras.get("decorator_defaults")
        return found if found is not None else decorators.DecoratorDefaults()

    @property
    def client(self) -> Any:
        """The redis-py client of the cache purpose (use it for what the API lacks:
        it is not namespaced and does not fail open)."""
        return self.app_cache().client

    @property
    def namespace(self) -> str:
        """``REDIS_NAMESPACE`` of the current app."""
        return self.app_cache().namespace

    def local_cache_stats(self) -> dict[str, Any] | None:
        """What ``REDIS_LOCAL_CACHE`` did in this process for the current app
        (mode, entries, bytes, hits, hit ratio, invalidations...), or None when
        it is off. See docs/local-cache.rst."""
        return self.app_cache().store.local_stats()

    # -- cache API (see flask_rediscache.cache.Cache) ------------------
    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any:
        """The value stored at ``key``, or ``default``; with ``version``, only an
        entry written with that version (see :meth:`.Cache.get`)."""
        if version is None:
            return self.app_cache().get(key, default, signed=signed, stale=stale)
        return self.app_cache().get(key, default, signed=signed, stale=stale, version=version)

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool:
        """Store ``value``; ``timeout`` in seconds or a timedelta, None = default, 0 = forever;
        ``version`` is stored in the entry (see :meth:`.Cache.set`)."""
        return self.app_cache().set(key, value, timeout, signed=signed, race_condition_ttl=race_condition_ttl,
                                    version=version)

    def delete(self, key: str, *, version: Any = None) -> bool:
        """Delete ``key``; True if it existed. With ``version``, only an entry of that version."""
        return self.app_cache().delete(key, version=version)

    def add(self, key: str, value: Any, timeout: Any = None, *, version: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent (atomic ``SET NX``); True if stored."""
        return self.app_cache().add(key, value, timeout, version=version)

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed
        (Flask-Caching returns the list of keys deleted)."""
        return self.app_cache().delete_many(*keys)

    def unlink(self, *keys: str) -> int:
        """Delete several keys with ``UNLINK`` (Flask-Caching's name); returns how many existed."""
        return self.app_cache().unlink(*keys)

    def has(self, key: str, *, version: Any = None) -> bool:
        """Whether ``key`` holds a live entry (false inside the ``race_condition_ttl``
        stale window, as Rails' ``exist?``; see :meth:`.Cache.has`)."""
        return self.app_cache().has(key, version=version)

    def get_many(self, *keys: str, version: Any = None) -> list[Any]:
        """The values of ``keys`` in order (``None`` for misses), in one round trip."""
        return self.app_cache().get_many(*keys, version=version)

    def get_dict(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """``{key: value}`` for ``keys`` (``None`` for misses), in one round trip."""
        return self.app_cache().get_dict(*keys, version=version)

    def read_multi(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """Rails' ``read_multi``: ``{key: value}`` of the keys found (misses left out), one round trip."""
        return self.app_cache().read_multi(*keys, version=version)

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None, *, version: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip; returns the keys stored."""
        return self.app_cache().set_many(mapping, timeout, version=version)

    def write_multi(self, mapping: Mapping[str, Any], timeout: Any = None, *,
                    version: Any = None) -> list[str]:
        """Rails' ``write_multi`` (:meth:`set_many`): one round trip; returns the keys stored."""
        return self.app_cache().write_multi(mapping, timeout, version=version)

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self.app_cache().inc(key, delta, timeout)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically subtract ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self.app_cache().dec(key, delta, timeout)

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires; ``None`` if it has no expiry, ``0`` if it is missing
        or inside its stale window (see :meth:`.Cache.ttl`)."""
        return self.app_cache().ttl(key)

    def expire(self, key: str, timeout: Any) -> bool:
        """Set ``key``'s TTL (one ``EXPIRE``; ``0`` removes it); True if the key exists."""
        return self.app_cache().expire(key, timeout)

    def expire_at(self, key: str, when: Any) -> bool:
        """Expire ``key`` at an aware ``datetime`` or epoch seconds (one ``PEXPIREAT``)."""
        return self.app_cache().expire_at(key, when)

    def persist(self, key: str) -> bool:
        """Remove ``key``'s expiry (``PERSIST``); True if a TTL was removed."""
        return self.app_cache().persist(key)

    def touch(self, key: str, timeout: Any = None) -> bool:
        """Reset ``key``'s TTL to ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``): one
        command, no value transferred; True if the key exists."""
        return self.app_cache().touch(key, timeout)

    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False, *,
              skip_nil: bool = False, expires_at: Any = None, version: Any = None) -> T:
        """The cached value of ``key``, or ``func()`` stored and returned, with stampede
        control; ``skip_nil``, ``expires_at``, ``version`` as in :meth:`.Cache.fetch`."""
        return self.app_cache().fetch(key, func, timeout, race_condition_ttl, force, skip_nil=skip_nil,
                                      expires_at=expires_at, version=version)

    def fetch_multi(self, keys: Any, compute: Callable[[list[str]], Mapping[str, Any]], *,
                    timeout: Any = None, race_condition_ttl: float | None = None, skip_nil: bool = False,
                    version: Any = None) -> dict[str, Any]:
        """Rails' ``fetch_multi``: one read round trip, ``compute(missing)`` called once,
        the misses stored in one round trip; ``{key: value}`` in the order of ``keys``
        (see :meth:`.Cache.fetch_multi`)."""
        return self.app_cache().fetch_multi(keys, compute, timeout=timeout,
                                            race_condition_ttl=race_condition_ttl, skip_nil=skip_nil,
                                            version=version)

    def lock(self, name: str, timeout: float | None = 10, blocking_timeout: float | None = 5, *,
             blocking: bool = True, sleep: float = 0.1, thread_local: bool = True) -> Lock:
        """A distributed lock (redis-py's ``Lock``, namespaced): ``with cache.lock("job"): ...``.
        Never fails open: raises :class:`~flask_rediscache.errors.LockError` when Redis is
        unreachable or the lock is not free within ``blocking_timeout`` (see :meth:`.Cache.lock`)."""
        return self.app_cache().lock(name, timeout, blocking_timeout, blocking=blocking, sleep=sleep,
                                     thread_local=thread_local)

    def delete_matched(self, pattern: str) -> int:
        """Delete the namespace's keys matching the glob ``pattern`` (SCAN + UNLINK); returns the count."""
        return self.app_cache().delete_matched(pattern)

    def clear(self) -> int:
        """Delete every key of the namespace (never FLUSHDB); returns the count."""
        return self.app_cache().clear()

    def memoize(self, timeout: Any = None, unless: Callable[..., Any] | None = None,
                race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
                forced_update: Callable[..., Any] | None = None,
                response_filter: Callable[[Any], Any] | None = None,
                args_to_ignore: list[str] | tuple[str, ...] | None = None,
                cache_none: bool = True, name: str | None = None, *,
                is_stale: Callable[..., Any] | None = None, hash_method: Callable[..., Any] | None = None,
                source_check: bool | None = None, version: Any = None) -> Callable[[F], F]:
        """Cache a function's results per arguments; a hit is one Redis round trip.

        The key is the function's ``module.qualname`` plus its arguments bound
        to the signature with defaults applied, so ``f(1)``, ``f(1, 2)`` and
        ``f(a=1, b=2)`` share one entry when ``b`` defaults to 2 (arguments
        are keyed by ``repr``, so give argument types a stable ``repr``).
        Methods (first parameter ``self``/``cls``) key on the instance's
        ``__cache_key__()`` or ``__caching_id__()`` if it has one, else
        ``repr(self)``. ``async def`` functions work (the Redis calls
        themselves are synchronous). ``None`` results are cached. A generator
        function's items are joined (``str``/``bytes``) or listed, and that is
        cached and returned, as in Flask-Caching.

        The wrapper carries Flask-Caching's attributes: ``f.uncached`` (the
        undecorated function), ``f.cache_timeout`` and ``f.make_cache_key``
        (``make_cache_key(f.uncached, *args, **kwargs) -> key``; both writable,
        read on every call) and ``f.delete_memoized()`` (every entry of ``f``).

        :param timeout: seconds or ``timedelta``; ``None`` = ``REDIS_DEFAULT_TIMEOUT``, ``0`` = forever.
        :param unless: callable; truthy skips the cache. Called with no arguments,
            or with ``(f, *args, **kwargs)`` if it accepts any (as in Flask-Caching).
        :param race_condition_ttl: stampede control as in :meth:`fetch`; default
            ``REDIS_RACE_CONDITION_TTL``, ``0`` turns it off.
        :param make_name: ``make_name("module.qualname") -> str`` replaces the
            function's name in keys (called per call, so it may depend on the request).
        :param forced_update: callable; truthy recomputes and stores without reading.
            Called with no arguments, or with the call's ``(*args, **kwargs)`` if it accepts any.
        :param response_filter: ``response_filter(result)``; falsy means "don't store".
        :param args_to_ignore: parameter names left out of the key (``["self"]``
            shares entries between instances).
        :param cache_none: ``False`` leaves ``None`` results uncached (Flask-Caching's default).
        :param name: replaces ``module.qualname`` in keys. The module part depends on how
            the code was loaded (``__main__.f`` under ``python app.py``, ``app.f`` under
            ``flask run`` or gunicorn), so a warm-up script and the server only share
            entries when the name is pinned.
        :param is_stale: ``is_stale(value)``, or ``is_stale(value, *args, **kwargs)``
            if it takes more arguments, called on a hit; truthy recomputes and stores.
        :param hash_method: the hashlib constructor digesting long keys and the
            source (default ``hashlib.sha256``).
        :param source_check: key on the function's source too, so changed code
            misses; ``None`` = ``CACHE_SOURCE_CHECK`` of the app.
        :param version: a ``str``/``int`` (or a callable returning one, called per
            call) stored inside each entry, Rails' recyclable keys: an entry of
            another version is a miss and is replaced in place, so bumping it
            invalidates every entry of ``f`` without growing the key count.

        The options after ``name`` are keyword-only (Flask-Caching orders its
        arguments differently: pass everything but ``timeout`` by name).
        On Redis errors the function is simply called.
        """
        return memoize_module.memoize(self, timeout=timeout, unless=unless,
                                  race_condition_ttl=race_condition_ttl, make_name=make_name,
                                  forced_update=forced_update, response_filter=response_filter,
                                  args_to_ignore=args_to_ignore, cache_none=cache_none, name=name,
                                  is_stale=is_stale, hash_method=hash_method, source_check=source_check,
                                  version=version)

    def cached(self, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
               unless: Callable[..., Any] | None = None, forced_update: Callable[..., Any] | None = None,
               response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
               make_cache_key: Callable[..., str] | None = None,
               response_hit_indication: bool = False, *, is_stale: Callable[..., Any] | None = None,
               cache_none: bool = True, hash_method: Callable[..., Any] | None = None,
               source_check: bool | None = None) -> Callable[[F], F]:
        """Cache a view's response, or a function's value (Flask-Caching's ``@cache.cached``).

        Only GET and HEAD requests use the cache (they share entries), and only
        a 200 response is stored, and only if it is the same for everyone: no
        ``Set-Cookie``, no ``Cache-Control: private``/``no-store``, and the view
        did not touch the session. The key is
        ``key_prefix % request.path`` (default ``"view/%s"``, so
        ``cache.delete("view//about")`` drops ``/about``); the query string
        is ignored unless ``query_string=True``, which adds its parameters
        sorted by name, so their order does not matter. A hit replays status, headers
        and body; ``after_request`` hooks still run. A function that is not the
        request's view (a helper called from one, or any function outside a
        request) caches its return value under ``key_prefix``. A view may return
        a :class:`~flask_rediscache.CachedResponse` to choose its own timeout;
        a generator's items are joined first.

        The wrapper carries ``f.uncached``, ``f.cache_timeout`` and
        ``f.make_cache_key`` (both writable, read on every call);
        ``f.make_cache_key(path=..., query_args=...)`` or, for a registered
        view, ``f.make_cache_key(**view_args)`` gives the key outside a
        request, and :meth:`delete_cached` deletes it.

        :param timeout: as in :meth:`set`.
        :param key_prefix: a string (``%s`` = the path) or a callable returning the key.
        :param unless: callable; truthy skips the cache. Called with no arguments,
            or with ``(f, *args, **kwargs)`` if it accepts any.
        :param forced_update: callable; truthy renders and stores without reading.
            Called with no arguments, or with the call's ``(*args, **kwargs)`` if it accepts any.
        :param response_filter: ``response_filter(rv)`` with what the function
            returned (as Flask-Caching passes it); falsy means "don't store".
        :param make_cache_key: ``make_cache_key(*view_args, **view_kwargs) -> key``, replaces the above.
        :param response_hit_indication: add a ``hit_cache: True`` header to hits.
        :param is_stale: ``is_stale(value[, *args, **kwargs])`` on a hit (for a
            view, the replayed response); truthy recomputes and stores.
        :param cache_none: ``False``: a function returning ``None`` is not cached.
        :param hash_method: the hashlib constructor of the source digest.
        :param source_check: add a digest of the function's source to the key;
            ``None`` = ``CACHE_SOURCE_CHECK`` of the app.

        On Redis errors the view is simply called.
        """
        return cached_view.cached(self, timeout=timeout, key_prefix=key_prefix, unless=unless,
                                 forced_update=forced_update, response_filter=response_filter,
                                 query_string=query_string, make_cache_key=make_cache_key,
                                 response_hit_indication=response_hit_indication, is_stale=is_stale,
                                 cache_none=cache_none, hash_method=hash_method, source_check=source_check)

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Forget memoized results of ``f``: with arguments, that call's entry;
        without, every entry of ``f`` (for a bound method ``obj.f``, every entry
        of ``obj``). Returns the number of entries deleted.

        As in Flask-Caching, ``delete_memoized(obj.method, x)`` and
        ``delete_memoized(obj.method, obj, x)`` name the same entry (so does
        ``delete_memoized(Cls.method, obj, x)``), and a classmethod takes its
        class explicitly, ``delete_memoized(Cls.method, Cls, a)``: without it
        :class:`ValueError` is raised.
        """
        return memoize_module.delete_memoized(self, f, *args, **kwargs)

    def delete_cached(self, view_or_endpoint: Callable[..., Any] | str, path: str | None = None,
                      query_args: Any = None, *, query_string: Any = None, **view_args: Any) -> bool:
        """Delete what ``@cached`` stored for a view (Flask-Caching's ``delete_cached``).

        ``view_or_endpoint`` is the decorated function or the endpoint name of
        a view. Give the ``path`` the response was cached for, or the view's
        arguments (``url_for`` builds the path from them); for
        ``query_string=True`` views also the query, as ``query_args`` (or its
        alias ``query_string``): a string such as ``"a=1&b=2"``, a mapping or
        ``(name, value)`` pairs, in any order. True if an entry was deleted.
        """
        if query_args is None:
            query_args = query_string
        return cached_view.delete_cached(self, view_or_endpoint, path, query_args, **view_args)

    # -- broadcast (see flask_rediscache.cable) ----------------------------
    def _cable(self) -> Cable:
        cable: Cable = self.state().extras["cable"]
        return cable

    def broadcast(self, channel: str, data: Any, *, event: str | None = None) -> str | None:
        """Send ``data`` (JSON-encoded) to every open :meth:`stream` of ``channel``, in
        every process; returns the message id, or ``None`` when Redis failed (fail-open).

        Kept for replay: the last ``REDIS_CABLE_HISTORY`` messages of a channel.
        ``event`` names the server-sent event (``addEventListener(event, ...)``);
        without it the browser's ``onmessage`` gets it.
        """
        return self._cable().broadcast(channel, data, event=event)

    def stream(self, channel: str, *, last_event_id: str | None = None, heartbeat: float | None = None,
               max_seconds: float | None = None, retry_ms: int | None = None) -> Any:
        """A ``text/event-stream`` response with ``channel``'s messages: return it from a view.

        Replays what the client missed after its ``Last-Event-ID``, sends a
        heartbeat comment every ``heartbeat`` seconds (default 15) and ends after
        ``max_seconds`` (default ``REDIS_CABLE_MAX_STREAM_SECONDS``); the browser
        then reconnects and replays. Authorisation is the view's job.
        """
        return self._cable().stream(channel, last_event_id=last_event_id, heartbeat=heartbeat,
                                    max_seconds=max_seconds, retry_ms=retry_ms)

    def broadcasts(self, channel: str) -> list[Any]:
        """In testing (``app.testing``): the data broadcast to ``channel`` by this process, in order."""
        return self._cable().broadcasts(channel)

    def client_for(self, name: str) -> Any:
        """The pooled redis-py client of a purpose: ``"cache"``, ``"session"``,
        ``"cable"`` or a name from ``REDIS_PURPOSES`` (for RQ, Celery or your own
        code: same timeouts, TLS and topology; not namespaced, not fail-open)."""
        targets = self.state().targets
        if name not in targets:
            raise KeyError(f"no Redis purpose {name!r}: expected one of {', '.join(sorted(targets))} "
                           "(declare more with REDIS_PURPOSES)")
        return targets[name].client
