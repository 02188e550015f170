"""The session cookie: a signed, timestamped random id, its key, its flags and its refresh.

:class:`SessionCookies` is the part of
:class:`~flask_rediscache.sessions.RedisSessionInterface` that never touches
Redis: signing and verifying ids (pure CPU, so a forged cookie never reaches
Redis), the key an id is stored under, and when the cookie is re-signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.sessions import SessionInterface
from itsdangerous import BadSignature, TimestampSigner

if TYPE_CHECKING:  # pragma: no cover
    from flask.wrappers import Response

    from .session_object import RedisSession

#: Cookies longer than this are rejected before any signature check.
MAX_COOKIE_LENGTH = 256
#: A session id: ``token_urlsafe`` of 16 to 128 bytes (``SESSION_ID_LENGTH``), checked after the signature.
_SID_RE = re.compile(rb"[A-Za-z0-9_-]{22,171}")


class SessionCookies(SessionInterface):
    """Session ids, keys and cookies (a base of
    :class:`~flask_rediscache.sessions.RedisSessionInterface`, which sets the
    signers, the key prefix and the id length)."""

    #: Salt of the id signature, so no other value signed with SECRET_KEY is a valid cookie.
    salt = "flask-rediscache.session-id"
    digest_method = staticmethod(hashlib.sha256)
    #: The cookie and the key's TTL slide (with ``SESSION_REFRESH_EACH_REQUEST``)
    #: once the cookie is older than this fraction of ``PERMANENT_SESSION_LIFETIME``.
    refresh_fraction = 0.5

    sid_bytes: int
    signer: TimestampSigner
    fallback_signer: TimestampSigner | None
    _key_head: str

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

