"""Per-app state, and how features find it.

``app.extensions["rediscache"]`` is the :class:`~flask_rediscache.RedisCache`
object (one key, as Flask extensions do); like Flask-SQLAlchemy 3 it keeps
each app's state in a weak mapping keyed by the app, so one extension object
serves every app of a factory and an app that goes away takes its state
(clients, pools) with it.

Features (sessions, CLI, health) import this module and call
:func:`get_state`; :mod:`~flask_rediscache.extension` imports the features.
Nothing here imports a feature except for type checking, so there is no
import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask, current_app, has_app_context

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache
    from .clients import Target
    from .config import Settings
    from .failopen import Boundary
    from .store import Store

#: The ``app.extensions`` key holding the :class:`~flask_rediscache.RedisCache`.
EXTENSION_KEY = "rediscache"


@dataclass
class AppState:
    """Everything flask-rediscache keeps for one app."""

    app: Flask
    settings: Settings
    #: purpose ("cache", "session", ...) -> where it connects.
    targets: dict[str, Target]
    #: purpose -> its fail-open boundary.
    boundaries: dict[str, Boundary]
    store: Store
    cache: Cache
    #: Whatever features attach (the session interface, the health cache, ...).
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Disconnect every pool (``init_app`` on a rebuilt app, tests)."""
        self.store.close()
        seen: set[int] = set()
        for target in self.targets.values():
            if id(target.client) in seen:
                continue
            seen.add(id(target.client))
            pool = getattr(target.client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()
            elif callable(getattr(target.client, "close", None)):  # RedisCluster
                target.client.close()
        replica = getattr(self.store, "replica", None)  # REDIS_READ_FROM_REPLICAS' reader
        if replica is not None:
            pool = getattr(replica, "connection_pool", None)
            if pool is not None:
                pool.disconnect()
            elif callable(getattr(replica, "close", None)):
                replica.close()


class StateOwner(Protocol):
    """What ``app.extensions["rediscache"]`` provides to the features."""

    def state_for(self, app: Flask) -> AppState: ...


def get_state(app: Flask | None = None) -> AppState:
    """The :class:`AppState` of ``app``, or of the current app."""
    if app is None:
        if not has_app_context():
            raise RuntimeError("flask-rediscache: no app context; push one with app.app_context()")
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    owner: StateOwner | None = app.extensions.get(EXTENSION_KEY)
    if owner is None:
        raise RuntimeError("flask-rediscache: RedisCache(app) / init_app(app) was not called for this app")
    return owner.state_for(app)


#: Attribute of :data:`flask.g` where the session interface records the
#: session it opened, so ``@cached`` can tell whether a view used it
#: (public API only: no peeking into Flask's contexts).
SESSION_G_ATTR = "_rediscache_session"
