"""Server-side sessions in Redis: a sibling of Flask's ``SecureCookieSessionInterface``.

``init_app`` installs :class:`RedisSessionInterface` as ``app.session_interface``
unless ``REDIS_SESSION = False``. The session data lives in Redis; the browser
only holds a signed, random session id.

Security model
--------------

* **Signed random ids.** A session id is 32 random bytes from :mod:`secrets`
  (``token_urlsafe``), and the cookie carries it signed with :mod:`itsdangerous`
  (HMAC-SHA256, key derived from ``SECRET_KEY`` with a salt of its own, so a
  session cookie is useless as any other signed value). ``SECRET_KEY_FALLBACKS``
  are accepted for verification, as Flask 3.1 does for cookie sessions; a
  cookie signed with a fallback key is re-signed with the current key on that
  response, so a rotation completes as users come back. A cookie that is
  missing, forged, truncated, oversized or malformed yields a fresh empty
  session **without sending a single command to Redis**, so garbage cookies
  cannot be used to load the server.
* **Digested keys.** The Redis key is ``<REDIS_SESSION_PREFIX>:<sha256(id)>``.
  The cookie's id never appears in Redis, so a dump of the keys (a backup, a
  ``MONITOR`` session, a read-only replica) yields nothing that can be sent back
  as a cookie: one would need a SHA-256 preimage and ``SECRET_KEY``.
* **No pickle.** Values are stored in Flask's tagged JSON
  (:class:`flask.json.tag.TaggedJSONSerializer`: ``datetime``, ``bytes``,
  ``tuple``, ``UUID``, ``Markup`` and nested containers round-trip, exactly as
  with Flask's cookie sessions). Whatever someone plants in Redis is at worst
  an undecodable field, which is dropped from the session (and logged), never
  executed, never an exception.
* **Session fixation.** Call ``app.session_interface.regenerate(session)`` when
  the privilege level changes (log-in): at the end of the request the data is
  written under a new id, the new cookie is sent, and only then is the old id
  deleted. A stored id that no longer exists in Redis is never reused either:
  the next write creates a fresh id.
* **Expiry.** Every session key has a TTL of ``PERMANENT_SESSION_LIFETIME``,
  non-permanent sessions included (the cookie then dies with the browser, and
  the data a little later), so abandoned sessions never pile up. With
  ``SESSION_REFRESH_EACH_REQUEST`` (Flask's default) the TTL slides on every
  request that presents the session; permanent sessions also get their cookie's
  ``Expires`` renewed, as in Flask.

Storage and cost
----------------

Concurrent requests merge field by field: each one writes only the keys it
changed, so the last writer wins per key, not per session.

A session is a Redis hash with one field per top-level session key. A save
writes only the fields whose serialised value differs from what was loaded
(``HSET``) and removes the ones that are gone (``HDEL``), in one
non-transactional pipeline with the ``EXPIRE``. So two concurrent requests that
change *different* keys of one session both persist (a whole-value store such as
Flask-Session loses one of them), and mutating a nested value in place
(``session["cart"].append(x)``) is detected without ``session.modified = True``.

A read-only request costs one round trip: ``HGETALL``, pipelined with
``EXPIRE`` when the TTL slides, and never rewrites the data. An empty session
stores nothing and sets no cookie. ``session.clear()`` deletes the whole key and
the cookie (the deletion carries the same cookie flags). Only commands of the
``@read``/``@write`` ACL categories are used (no ``MULTI``, no scripts), so a
Redis user limited to ``~session:* +@read +@write`` is enough.

Outages
-------

Every command goes through the session purpose's
:class:`~flask_rediscache.guard.Guard` (log, :data:`~flask_rediscache.signals.cache_error`,
``REDIS_ERROR_HANDLER``, circuit breaker). When the session cannot be *loaded*,
the request proceeds with an empty session marked unavailable
(:attr:`RedisSession.unavailable`); its save writes nothing and sets no cookie,
so neither the stored session nor the client's cookie is lost or replaced, and
the user finds the session intact once Redis is back. When the *save* fails,
the response still succeeds, without a new cookie (a regenerated session keeps
its old id, which still holds the data); only the cookie of a session emptied
on purpose (``clear()``, log-out) is deleted anyway, since that is what the user
asked for and the stored data expires with its TTL. Both send
:data:`~flask_rediscache.signals.session_error` (``operation`` is ``"open"``,
``"save"`` or ``"decode"``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import want_bytes
from markupsafe import Markup
from redis.exceptions import ResponseError
from werkzeug.datastructures import CallbackDict

from . import signals

if TYPE_CHECKING:  # pragma: no cover
    from flask.wrappers import Request, Response

    from .extension import AppState

logger = logging.getLogger("flask_rediscache")

#: Bytes of entropy in a session id (``secrets.token_urlsafe``: 43 characters).
SID_BYTES = 32
#: Cookies longer than this are rejected before any signature check.
MAX_COOKIE_LENGTH = 256
_SID_RE = re.compile(rb"[A-Za-z0-9_-]{43}")
#: Types whose loaded values cannot be changed in place; any other loaded value
#: (dict, list, tuple, custom tags) is re-serialised at save to catch mutation.
_IMMUTABLE = frozenset({str, bytes, int, float, bool, type(None), datetime, UUID, Markup})


def new_sid() -> str:
    """A fresh random session id (256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(SID_BYTES)


def _pool_takes_no_args(client: Any) -> bool:
    """``ConnectionPool.get_connection()`` needs no command name (redis-py >= 5.3)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "get_connection"):
        return False
    try:
        params = inspect.signature(pool.get_connection).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C or exotic pool
        return False
    first = next(iter(params.values()), None)
    return first is None or first.default is not inspect.Parameter.empty or first.kind in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _send_all(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one write on ``conn`` and read every reply (so the
    connection stays in sync) before raising the first error reply."""
    conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except ResponseError as exc:
            replies.append(exc)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _as_dict(reply: Any) -> dict[bytes, bytes]:
    """An ``HGETALL`` reply as a dict: RESP2 sends a flat list of field, value, ..."""
    if isinstance(reply, list):
        return dict(zip(reply[::2], reply[1::2], strict=True))
    return reply  # type: ignore[no-any-return]


class SessionSerializer(TaggedJSONSerializer):
    """Flask's tagged JSON through a pre-built stdlib encoder.

    The tags, and so the stored format, are exactly Flask's; only the JSON step
    skips ``current_app.json`` (a provider lookup and a new encoder per call),
    so each field costs one C-level encode or decode. Keys are sorted, so a
    value always serialises to the same bytes (change detection compares
    them); types without a tag (``date``, ``Decimal``, dataclasses) go through
    Flask's default conversion, as in cookie sessions.
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


class _DerivedOnceSigner(Signer):
    """itsdangerous' :class:`~itsdangerous.Signer`, deriving each key once.

    ``Signer`` derives the HMAC key from the secret (one more HMAC) on every
    sign and unsign; the secrets never change for the life of the interface,
    so the derived keys are computed at construction, by itsdangerous' own
    :meth:`~itsdangerous.Signer.derive_key`. Signatures are unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived = {key: Signer.derive_key(self, key) for key in self.secret_keys}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        key = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived.get(key)
        return derived if derived is not None else super().derive_key(key)


class RedisSession(CallbackDict[str, Any], SessionMixin):
    """The session of one request, as loaded from Redis.

    Besides the dict and Flask's :class:`~flask.sessions.SessionMixin`, it
    remembers what was loaded (to write only what changed) and why it may not
    be saved.
    """

    #: Set by any change through the dict interface (Flask's meaning).
    modified = False

    def __init__(self, initial: Mapping[str, Any] | None = None, sid: str | None = None,
                 loaded: dict[str, bytes] | None = None, volatile: tuple[str, ...] = (),
                 *, unavailable: bool = False) -> None:
        def on_update(self: RedisSession) -> None:
            self.modified = True

        super().__init__(initial, on_update)
        #: The id whose Redis key holds this session's data; None for a new session.
        self.sid = sid
        #: The serialised value of every field as loaded, to diff against at save.
        self.loaded: dict[str, bytes] = loaded if loaded is not None else {}
        #: Loaded fields whose values may be mutated in place.
        self.volatile = volatile
        #: Redis could not be read: this request must not write the session back.
        self.unavailable = unavailable
        #: ``clear()`` was called: the save replaces the whole hash.
        self.cleared = False
        #: Set by :meth:`RedisSessionInterface.regenerate`: the id to move to.
        self.new_sid: str | None = None
        #: The request's cookie value, when it is signed with the current key
        #: (reused instead of re-signing; None means "sign again").
        self.cookie: str | None = None
        self.new = sid is None

    # Flask 3.1.3 marks ``accessed`` in the request context; earlier 3.x
    # versions relied on the session itself doing it, as here.
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().setdefault(key, default)

    def clear(self) -> None:
        """Empty the session; at save its Redis data and its cookie are deleted."""
        self.cleared = True
        super().clear()


class RedisSessionInterface(SessionInterface):
    """Stores sessions in Redis hashes, keyed by a digest of a signed random id.

    Installed by :meth:`RedisCache.init_app <flask_rediscache.RedisCache.init_app>`
    (unless ``REDIS_SESSION = False``); it uses the session purpose's client
    (``REDIS_SESSION_URL``, default ``REDIS_URL``) and guard, and Flask's cookie
    helpers (``SESSION_COOKIE_*``, ``PERMANENT_SESSION_LIFETIME``,
    ``SESSION_REFRESH_EACH_REQUEST``) keep their Flask meaning.
    """

    session_class = RedisSession
    pickle_based = False
    #: Tagged JSON, as Flask's cookie sessions: never pickle.
    serializer: SessionSerializer = SessionSerializer()
    #: Salt of the id signature, so no other value signed with SECRET_KEY is a valid cookie.
    salt = "flask-rediscache.session-id"
    digest_method = staticmethod(hashlib.sha256)

    def __init__(self, app: Flask, state: AppState) -> None:
        target = state.targets["session"]
        self.client = target.client
        # The read path talks to a pooled connection directly where it can
        # (see _round_trip); Cluster and memory:// use a pipeline.
        self._direct = target.kind in ("standalone", "sentinel") and _pool_takes_no_args(self.client)
        self.guard = state.guards["session"]
        self.prefix = state.settings.session_prefix
        self._key_head = self.prefix + ":"
        self.signer = self._signer([state.secret_key])
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or []
        self.fallback_signer = self._signer(list(fallbacks)) if fallbacks else None

    def _signer(self, keys: list[str | bytes]) -> Signer:
        return _DerivedOnceSigner(keys, salt=self.salt, key_derivation="hmac",
                                  digest_method=self.digest_method)

    # -- ids, keys, cookies ------------------------------------------------
    def key(self, sid: str) -> str:
        """The Redis key of session id ``sid``: a digest, so keys don't reveal ids."""
        return self._key_head + hashlib.sha256(sid.encode()).hexdigest()

    def sign(self, sid: str) -> str:
        """The cookie value for ``sid`` (signed with the current SECRET_KEY)."""
        return self.signer.sign(sid).decode("ascii")

    def unsign(self, cookie: str) -> tuple[str | None, bool]:
        """``(sid, signed_with_current_key)``, or ``(None, False)`` for a bad cookie.

        Pure CPU: nothing here touches Redis.
        """
        if len(cookie) > MAX_COOKIE_LENGTH:
            return None, False
        current = True
        try:
            raw = self.signer.unsign(cookie)
        except BadSignature:
            if self.fallback_signer is None:
                return None, False
            try:
                raw = self.fallback_signer.unsign(cookie)
            except BadSignature:
                return None, False
            current = False
        if _SID_RE.fullmatch(raw) is None:
            return None, False
        return raw.decode("ascii"), current

    @staticmethod
    def ttl(app: Flask) -> int:
        """Seconds a session lives in Redis: ``PERMANENT_SESSION_LIFETIME``
        (for non-permanent sessions too, so nothing leaks)."""
        return max(1, int(app.permanent_session_lifetime.total_seconds()))

    def _cookie_flags(self, app: Flask) -> dict[str, Any]:
        return {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "partitioned": self.get_cookie_partitioned(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
        }

    def _set_cookie(self, app: Flask, session: RedisSession, response: Response, sid: str) -> None:
        value = session.cookie if session.cookie is not None and sid == session.sid else self.sign(sid)
        response.set_cookie(self.get_cookie_name(app), value,
                            expires=self.get_expiration_time(app, session), **self._cookie_flags(app))
        response.vary.add("Cookie")

    def _failed(self, app: Flask, operation: str) -> None:
        # The guard has already logged the exception and sent cache_error.
        if signals.session_error.receivers:
            signals.session_error.send(app, operation=operation, exception=None)

    # -- loading -------------------------------------------------------------
    def open_session(self, app: Flask, request: Request) -> RedisSession:
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return RedisSession()
        sid, current = self.unsign(cookie)
        if sid is None:
            return RedisSession()
        key = self.key(sid)
        commands: list[tuple[Any, ...]] = [("HGETALL", key)]
        if app.config["SESSION_REFRESH_EACH_REQUEST"]:
            commands.append(("EXPIRE", key, self.ttl(app)))
        replies = self.guard.run("open_session", None, self._round_trip, commands)
        fields = None if replies is None else _as_dict(replies[0])
        if fields is None:
            self._failed(app, "open")
            return RedisSession(unavailable=True)
        if not fields:
            # Expired, revoked or never stored: don't reuse the id; the next
            # write gets a fresh one.
            return RedisSession()
        session = self._decode(app, sid, fields)
        if current:
            session.cookie = cookie
        return session

    def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one round trip; every reply, in order.

        Where the client allows it, on one pooled connection directly: what a
        non-transactional pipeline sends, without the Pipeline object's
        per-call cost (it about doubles the price of a session read, the
        hottest call of the package, on a fast network). The connection's own
        redis-py ``Retry`` handles a dropped connection (every session command
        is idempotent). Cluster and memory:// clients use a pipeline.
        """
        if not self._direct:
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()  # type: ignore[no-any-return]
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            return conn.retry.call_with_retry(  # type: ignore[no-any-return]
                lambda: _send_all(conn, commands), lambda _error: conn.disconnect())
        finally:
            pool.release(conn)

    def _decode(self, app: Flask, sid: str, fields: dict[bytes, bytes]) -> RedisSession:
        data: dict[str, Any] = {}
        loaded: dict[str, bytes] = {}
        volatile: list[str] = []
        loads = self.serializer.loads
        for raw_name, raw in fields.items():
            try:
                name = raw_name.decode()
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
        return RedisSession(data, sid, loaded, tuple(volatile))

    # -- saving ----------------------------------------------------------------
    def _encode(self, value: Any) -> bytes:
        return self.serializer.dumps(value).encode()

    def _changes(self, session: RedisSession, whole: bool) -> tuple[dict[str, bytes], list[str]]:
        """``(fields to HSET, fields to HDEL)`` compared with what was loaded."""
        encode = self._encode
        if whole:
            return {str(k): encode(v) for k, v in session.items()}, []
        loaded = session.loaded
        if session.modified:
            current = {str(k): encode(v) for k, v in session.items()}
            changed = {f: b for f, b in current.items() if self._differs(loaded.get(f), b)}
            return changed, [f for f in loaded if f not in current]
        if session.accessed and session.volatile:
            # Values mutated in place don't set `modified`; their bytes tell.
            changed = {}
            for name in session.volatile:
                encoded = encode(dict.get(session, name))
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
        if not isinstance(session, RedisSession) or session.unavailable:
            return
        old = session.sid
        moving = session.new_sid is not None and old is not None
        whole = session.cleared or moving
        changed, removed = self._changes(session, whole)
        if not session:
            if old is not None and (session.cleared or moving or removed):
                self._delete(app, session, response, old, removed)
            return
        sid = session.new_sid or old or new_sid()
        if changed or removed:
            key = self.key(sid)
            commands: list[tuple[Any, ...]] = []
            if session.cleared and not moving:
                commands.append(("DEL", key))
            if changed:
                commands.append(("HSET", key, *[part for item in changed.items() for part in item]))
            if removed:
                commands.append(("HDEL", key, *removed))
            commands.append(("EXPIRE", key, self.ttl(app)))
            if self.guard.run("save_session", None, self._round_trip, commands) is None:
                # Nothing new is stored: keep the client's cookie as it is.
                self._failed(app, "save")
                return
        if moving:
            # Only once the data is safe under the new id is the old one
            # deleted (a separate round trip: in one non-transactional pipeline
            # a refused HSET, e.g. OOM, would not stop the DEL).
            assert old is not None
            if not self.guard.run("save_session", 0, self.client.delete, self.key(old)):
                self._failed(app, "save")
        if sid != old or self.should_set_cookie(app, session) or session.cookie is None:
            self._set_cookie(app, session, response, sid)

    def _delete(self, app: Flask, session: RedisSession, response: Response, sid: str,
                removed: list[str]) -> None:
        """The session was emptied: delete its data and its cookie."""
        key = self.key(sid)
        if session.cleared or session.new_sid is not None:
            result = self.guard.run("save_session", None, self.client.delete, key)
        else:
            result = self.guard.run("save_session", None, self.client.hdel, key, *removed)
        if result is None:
            self._failed(app, "save")
        # The cookie goes even if Redis could not be told: the user asked to end
        # the session, and the stored data expires with its TTL.
        response.delete_cookie(self.get_cookie_name(app), **self._cookie_flags(app))
        response.vary.add("Cookie")

    # -- API ---------------------------------------------------------------
    def regenerate(self, session: SessionMixin) -> None:
        """Move ``session`` to a new id at the end of this request (against
        session fixation: call it on log-in and other privilege changes).

        The data is written under the new id first; the old id is deleted and
        the new cookie sent only once that succeeded. If Redis is unavailable
        nothing changes: the old session and the client's cookie stay valid.
        """
        target = getattr(session, "_get_current_object", None)
        obj = target() if callable(target) else session
        if not isinstance(obj, RedisSession):
            raise TypeError(f"regenerate() needs a RedisSession, not {type(obj).__name__}")
        obj.new_sid = new_sid()
        obj.modified = True
