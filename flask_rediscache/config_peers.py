"""Flask-Caching's ``CACHE_*`` and Flask-Session's ``SESSION_*`` keys, read as ``REDIS_*`` ones.

An app moving from those libraries keeps working unchanged: a key is
honoured when the app sets no ``REDIS_*`` equivalent, one info line names
the ``REDIS_*`` keys to move to, one warning the keys that mean nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .config import ALIAS_KEYS
from .config_secrets import show
from .config_values import CONNECTION_OPTIONS

__all__ = ["KEPT_PEER_KEYS", "SESSION_ID_BYTES", "PeerKeys", "peer_keys", "session_client_url"]

logger = logging.getLogger("flask_rediscache")

#: The accepted range of ``SESSION_ID_LENGTH`` (random bytes; the cookie stays under 256 characters).
SESSION_ID_BYTES = (16, 128)
#: ``CACHE_TYPE`` (lower case, without a dotted path or a ``Cache`` suffix) -> its topology here.
_CACHE_TYPES = {"redis": "standalone", "redissentinel": "sentinel", "rediscluster": "cluster", "null": "null"}
#: ``CACHE_OPTIONS`` entries with a ``REDIS_*`` key of their own.
_OPTION_KEYS = {"socket_timeout": "REDIS_READ_TIMEOUT", "socket_connect_timeout": "REDIS_CONNECT_TIMEOUT",
                "max_connections": "REDIS_POOL_SIZE", "username": "REDIS_USERNAME",
                "password": "REDIS_PASSWORD"}
#: Keys of the other libraries honoured as they are: no ``REDIS_*`` key to move to.
KEPT_PEER_KEYS = ("CACHE_SOURCE_CHECK", "SESSION_PERMANENT", "SESSION_ID_LENGTH")
#: Why a Flask-Caching/Flask-Session key means nothing here (others: "not used here").
_MEANINGLESS = {
    "CACHE_IGNORE_ERRORS": "errors fail open here, see REDIS_FAIL_OPEN",
    "CACHE_THRESHOLD": "Redis' maxmemory policy bounds the cache",
    "CACHE_ARGS": "the client is built from REDIS_* keys",
    "CACHE_SERIALIZER": "entries are signed pickles",
    "CACHE_HASH_METHOD": "pass hash_method= to the decorators",
    "SESSION_CLEANUP_N_REQUESTS": "Redis expires sessions itself",
    "SESSION_SERIALIZATION_FORMAT": "sessions are Flask's tagged JSON here",
}
_URL_ALIASES = ("REDIS_URL", *ALIAS_KEYS)


@dataclass
class PeerKeys:
    """What :func:`peer_keys` read from Flask-Caching's and Flask-Session's keys."""

    #: ``REDIS_*`` key -> value, for keys the app did not set itself.
    overlay: dict[str, Any] = field(default_factory=dict)
    #: ``REDIS_*`` key -> the key (or keys) it was read from, for error messages.
    sources: dict[str, str] = field(default_factory=dict)
    #: ``"CACHE_X -> REDIS_Y"``: honoured; the key to move to.
    moves: list[str] = field(default_factory=list)
    #: Honoured, and nothing to move to: just remove them.
    drops: list[str] = field(default_factory=list)
    #: ``"KEY (why)"``: ignored.
    ignored: list[str] = field(default_factory=list)
    #: ``CACHE_TYPE="NullCache"`` without ``CACHE_NO_NULL_WARNING``: warn as Flask-Caching does.
    null_warning: bool = False

    def log(self) -> None:
        """At most one info line (keys to move) and one warning (keys ignored)."""
        if self.moves or self.drops:
            parts = []
            if self.moves:
                parts.append("move " + ", ".join(self.moves))
            if self.drops:
                parts.append("remove (no longer needed) " + ", ".join(self.drops))
            logger.info("flask-rediscache: honouring Flask-Caching/Flask-Session settings; %s",
                        "; ".join(parts))
        if self.ignored:
            logger.warning("flask-rediscache: ignored (no meaning here): %s", ", ".join(self.ignored))
        if self.null_warning:
            logger.warning("flask-rediscache: CACHE_TYPE is set to NullCache, caching is effectively "
                           "disabled (REDIS_CACHE_ENABLED=False says so without this warning)")
        differences = []
        if any(key.startswith("CACHE_") for key in self.sources.values()) or any(
                move.startswith("CACHE_") for move in (*self.moves, *self.drops)):
            differences.append("memoize and cached store None results (cache_none=False restores "
                               "Flask-Caching's behaviour) and never cache POST responses "
                               "(docs/migrating-flask-caching.rst)")
        if any(move.startswith("SESSION_") for move in (*self.moves, *self.drops)):
            differences.append("sessions stored by Flask-Session are not read, so every user logs in "
                               "once more (docs/migrating-flask-session.rst)")
        if differences:
            # The documented differences an app coming from the peers relies on without knowing.
            logger.warning("flask-rediscache: differs from what this app was configured for: %s",
                           "; ".join(differences))


def _cache_type(value: Any) -> str | None:
    """``"RedisCache"``, ``"flask_caching.backends.RedisCache"``, ``"redis"`` -> ``"standalone"``, ..."""
    if not isinstance(value, str):
        return None
    name = value.rsplit(".", 1)[-1].lower()
    if name.endswith("cache") and name != "cache":
        name = name[:-5]
    return _CACHE_TYPES.get(name)


def _strip_separator(prefix: str) -> str:
    """A key prefix as a namespace: one trailing ``:`` dropped, since ``:`` is added back."""
    return prefix[:-1] if prefix.endswith(":") else prefix


def session_client_url(client: Any) -> str | None:
    """The URL a ``redis.Redis`` client (``SESSION_REDIS``) connects to, or None if it is
    not a plain TCP, TLS or unix-socket client (a Sentinel, fakeredis or custom one)."""
    import redis

    pool = getattr(client, "connection_pool", None)
    options = getattr(pool, "connection_kwargs", None)
    kind = getattr(pool, "connection_class", None)
    if not isinstance(options, Mapping) or kind not in (
            redis.Connection, redis.SSLConnection, redis.UnixDomainSocketConnection):
        return None
    user, password = options.get("username"), options.get("password")
    userinfo = ""
    if user or password:
        userinfo = quote(user or "", safe="") + (":" + quote(password, safe="") if password else "") + "@"
    db = int(options.get("db") or 0)
    if kind is redis.UnixDomainSocketConnection:
        return f"unix://{userinfo}{options.get('path')}?db={db}"
    host = str(options.get("host") or "localhost")
    if ":" in host:
        host = f"[{host}]"
    scheme = "rediss" if kind is redis.SSLConnection else "redis"
    return f"{scheme}://{userinfo}{host}:{options.get('port') or 6379}/{db}"


def _with_db(url: str, db: Any) -> str:
    """``CACHE_REDIS_URL`` with ``CACHE_REDIS_DB`` when the URL names no db (Flask-Caching's rule)."""
    parts = urlsplit(url)
    if "db=" in parts.query or parts.path.strip("/") or parts.scheme not in ("redis", "rediss", "unix"):
        return url
    if parts.scheme == "unix":
        return parts._replace(query=(parts.query + "&" if parts.query else "") + f"db={db}").geturl()
    return parts._replace(path=f"/{db}").geturl()


def peer_keys(config: Mapping[str, Any]) -> PeerKeys:
    """Map Flask-Caching's ``CACHE_*`` and Flask-Session's ``SESSION_*`` keys.

    A key is honoured when the app sets no ``REDIS_*`` equivalent: its value
    goes into :attr:`PeerKeys.overlay` under the ``REDIS_*`` name, read
    before ``app.config`` (which is never changed). Keys that mean nothing
    here, or whose ``REDIS_*`` equivalent is set too, are listed in
    :attr:`PeerKeys.ignored`. ``None`` values count as unset. Flask's own
    ``SESSION_COOKIE_*`` and ``SESSION_REFRESH_EACH_REQUEST`` are Flask's.
    """
    out = PeerKeys()

    def given(key: str) -> Any:
        return config.get(key)

    def is_set(key: str) -> bool:
        return config.get(key) is not None or key in out.overlay

    def put(key: str, value: Any, source: str, move: str | None = None) -> None:
        if is_set(key):
            out.ignored.append(f"{source} ({key} is set)")
            return
        out.overlay[key] = value
        out.sources[key] = source
        out.moves.append(move or f"{source} -> {key}")

    done = {"CACHE_TYPE", "CACHE_NO_NULL_WARNING", "CACHE_SOURCE_CHECK", *KEPT_PEER_KEYS}
    # -- Flask-Caching -------------------------------------------------------
    raw_type = given("CACHE_TYPE")
    kind = _cache_type(raw_type)
    if raw_type is not None:
        if kind is None:
            out.ignored.append(f"CACHE_TYPE={show(raw_type)} (the cache is Redis here)")
        elif kind == "null":
            put("REDIS_CACHE_ENABLED", False, "CACHE_TYPE",
                "CACHE_TYPE='NullCache' -> REDIS_CACHE_ENABLED=False")
            out.null_warning = not given("CACHE_NO_NULL_WARNING")
        else:
            out.drops.append("CACHE_TYPE")
    if given("CACHE_NO_NULL_WARNING") is not None:
        out.drops.append("CACHE_NO_NULL_WARNING")
    url_keys = ("CACHE_REDIS_URL", "CACHE_REDIS_HOST", "CACHE_REDIS_PORT", "CACHE_REDIS_DB")
    done.update(url_keys, ("CACHE_REDIS_CLUSTER", "CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER"))
    if kind == "cluster" or (kind is None and given("CACHE_REDIS_CLUSTER") is not None):
        # RedisClusterCache: CACHE_REDIS_URL if given, else "host:port,host:port".
        source = "CACHE_REDIS_URL" if given("CACHE_REDIS_URL") else "CACHE_REDIS_CLUSTER"
        seeds = given(source)
        if isinstance(seeds, str):
            seeds = [s if "://" in s else "redis://" + s for s in (s.strip() for s in seeds.split(",")) if s]
        if seeds:
            put("REDIS_CLUSTER", seeds, source)
        out.ignored.extend(f"{k} (a cluster takes CACHE_REDIS_CLUSTER)" for k in url_keys[1:]
                           if given(k) is not None)
    elif kind == "sentinel" or (kind is None and given("CACHE_REDIS_SENTINELS") is not None):
        # RedisSentinelCache's defaults: 127.0.0.1:26379, "mymaster".
        sentinels = given("CACHE_REDIS_SENTINELS")
        put("REDIS_SENTINELS", sentinels or [("127.0.0.1", 26379)], "CACHE_REDIS_SENTINELS" if sentinels else
            "CACHE_TYPE", None if sentinels else "CACHE_TYPE (its default sentinel 127.0.0.1:26379) -> "
                                                 "REDIS_SENTINELS")
        master = given("CACHE_REDIS_SENTINEL_MASTER")
        put("REDIS_SENTINEL_MASTER", master or "mymaster", "CACHE_REDIS_SENTINEL_MASTER" if master else
            "CACHE_TYPE", None if master else "CACHE_TYPE (its default master 'mymaster') -> "
                                              "REDIS_SENTINEL_MASTER")
        if given("CACHE_REDIS_DB") and not any(is_set(k) for k in _URL_ALIASES):
            put("REDIS_URL", f"redis:///{given('CACHE_REDIS_DB')}", "CACHE_REDIS_DB")
        out.ignored.extend(f"{k} (Sentinel finds the master)" for k in url_keys[:3] if given(k) is not None)
    else:
        if kind is not None:  # standalone or null: the sentinel/cluster keys are RedisCache's to ignore
            out.ignored.extend(f"{k} (CACHE_TYPE is {raw_type!r})" for k in (
                "CACHE_REDIS_CLUSTER", "CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER")
                if given(k) is not None)
        url: str | None = None
        sources: list[str] = []
        if given("CACHE_REDIS_URL") is not None:
            url, sources = given("CACHE_REDIS_URL"), ["CACHE_REDIS_URL"]
            if isinstance(url, str) and given("CACHE_REDIS_DB") is not None:
                url, sources = _with_db(url, given("CACHE_REDIS_DB")), [*sources, "CACHE_REDIS_DB"]
            out.ignored.extend(f"{k} (CACHE_REDIS_URL is set)" for k in url_keys[1:3] if given(k) is not None)
        elif any(given(k) is not None for k in url_keys[1:]):
            sources = [k for k in url_keys[1:] if given(k) is not None]
            host = str(given("CACHE_REDIS_HOST") or "localhost")
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            url = f"redis://{host}:{given('CACHE_REDIS_PORT') or 6379}/{given('CACHE_REDIS_DB') or 0}"
        if url is not None:
            source = "/".join(sources)
            if not any(is_set(k) for k in _URL_ALIASES):
                put("REDIS_URL", url, source,
                    f"{source} -> REDIS_URL (or REDIS_CACHE_URL for the cache only)")
            else:
                put("REDIS_CACHE_URL", url, source)
    for key, target in (("CACHE_REDIS_PASSWORD", "REDIS_PASSWORD"),
                        ("CACHE_REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_PASSWORD"),
                        ("CACHE_ENABLE_SIGNALS", "REDIS_ENABLE_SIGNALS")):
        done.add(key)
        if given(key) is not None:
            put(target, given(key), key)
    options = given("CACHE_OPTIONS")
    done.update(("CACHE_OPTIONS", "CACHE_DEFAULT_TIMEOUT", "CACHE_KEY_PREFIX"))
    timeout, timeout_source = given("CACHE_DEFAULT_TIMEOUT"), "CACHE_DEFAULT_TIMEOUT"
    if isinstance(options, Mapping):
        connection: dict[str, Any] = {}
        for name, value in options.items():
            label = f"CACHE_OPTIONS[{name!r}]"
            if name in CONNECTION_OPTIONS:
                connection[name] = value
            elif name in _OPTION_KEYS:
                put(_OPTION_KEYS[name], value, label)
            elif name == "default_timeout":  # overrides CACHE_DEFAULT_TIMEOUT in Flask-Caching
                timeout, timeout_source = value, label
            else:
                out.ignored.append(label)
        if connection:
            put("REDIS_CONNECTION_OPTIONS", connection, "CACHE_OPTIONS",
                "CACHE_OPTIONS[" + ", ".join(map(repr, connection)) + "] -> REDIS_CONNECTION_OPTIONS")
    elif options is not None:
        out.ignored.append("CACHE_OPTIONS (not a dict)")
    if timeout is not None:
        put("REDIS_DEFAULT_TIMEOUT", timeout, timeout_source)
    prefix = given("CACHE_KEY_PREFIX")
    if isinstance(prefix, str) and _strip_separator(prefix):
        put("REDIS_NAMESPACE", _strip_separator(prefix), "CACHE_KEY_PREFIX")
    elif prefix is not None:
        out.ignored.append("CACHE_KEY_PREFIX (not a non-empty string: set REDIS_NAMESPACE)")
    # -- Flask-Session (unless sessions are left to someone else) ---------------
    sessions = config.get("REDIS_SESSION", True) is not False
    if sessions:
        done.update(("SESSION_TYPE", "SESSION_REDIS", "SESSION_KEY_PREFIX", "SESSION_USE_SIGNER"))
        session_type = given("SESSION_TYPE")
        if isinstance(session_type, str) and session_type.lower() == "redis":
            out.drops.append("SESSION_TYPE")
        elif session_type is not None:
            out.ignored.append(f"SESSION_TYPE={show(session_type)} (sessions live in Redis here)")
        client = given("SESSION_REDIS")
        if client is not None:
            if is_set("REDIS_SESSION_URL"):
                out.ignored.append("SESSION_REDIS (REDIS_SESSION_URL is set)")
            else:
                move = ("SESSION_REDIS -> REDIS_SESSION_URL (a URL: pool, timeouts and retries from "
                        "REDIS_*; the client is used as it is meanwhile)")
                derived = session_client_url(client)
                if derived is not None and not any(is_set(k) for k in (*_URL_ALIASES, "REDIS_CACHE_URL")):
                    # The cache goes where the sessions are, rather than nowhere.
                    out.overlay["REDIS_URL"] = derived
                    out.sources["REDIS_URL"] = "SESSION_REDIS"
                    move = move[:-1] + "; the cache uses its server until REDIS_URL is set)"
                out.moves.append(move)
        prefix = given("SESSION_KEY_PREFIX")
        if isinstance(prefix, str) and _strip_separator(prefix):
            put("REDIS_SESSION_PREFIX", _strip_separator(prefix), "SESSION_KEY_PREFIX")
        elif prefix is not None:
            out.ignored.append("SESSION_KEY_PREFIX (not a non-empty string: set REDIS_SESSION_PREFIX)")
        if given("SESSION_USE_SIGNER") is not None:
            out.drops.append("SESSION_USE_SIGNER (session ids are always signed)")
    for key in config:
        if not isinstance(key, str) or key in done or config.get(key) is None:
            continue
        if key.startswith("CACHE_") or (sessions and key.startswith("SESSION_") and not key.startswith(
                "SESSION_COOKIE_") and key != "SESSION_REFRESH_EACH_REQUEST"):
            out.ignored.append(f"{key} ({_MEANINGLESS.get(key, 'not used here')})")
    return out
