"""Server-side sessions in Redis: a sibling of Flask's ``SecureCookieSessionInterface``.

``init_app`` installs :class:`RedisSessionInterface` as ``app.session_interface``
unless ``REDIS_SESSION = False``. The data lives in a Redis hash; the browser
holds a signed, timestamped, random session id. docs/sessions.rst is the
user's guide; this docstring is the map for a contributor.

* **Opening costs nothing.** :meth:`RedisSessionInterface.open_session` only
  verifies the cookie (itsdangerous' :class:`~itsdangerous.TimestampSigner`,
  pure CPU: a forged cookie never reaches Redis) and returns a
  :class:`RedisSession` that loads its data on first use. A request that
  never touches ``session`` sends no command.
* **Loading** is one round trip (:meth:`SessionStore.load
  <flask_rediscache.session_store.SessionStore.load>`): ``HGETALL``, with the
  sliding ``EXPIRE`` pipelined when the cookie is older than
  :attr:`RedisSessionInterface.refresh_fraction` of
  ``PERMANENT_SESSION_LIFETIME``; the cookie is then re-signed, so the TTL
  slides at most once per half lifetime instead of on every request.
* **Saving** is one atomic round trip (:meth:`SessionStore.save
  <flask_rediscache.session_store.SessionStore.save>`): the fields that changed,
  applied entirely or not at all, and only to a session that still exists.
* **Errors** are caught in one place, the session purpose's
  :class:`~flask_rediscache.failopen.Boundary`: one ``open_session`` call per
  load, one ``save_session`` call per save.

:attr:`RedisSession.touched` and :data:`~flask_rediscache.state.SESSION_G_ATTR`
tell ``@cached`` whether a view used the session.

The cookie (signing, key, flags) is in :mod:`~flask_rediscache.session_cookies`,
the field encoding and the save's diff in :mod:`~flask_rediscache.session_codec`,
the session object in :mod:`~flask_rediscache.session_object`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, ClassVar

from flask import Flask, g, has_app_context
from flask.sessions import SessionMixin

from . import signals
from .instrument import observe_session
from .session_codec import SessionFields, encode_name
from .session_cookies import SessionCookies
from .session_object import RedisSession
from .session_store import CREATE, PERMANENT_FIELD, REPLACE, UPDATE, SavePlan, SessionStore
from .state import SESSION_G_ATTR

if TYPE_CHECKING:  # pragma: no cover
    from flask.wrappers import Request, Response

    from .failopen import Boundary
    from .state import AppState

logger = logging.getLogger("flask_rediscache")


class RedisSessionInterface(SessionCookies, SessionFields):
    """Stores sessions in Redis hashes, keyed by a digest of a signed random id.

    Installed by :meth:`RedisCache.init_app <flask_rediscache.RedisCache.init_app>`
    (unless ``REDIS_SESSION = False``); it uses the session purpose's client
    (``REDIS_SESSION_URL``, default ``REDIS_URL``) and boundary, and Flask's
    cookie helpers (``SESSION_COOKIE_*``, ``PERMANENT_SESSION_LIFETIME``,
    ``SESSION_REFRESH_EACH_REQUEST``) keep their Flask meaning.
    """

    session_class = RedisSession
    pickle_based = False
    #: Sessions record :attr:`RedisSession.touched` and are kept in
    #: ``g.<SESSION_G_ATTR>``; no session there means none was opened.
    tracks_access: ClassVar[bool] = True

    def __init__(self, state: AppState) -> None:
        settings = state.settings
        target = state.targets["session"]
        self.store = SessionStore(target.client, target.retry, kind=target.kind)
        self.sid_bytes = settings.session_id_bytes
        self.default_permanent = bool(settings.session_permanent)
        self.boundary: Boundary = observe_session(state.boundaries["session"])
        self.prefix: str = settings.session_prefix
        self._key_head = self.prefix + ":"
        self.signer = self._signer([settings.secret_key])
        fallbacks = list(settings.secret_key_fallbacks)
        self.fallback_signer = self._signer(fallbacks) if fallbacks else None

    def _failed(self, app: Flask, operation: str) -> None:
        # The boundary has already logged the exception and sent cache_error.
        if signals.session_error.receivers:
            signals.session_error.send(app, operation=operation, exception=None)

    # -- opening and loading ---------------------------------------------------
    def open_session(self, app: Flask, request: Request) -> RedisSession:
        session = self._open(app, request)
        session.make_sid = self.generate_sid
        session.default_permanent = self.default_permanent
        if has_app_context():
            setattr(g, SESSION_G_ATTR, session)
        return session

    def _open(self, app: Flask, request: Request) -> RedisSession:
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        parsed = self.unsign(cookie)
        if parsed is None:
            return self.session_class()
        sid, signed_at, current = parsed
        session = self.session_class(sid, lambda s: self._load(app, s))
        session.cookie_age = time.time() - signed_at
        session.resign = not current
        return session

    def _load(self, app: Flask, session: RedisSession) -> None:
        """Fill ``session`` from Redis (called on its first use)."""
        assert session.stored_sid is not None
        ttl = self.ttl(app) if self.refresh_due(app, session) else None
        loaded = self.boundary.call("open_session", None, self.store.load, self.key(session.stored_sid), ttl)
        if loaded is None:
            session.unavailable = True
            self._failed(app, "open")
            return
        if loaded.refresh_error is not None:
            # The data stands; only the TTL did not slide (e.g. READONLY on a replica).
            self.boundary.report("open_session", None, loaded.refresh_error)
        if loaded.fields is None:
            # Expired, revoked, never stored, or not a hash: don't reuse the
            # id; the next write gets a fresh one.
            session.stored_sid = None
            session.new = True
            return
        session.refreshed = loaded.refreshed
        self._decode(app, session, loaded.fields)


    # -- saving ----------------------------------------------------------------
    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session.accessed:
            response.vary.add("Cookie")
        if not isinstance(session, RedisSession):
            return
        if session.pending:
            self._save_untouched(app, session, response)
        elif session.unavailable:
            # Nothing is known about the stored session: write nothing and keep
            # the client's cookie, except for a log-out, which still deletes it.
            if session.cleared and not session.data and session.stored_sid is not None:
                self._end(app, session, response, session.stored_sid, [])
        elif session.data:
            self._save(app, session, response)
        elif session.stored_sid is not None and (session.cleared or session.new_sid is not None
                                                 or session.loaded):
            # Emptied by clear() or by removing every field.
            self._end(app, session, response, session.stored_sid, list(session.loaded))

    def _save_untouched(self, app: Flask, session: RedisSession, response: Response) -> None:
        """Nobody used the session: send nothing, unless the TTL is due to slide."""
        if session.stored_sid is None or not self.refresh_due(app, session):
            return
        found = self.boundary.call("save_session", None, self.store.refresh,
                                   self.key(session.stored_sid), self.ttl(app))
        if found is None:
            self._failed(app, "save")
        elif found.alive:
            permanent = False
            if found.permanent is not None:
                try:
                    permanent = bool(self.serializer.loads(found.permanent))
                except Exception:  # garbage in that field: as a browser-session cookie
                    permanent = False
            self._set_cookie(app, response, session.stored_sid, permanent)

    def _end(self, app: Flask, session: RedisSession, response: Response, sid: str,
             removed: list[str]) -> None:
        """The session was emptied: delete its data and its cookie.

        The cookie goes even if Redis could not be told (the user asked to end
        the session); the stored data then expires with its TTL.
        """
        key = self.key(sid)
        result: object
        if session.cleared or session.new_sid is not None or not removed:
            result = self.boundary.call("save_session", None, self.store.delete, key)
        else:
            names = [encode_name(n) for n in removed]
            result = self.boundary.call("save_session", None, self.store.delete_fields, key, names)
        if result is None:
            self._failed(app, "save")
        self._delete_cookie(app, response)

    def _save(self, app: Flask, session: RedisSession, response: Response) -> None:
        old = session.stored_sid
        moving = session.new_sid is not None and old is not None
        whole = old is None or session.cleared or moving
        if old is None and session.default_permanent and PERMANENT_FIELD not in session.data:
            session.data[PERMANENT_FIELD] = True  # SESSION_PERMANENT
        changed, removed = self._changes(session, whole)
        permanent = bool(session.data.get(PERMANENT_FIELD, False))
        ttl = self.ttl(app)
        sid = session.new_sid or old or session.sid
        applied: bool | None = True
        written = False
        if old is None or moving or changed or removed:
            written = True
            sets = {encode_name(n): b for n, b in changed.items()}
            if old is None:
                applied = self.boundary.call("save_session", None, self.store.save,
                                             SavePlan(CREATE, self.key(sid), ttl, sets))
            elif moving:
                applied = self.boundary.call("save_session", None, self.store.move, self.key(old),
                                             SavePlan(CREATE, self.key(sid), ttl, sets))
            else:
                plan = SavePlan(REPLACE if whole else UPDATE, self.key(old), ttl, sets,
                                [encode_name(n) for n in removed])
                applied = self.boundary.call("save_session", None, self.store.save, plan)
                if applied is False and session.cleared:
                    # The old session is gone (expired, or ended by another
                    # request) and this one holds only what this request set:
                    # store that as a new session, under a new id.
                    sid = self.generate_sid()
                    applied = self.boundary.call("save_session", None, self.store.save,
                                                 SavePlan(CREATE, self.key(sid), ttl, sets))
            if applied is None:
                # Nothing new is known to be stored: keep the client's cookie as it is.
                self._failed(app, "save")
                return
            if not applied:
                # Logged out or regenerated by another request since this one
                # loaded it: never re-create it, and leave the client's cookie
                # alone (that other response already replaced or deleted it).
                logger.info("flask-rediscache: the session was ended by another request before "
                            "this one saved; its changes are dropped")
                return
        refreshed = session.refreshed or (written and self.refresh_due(app, session))
        permanence_changed = PERMANENT_FIELD in changed or PERMANENT_FIELD in removed
        if sid != old or refreshed or permanence_changed:
            self._set_cookie(app, response, sid, permanent)

    # -- API ---------------------------------------------------------------
    def regenerate(self, session: SessionMixin) -> None:
        """Move ``session`` to a new id at the end of this request (against
        session fixation: call it on log-in and other privilege changes).

        The save writes the data under the new id, then deletes the old one,
        then sends the new cookie. If Redis is unavailable nothing changes: the
        old session and the client's cookie stay valid. If another request
        ended the session meanwhile (log-out), nothing is stored and no cookie
        is sent.
        """
        target = getattr(session, "_get_current_object", None)
        obj = target() if callable(target) else session
        if not isinstance(obj, RedisSession):
            raise TypeError(f"regenerate() needs a RedisSession, not {type(obj).__name__}")
        obj._touch()  # a move writes the whole content
        obj.new_sid = self.generate_sid()
        obj.modified = True


__all__ = ["RedisSessionInterface"]
