"""Did this request use the session? Answered on every Flask version, with public APIs only.

``@cache.cached`` must not store a page that was rendered from the session
(it may hold one user's data). Flask offers no public "was the session
used" for the *current* request that can be read without side effects: since
Flask 3.1.3 merely touching the ``flask.session`` proxy (even to read its
``accessed`` flag) marks the session accessed, and Flask 3.2 opens the
session lazily on first use of the proxy.

So the session interface records the session object it opened in
:data:`flask.g` (under :data:`~flask_rediscache.state.SESSION_G_ATTR`), and
the decorator asks that object directly:

* flask-rediscache's own interface does this itself and its sessions know
  whether their data was read or changed (``touched``);
* with ``REDIS_SESSION = False`` the app's interface (Flask's cookie
  sessions, Flask-Session, ...) is wrapped in :class:`TrackingSessionInterface`
  at ``init_app`` time, which records the opened session and reads its
  ``accessed`` flag (set by Flask when the view used the proxy).

A session interface installed *after* ``init_app`` is not wrapped; then the
answer falls back to ``flask.session.accessed``, which on Flask 3.1.3 and later
is always true: such views are never cached (safe, not fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, g, session
from flask.sessions import SessionInterface, SessionMixin

from .state import SESSION_G_ATTR

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask
    from flask.wrappers import Request, Response


class TrackingSessionInterface(SessionInterface):
    """Wraps another session interface and records each session it opens in ``g``."""

    tracks_access = True

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # Everything not overridden here (serializer, helpers, custom methods) is the inner one's.
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        opened = self.inner.open_session(app, request)
        if opened is not None:
            setattr(g, SESSION_G_ATTR, opened)
        return opened

    def make_null_session(self, app: Flask) -> Any:
        return self.inner.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.inner.is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)


def session_touched() -> bool:
    """Did the current request read or change the session's data?"""
    opened = g.get(SESSION_G_ATTR)
    if opened is not None:
        touched = getattr(opened, "touched", None)
        return bool(opened.accessed if touched is None else touched)
    if getattr(current_app.session_interface, "tracks_access", False):
        return False  # a tracking interface that never opened a session in this request
    return bool(getattr(session, "accessed", True))
