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

The rest of the public API is inherited, grouped by concern: the cache
methods from :mod:`~flask_rediscache.extension_cache_api`, the decorators
from :mod:`~flask_rediscache.extension_decorators`, the broadcasts from
:mod:`~flask_rediscache.extension_cable`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from . import decorators
from .cable import build_cable
from .cache import Cache
from .cli import redis_cli
from .errors import ConfigError
from .extension_cable import Broadcasts
from .extension_cache_api import CacheAPI
from .extension_decorators import Decorators
from .health import register_health_endpoint
from .jinja import ENV_ATTR, FragmentCacheExtension
from .session_access import TrackingSessionInterface
from .sessions import RedisSessionInterface
from .state import EXTENSION_KEY, AppState
from .wiring import build_state

logger = logging.getLogger("flask_rediscache")


def _check_config(config: Any) -> Mapping[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"config={config!r} is invalid: expected a dict of settings or None")
    return config


class RedisCache(CacheAPI, Decorators, Broadcasts):
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

    def client_for(self, name: str) -> Any:
        """The pooled redis-py client of a purpose: ``"cache"``, ``"session"``,
        ``"cable"`` or a name from ``REDIS_PURPOSES`` (for RQ, Celery or your own
        code: same timeouts, TLS and topology; not namespaced, not fail-open)."""
        targets = self.state().targets
        if name not in targets:
            raise KeyError(f"no Redis purpose {name!r}: expected one of {', '.join(sorted(targets))} "
                           "(declare more with REDIS_PURPOSES)")
        return targets[name].client

    @property
    def namespace(self) -> str:
        """``REDIS_NAMESPACE`` of the current app."""
        return self.app_cache().namespace

    def local_cache_stats(self) -> dict[str, Any] | None:
        """What ``REDIS_LOCAL_CACHE`` did in this process for the current app
        (mode, entries, bytes, hits, hit ratio, invalidations...), or None when
        it is off. See docs/local-cache.rst."""
        return self.app_cache().store.local_stats()
