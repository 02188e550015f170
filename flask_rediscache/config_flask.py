"""Reading the keys the app shares with Flask and Flask-Session: ``SECRET_KEY``,
``SECRET_KEY_FALLBACKS``, ``SESSION_REDIS``, ``SESSION_ID_LENGTH`` and the
peers' flags (:func:`~flask_rediscache.config_peers.peer_keys`).

:class:`FlaskKeys` is the part of :class:`~flask_rediscache.config_loader.Loader`
that reads them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .config_peers import SESSION_ID_BYTES
from .config_values import Reader

logger = logging.getLogger("flask_rediscache")

#: The per-process signing key used in debug/testing when SECRET_KEY is unset.
_random_secret: bytes | None = None


class FlaskKeys(Reader):
    """Reads the keys owned by Flask and its peers (a base of
    :class:`~flask_rediscache.config_loader.Loader`)."""

    # -- SECRET_KEY ---------------------------------------------------------
    def secret_key(self) -> bytes:
        """Flask's ``SECRET_KEY`` as bytes; a random per-process key in debug/testing.

        The random key is never written into ``app.config``: Flask's own
        cookie sessions must not silently start signing with it.
        """
        global _random_secret
        secret = self.config.get("SECRET_KEY")
        if secret is None or secret == "" or secret == b"":
            if not self.debug:
                raise self.error("SECRET_KEY is not set: expected a secret string; flask-rediscache signs "
                                 "cache entries and session ids with it")
            if _random_secret is None:
                _random_secret = os.urandom(32)
            logger.warning("flask-rediscache: SECRET_KEY is not set; signing with a random per-process "
                           "key (cache entries and sessions won't survive a restart)")
            return _random_secret
        if isinstance(secret, str):
            return secret.encode()
        if isinstance(secret, bytes):
            return secret
        raise self.error(f"SECRET_KEY is a {type(secret).__name__}: expected a string or bytes "
                         "(quote it in the environment)")

    def secret_key_fallbacks(self) -> tuple[bytes, ...]:
        value = self.config.get("SECRET_KEY_FALLBACKS")
        if value is None:
            return ()
        if isinstance(value, (str, bytes)):
            # Iterating a string would make every character a signing key.
            raise self.error("SECRET_KEY_FALLBACKS is a single string: expected a list of old keys, "
                             'e.g. ["old-key"]')
        if not isinstance(value, (list, tuple)):
            raise self.error(f"SECRET_KEY_FALLBACKS is a {type(value).__name__}: expected a list of "
                             "old keys (strings or bytes)")
        out = []
        for item in value:
            if isinstance(item, str) and item:
                out.append(item.encode())
            elif isinstance(item, bytes) and item:
                out.append(item)
            else:
                raise self.error(f"SECRET_KEY_FALLBACKS contains a {type(item).__name__}: expected a list "
                                 "of non-empty strings or bytes")
        return tuple(out)

    # -- Flask-Caching's and Flask-Session's own keys (see peer_keys) -----------
    def peer_flag(self, key: str, default: bool | None) -> bool | None:
        value = self.config.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, value, "True or False")
        return value

    def session_client(self) -> Any:
        """``SESSION_REDIS``: a ``redis.Redis`` client returning bytes, or None."""
        import redis

        value = self.config.get("SESSION_REDIS")
        if value is None:
            return None
        if not isinstance(value, redis.Redis):
            raise self.fail("SESSION_REDIS", value, "a redis.Redis client such as redis.from_url(...) "
                                                    "(or set REDIS_SESSION_URL instead)")
        options = getattr(value.connection_pool, "connection_kwargs", {})
        if options.get("decode_responses"):
            raise self.error("SESSION_REDIS is a client with decode_responses=True: expected one returning "
                             "bytes (the default), or set REDIS_SESSION_URL instead")
        return value

    def session_id_bytes(self) -> int:
        key = "SESSION_ID_LENGTH"
        value = self.config.get(key)
        if value is None:
            return 32
        low, high = SESSION_ID_BYTES
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, value, f"an integer from {low} to {high} (random bytes of a session id; "
                                        f"fewer than {low} are guessable)")
        return value
