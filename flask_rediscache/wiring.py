"""``build_state``: every layer of one app, built bottom up from its settings.

Settings (:mod:`~flask_rediscache.config_loader`) → clients
(:mod:`~flask_rediscache.clients`) → circuit breakers and fail-open boundaries
(:mod:`~flask_rediscache.failopen`) → the strict store
(:mod:`~flask_rediscache.store`, or the local-copy store of
:mod:`~flask_rediscache.local_store`) → the cache API
(:mod:`~flask_rediscache.cache`). Nothing is registered on the app here:
:meth:`RedisCache.init_app <flask_rediscache.RedisCache.init_app>` does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .breaker import CircuitBreaker
from .cache import Cache
from .clients import Target, build_replica_reader, build_targets
from .codec import Codec
from .config_loader import load_settings
from .failopen import Boundary, LogLimiter, breaker_notifier
from .local_store import build_local_store
from .masking import mask_url
from .null_store import NullStore
from .retrying import Retrier, make_retry
from .state import AppState
from .store import Store


def _secrets(settings: Any) -> tuple[str, ...]:
    """Configured passwords, masked in every log line on top of URL userinfo."""
    found = []
    for name in ("password", "sentinel_password"):
        value = getattr(settings, name, None)
        if isinstance(value, str) and value:
            found.append(value)
    return tuple(found)


def build_state(app: Flask, config: Mapping[str, Any] | None = None) -> AppState:
    """Read the settings and build every layer for ``app`` (nothing is registered yet).

    ``config`` replaces ``app.config`` as the source of the settings (``init_app``
    passes ``app.config`` merged with the instance's ``config=``).
    """
    settings = load_settings(app.config if config is None else config, debug=app.debug or app.testing)
    targets = build_targets(settings)
    if settings.session_client is not None:  # Flask-Session's SESSION_REDIS, used as it is
        targets["session"].purposes.remove("session")
        kind = "memory" if type(settings.session_client).__module__.startswith("fakeredis") else "standalone"
        name = f"{mask_url(settings.session_url)} (SESSION_REDIS)"
        targets["session"] = Target(settings.session_client, name, kind, make_retry(settings), ["session"])
    limiter = LogLimiter()
    secrets = _secrets(settings)
    breakers: dict[int, CircuitBreaker] = {}
    boundaries: dict[str, Boundary] = {}
    for purpose, target in targets.items():
        breaker = breakers.get(id(target))
        if breaker is None:
            breaker = breakers[id(target)] = CircuitBreaker(
                target.name, settings.breaker_threshold, settings.breaker_cooldown, breaker_notifier(app))
        boundaries[purpose] = Boundary(app, f"{purpose} Redis ({target.name})", breaker,
                                       handler=settings.error_handler, fail_open=settings.fail_open,
                                       limiter=limiter, secrets=secrets)
    cache_target: Target = targets["cache"]
    codec = Codec(settings.secret_key, settings.compress_threshold)
    store: Store
    if settings.cache_enabled and settings.local_cache:
        store = build_local_store(settings, cache_target, Retrier.from_settings(settings), codec,
                                  build_replica_reader(settings.cache_url, settings),
                                  boundaries["cache"].breaker)
    elif settings.cache_enabled:
        store = Store(cache_target.client, Retrier.from_settings(settings), codec,
                      is_cluster=cache_target.is_cluster,
                      replica=build_replica_reader(settings.cache_url, settings))
    else:
        store = NullStore(Retrier.from_settings(settings), codec)
    cache = Cache(app, settings, store, boundaries["cache"])
    return AppState(app, settings, targets, boundaries, store, cache)
