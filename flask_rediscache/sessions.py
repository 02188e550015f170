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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from flask import Flask, g, has_app_context
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, TimestampSigner
from markupsafe import Markup

from . import signals
from .instrument import observe_session
from .session_store import CREATE, PERMANENT_FIELD, REPLACE, UPDATE, SavePlan, SessionStore
from .state import SESSION_G_ATTR

if TYPE_CHECKING:  # pragma: no cover
    from flask.wrappers import Request, Response

    from .failopen import Boundary
    from .state import AppState

logger = logging.getLogger("flask_rediscache")

#: Bytes of entropy in a session id (``secrets.token_urlsafe``: 43 characters).
SID_BYTES = 32
#: Cookies longer than this are rejected before any signature check.
MAX_COOKIE_LENGTH = 256
#: A session id: ``token_urlsafe`` of 16 to 128 bytes (``SESSION_ID_LENGTH``), checked after the signature.
_SID_RE = re.compile(rb"[A-Za-z0-9_-]{22,171}")
#: Types whose loaded values cannot be changed in place; any other loaded value
#: (dict, list, tuple, custom tags) is re-serialised at save to catch mutation.
_IMMUTABLE = frozenset({str, bytes, int, float, bool, type(None), datetime, UUID, Markup})
#: Field names are stored as UTF-8, lone surrogates included (a JSON request
#: body can carry ``"\\ud800"``), so every ``str`` key round-trips.
_NAMES = "surrogatepass"


def new_sid() -> str:
    """A fresh random session id (256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(SID_BYTES)


def encode_name(name: str) -> bytes:
    """A session key as a hash field name (lossless for any ``str``)."""
    return name.encode("utf-8", _NAMES)


def decode_name(raw: bytes) -> str:
    """The inverse of :func:`encode_name` (raises ``UnicodeDecodeError`` for other bytes)."""
    return raw.decode("utf-8", _NAMES)


class SessionSerializer(TaggedJSONSerializer):
    """Flask's tagged JSON through a pre-built stdlib encoder.

    The tags, and so the stored format, are exactly Flask's; only the JSON step
    skips ``current_app.json`` (a provider lookup and a new encoder per call),
    so each field costs one C-level encode or decode. Keys are sorted, so a
    value always serialises to the same bytes (change detection compares
    them); types without a tag (``date``, ``Decimal``, dataclasses) go through
    Flask's default conversion, as in cookie sessions. Output is ASCII (lone
    surrogates become ``\\ud800`` escapes), so every ``str`` value round-trips.
    """

    def __init__(self) -> None:
        super().__init__()
        self._encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True,
                                         default=DefaultJSONProvider.default)
        self._decoder = json.JSONDecoder(object_hook=self.untag)

    def dumps(self, value: Any) -> str:
        # tag() walks every element through every tag; plain JSON needs none.
        return self._encoder.encode(value if self._plain(value) else self.tag(value))

    def _plain(self, value: Any) -> bool:
        """Is ``value`` made only of JSON types that ``tag()`` would leave as they are?"""
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return True
        if kind is list:
            return all(self._plain(item) for item in value)
        if kind is dict:
            if len(value) == 1 and next(iter(value)) in self.tags:
                return False  # looks like a tag: TagDict escapes it
            return all(type(k) is str and self._plain(v) for k, v in value.items())
        return False

    def loads(self, value: str | bytes) -> Any:
        return self._decoder.decode(value.decode() if isinstance(value, bytes) else value)


class RedisSession(SessionMixin):
    """The session of one request; its data is loaded on first use.

    A mutable mapping (Flask's :class:`~flask.sessions.SessionMixin`) over a
    plain dict, :attr:`data`. Every method loads the stored data first and
    sets :attr:`touched`; :meth:`clear` needs no load, since the result is
    empty whatever was stored. Not a ``dict`` subclass on purpose: C code that
    reads a dict directly (``json.dumps``) would see an empty one before the
    first load; ``dict(session)`` gives a plain copy.
    """

    #: Set by any change through the mapping interface (Flask's meaning).
    modified = False
    #: Flask's meaning (Vary: Cookie); Flask 3.0's SessionMixin defaults it to True.
    accessed = False
    #: True once the data was read or changed through any mapping method (or
    #: ``permanent``). ``@cached`` stores a view's response only if its
    #: session stayed untouched.
    touched = False

    def __init__(self, sid: str | None = None,
                 loader: Callable[[RedisSession], None] | None = None) -> None:
        #: The session's data (once loaded); use the mapping methods instead.
        self.data: dict[str, Any] = {}
        #: The id from the cookie; None for a new session, or once loading
        #: found nothing stored under it. (:attr:`sid` is the id to show.)
        self.stored_sid = sid
        self.new = sid is None
        #: The id a new session will be stored under, made when first asked for.
        self.fresh_sid: str | None = None
        #: Makes a session id (the interface's, which honours ``SESSION_ID_LENGTH``).
        self.make_sid: Callable[[], str] = new_sid
        #: ``SESSION_PERMANENT``: whether a new session is permanent unless told otherwise.
        self.default_permanent = False
        self._loader = loader
        #: The serialised value of every field as loaded, to diff against at save.
        self.loaded: dict[str, bytes] = {}
        #: Loaded fields whose values may be mutated in place.
        self.volatile: tuple[str, ...] = ()
        #: Redis could not be read: this request must not write the session back.
        self.unavailable = False
        #: ``clear()`` was called: the save replaces the whole hash.
        self.cleared = False
        #: Set by :meth:`RedisSessionInterface.regenerate`: the id to move to.
        self.new_sid: str | None = None
        #: The load also slid the key's TTL (the cookie is re-signed at save).
        self.refreshed = False
        #: Seconds since the cookie was signed (0 for a new session).
        self.cookie_age = 0.0
        #: The cookie was signed with a ``SECRET_KEY_FALLBACKS`` key.
        self.resign = False

    @property
    def sid(self) -> str:
        """The session's id, a string as in Flask-Session: the id it is stored
        under, the one :meth:`RedisSessionInterface.regenerate` moves it to,
        or, for a new session, the one it will be stored under."""
        if self.new_sid is not None:
            return self.new_sid
        if self.stored_sid is not None:
            return self.stored_sid
        if self.fresh_sid is None:
            self.fresh_sid = self.make_sid()
        return self.fresh_sid

    @property
    def permanent(self) -> bool:
        """Flask's ``session.permanent``; a new session starts as ``SESSION_PERMANENT``."""
        default = self.default_permanent and self.stored_sid is None
        return bool(self._touch().get(PERMANENT_FIELD, default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self[PERMANENT_FIELD] = bool(value)

    # -- loading -------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """The stored data was not loaded (and need not be: nobody used it)."""
        return self._loader is not None

    def _touch(self) -> dict[str, Any]:
        self.touched = True
        self.accessed = True
        loader = self._loader
        if loader is not None:
            self._loader = None
            loader(self)
        return self.data

    def _changed(self) -> None:
        self.modified = True

    # -- reads -----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._touch()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._touch().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._touch()

    def __iter__(self) -> Iterator[str]:
        return iter(self._touch())

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._touch())

    def __len__(self) -> int:
        return len(self._touch())

    def keys(self) -> Any:
        return self._touch().keys()

    def values(self) -> Any:
        return self._touch().values()

    def items(self) -> Any:
        return self._touch().items()

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the data."""
        return dict(self._touch())

    def __eq__(self, other: object) -> bool:
        data = self._touch()
        if isinstance(other, RedisSession):
            return data == other._touch()
        return data == other

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Any) -> Any:
        return self._touch() | other

    def __ror__(self, other: Any) -> Any:
        return other | self._touch()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._touch()!r}>"

    # -- changes -------------------------------------------------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        self._touch()[key] = value
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self._touch()[key]
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        data = self._touch()
        if key in data:
            return data[key]
        data[key] = default
        self._changed()
        return default

    def pop(self, key: str, *default: Any) -> Any:
        data = self._touch()
        present = key in data
        value = data.pop(key, *default)
        if present:
            self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = self._touch().popitem()
        self._changed()
        return item

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._touch().update(*args, **kwargs)
        self._changed()

    def __ior__(self, other: Any) -> RedisSession:
        self.update(other)
        return self

    def clear(self) -> None:
        """Empty the session; at save its Redis data and its cookie are deleted.

        No load: whatever was stored, the session is now empty.
        """
        self._loader = None
        self.touched = True
        self.accessed = True
        self.cleared = True
        self.data.clear()
        self._changed()


class RedisSessionInterface(SessionInterface):
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
    #: Tagged JSON, as Flask's cookie sessions: never pickle.
    serializer: SessionSerializer = SessionSerializer()
    #: Salt of the id signature, so no other value signed with SECRET_KEY is a valid cookie.
    salt = "flask-rediscache.session-id"
    digest_method = staticmethod(hashlib.sha256)
    #: The cookie and the key's TTL slide (with ``SESSION_REFRESH_EACH_REQUEST``)
    #: once the cookie is older than this fraction of ``PERMANENT_SESSION_LIFETIME``.
    refresh_fraction = 0.5

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

    def _signer(self, keys: Iterable[str | bytes]) -> TimestampSigner:
        """A signer for ``keys``, each derived once here rather than per cookie.

        The keys are exactly itsdangerous' ``key_derivation="hmac"`` ones
        (``HMAC(secret, salt)`` with :attr:`digest_method`), handed over with
        ``key_derivation="none"``: the same signatures, so every cookie signed
        before stays valid, without an HMAC of the key on every sign and unsign.
        """
        salt = self.salt.encode("utf-8")
        derived: list[Any] = [
            hmac.new(key.encode("utf-8") if isinstance(key, str) else key, salt, self.digest_method).digest()
            for key in keys]
        return TimestampSigner(derived, salt=self.salt, key_derivation="none",
                               digest_method=self.digest_method)

    # -- ids, keys, cookies ------------------------------------------------
    def generate_sid(self) -> str:
        """A fresh random session id of ``SESSION_ID_LENGTH`` bytes (default 32)."""
        return secrets.token_urlsafe(self.sid_bytes)

    def key(self, sid: str) -> str:
        """The Redis key of session id ``sid``: a digest, so keys don't reveal ids."""
        return self._key_head + hashlib.sha256(sid.encode()).hexdigest()

    def sign(self, sid: str) -> str:
        """The cookie value for ``sid``: signed now, with the current SECRET_KEY."""
        return self.signer.sign(sid).decode("ascii")

    def unsign(self, cookie: str) -> tuple[str, float, bool] | None:
        """``(sid, signed_at, signed_with_current_key)``, or None for a bad cookie.

        Pure CPU: nothing here touches Redis.
        """
        if len(cookie) > MAX_COOKIE_LENGTH:
            return None
        current = True
        try:
            raw, when = self.signer.unsign(cookie, return_timestamp=True)
        except BadSignature:
            if self.fallback_signer is None:
                return None
            try:
                raw, when = self.fallback_signer.unsign(cookie, return_timestamp=True)
            except BadSignature:
                return None
            current = False
        if _SID_RE.fullmatch(raw) is None:
            return None
        return raw.decode("ascii"), when.timestamp(), current

    @staticmethod
    def ttl(app: Flask) -> int:
        """Seconds a session lives in Redis: ``PERMANENT_SESSION_LIFETIME``
        (for non-permanent sessions too, so nothing leaks)."""
        return max(1, int(app.permanent_session_lifetime.total_seconds()))

    def refresh_due(self, app: Flask, session: RedisSession) -> bool:
        """Slide this session's TTL and re-sign its cookie in this request?

        With ``SESSION_REFRESH_EACH_REQUEST``, once the cookie is older than
        :attr:`refresh_fraction` of the lifetime; and always for a cookie
        signed with a fallback key (re-signed with the current one).
        """
        if session.stored_sid is None:
            return False
        if session.resign:
            return True
        return bool(app.config["SESSION_REFRESH_EACH_REQUEST"]) and (
            session.cookie_age >= self.refresh_fraction * app.permanent_session_lifetime.total_seconds())

    def _cookie_flags(self, app: Flask) -> dict[str, Any]:
        flags = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
        }
        # Flask 3.1 added SESSION_COOKIE_PARTITIONED; 3.0 has no such helper.
        partitioned = getattr(self, "get_cookie_partitioned", None)
        if partitioned is not None:
            flags["partitioned"] = partitioned(app)
        return flags

    def _set_cookie(self, app: Flask, response: Response, sid: str, permanent: bool) -> None:
        # Not get_expiration_time(): it reads session.permanent, which would
        # load a session nobody used; the caller knows the flag.
        expires = datetime.now(timezone.utc) + app.permanent_session_lifetime if permanent else None
        response.set_cookie(self.get_cookie_name(app), self.sign(sid), expires=expires,
                            **self._cookie_flags(app))
        response.vary.add("Cookie")

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), **self._cookie_flags(app))
        response.vary.add("Cookie")

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

    def _decode(self, app: Flask, session: RedisSession, fields: Mapping[bytes, bytes]) -> None:
        data: dict[str, Any] = {}
        loaded: dict[str, bytes] = {}
        volatile: list[str] = []
        loads = self.serializer.loads
        for raw_name, raw in fields.items():
            try:
                name = decode_name(raw_name)
                value = loads(raw)
            except Exception as exc:  # anything stored may be garbage
                # Not in `loaded`, so the save leaves the stored field alone
                # (a newer deploy may be able to read it).
                logger.warning("flask-rediscache: dropped undecodable session field %r: %s: %s",
                               raw_name[:80], type(exc).__name__, str(exc)[:200])
                if signals.session_error.receivers:
                    signals.session_error.send(app, operation="decode", exception=exc)
                continue
            data[name] = value
            loaded[name] = raw
            if type(value) not in _IMMUTABLE:
                volatile.append(name)
        session.data.update(data)
        session.loaded = loaded
        session.volatile = tuple(volatile)

    # -- saving ----------------------------------------------------------------
    def _encode(self, value: Any) -> bytes:
        return self.serializer.dumps(value).encode()

    def _changes(self, session: RedisSession, whole: bool) -> tuple[dict[str, bytes], list[str]]:
        """``(fields to set, fields to delete)`` compared with what was loaded."""
        encode = self._encode
        items = session.data.items()
        if whole:
            return {str(k): encode(v) for k, v in items}, []
        loaded = session.loaded
        if session.modified:
            current = {str(k): encode(v) for k, v in items}
            changed = {f: b for f, b in current.items() if self._differs(loaded.get(f), b)}
            return changed, [f for f in loaded if f not in current]
        if session.volatile:
            # Values mutated in place don't set `modified`; their bytes tell.
            changed = {}
            for name in session.volatile:
                encoded = encode(session.data.get(name))
                if self._differs(loaded[name], encoded):
                    changed[name] = encoded
            return changed, []
        return {}, []

    def _differs(self, stored: bytes | None, encoded: bytes) -> bool:
        """Did the value change? Stored bytes we would not have written that way
        (other JSON spacing, a lossy tag) are compared by their value, so an
        untouched field is never rewritten with a stale copy."""
        if stored is None:
            return True
        if stored == encoded:
            return False
        return self._encode(self.serializer.loads(stored)) != encoded

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


__all__ = ["RedisSession", "RedisSessionInterface", "SessionSerializer", "new_sid"]
