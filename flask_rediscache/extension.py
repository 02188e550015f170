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
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context

from . import signals
from .cache import Cache
from .clients import Target, build_targets
from .codec import Codec
from .config import DEFAULTS, ConfigError, Settings, load_settings
from .guard import CircuitBreaker, Guard
from .sessions import RedisSessionInterface

logger = logging.getLogger("flask_rediscache")

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
        if has_app_context():
            try:
                return current_app.extensions[STATE_KEY].cache  # type: ignore[no-any-return]
            except KeyError:
                pass
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
