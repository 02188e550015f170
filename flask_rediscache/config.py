"""The validated settings of one app, and the ``REDIS_*`` keys they come from.

Every key the extension understands is declared once, in :data:`DEFAULTS`,
with its default; nothing is ever written back into ``app.config`` (a missing
key is read as its default). :func:`flask_rediscache.config_loader.load_settings`
turns the config into an immutable :class:`Settings`; a bad value raises
:class:`~flask_rediscache.errors.ConfigError` naming the key, the (masked)
value and what is expected, at start-up rather than on the first request.

The reading is split by concern: :mod:`~flask_rediscache.config_values`
checks one value (a number in its bounds, a URL, a list of sentinels),
:mod:`~flask_rediscache.config_loader` assembles :class:`Settings` and the
rules across keys, :mod:`~flask_rediscache.config_peers` maps Flask-Caching's
and Flask-Session's keys, :mod:`~flask_rediscache.config_secrets` finds the
passwords every message is masked with. This module is what the rest of the
package reads: the settings and the helpers computed from them.

Aliases: ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB`` (the form some
platforms hand out, and redis-py's own argument names) build
``redis://host:port/db`` when ``REDIS_URL`` is unset (one log line says so);
when ``REDIS_URL`` is set they are ignored with a warning. Other libraries'
names that mean something else here (``REDIS_KEY_PREFIX``, ...) get a hint
naming the right key instead of a misleading "did you mean".
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .config_secrets import client_password, secrets_in
from .errors import ConfigError
from .masking import mask

__all__ = [
    "ALIAS_KEYS", "BUILTIN_PURPOSES", "DEFAULTS", "HINTS", "LOCAL_CACHE_MODES", "MAX_NUMBER", "ConfigError",
    "Settings",
    "channel_key_prefix", "location", "purpose_url_key", "timeout_seconds", "warn_unknown_keys",
    "worst_case_call_seconds",
]

logger = logging.getLogger("flask_rediscache")

#: Every ``REDIS_*`` key the extension reads, with its default (the single table of both).
DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "REDIS_CACHE_URL": None,
    "REDIS_SESSION_URL": None,
    "REDIS_USERNAME": None,
    "REDIS_PASSWORD": None,
    "REDIS_CONNECTION_OPTIONS": {},
    "REDIS_CONNECT_TIMEOUT": 2,
    "REDIS_READ_TIMEOUT": 1,
    "REDIS_WRITE_TIMEOUT": 1,
    "REDIS_RECONNECT_ATTEMPTS": 1,
    "REDIS_RECONNECT_DELAY": 0.05,
    "REDIS_RECONNECT_DELAY_MAX": 1,
    "REDIS_POOL_SIZE": 5,
    "REDIS_POOL_TIMEOUT": 5,
    "REDIS_NAMESPACE": "cache",
    "REDIS_DEFAULT_TIMEOUT": 300,
    "REDIS_RACE_CONDITION_TTL": None,
    "REDIS_COMPRESS_THRESHOLD": 1024,
    "REDIS_ERROR_HANDLER": None,
    "REDIS_FAIL_OPEN": True,
    "REDIS_CIRCUIT_BREAKER_THRESHOLD": 5,
    "REDIS_CIRCUIT_BREAKER_COOLDOWN": 5,
    "REDIS_SENTINELS": None,
    "REDIS_SENTINEL_MASTER": None,
    "REDIS_SENTINEL_PASSWORD": None,
    "REDIS_CLUSTER": None,
    "REDIS_READ_FROM_REPLICAS": False,
    "REDIS_SSL_CA_CERTS": None,
    "REDIS_SSL_CERTFILE": None,
    "REDIS_SSL_KEYFILE": None,
    "REDIS_SSL_CERT_REQS": "required",
    "REDIS_CACHE_ENABLED": True,
    "REDIS_ENABLE_SIGNALS": False,
    "REDIS_SESSION": True,
    "REDIS_SESSION_PREFIX": "session",
    "REDIS_HEALTH_ENDPOINT": None,
    "REDIS_CABLE_URL": None,
    "REDIS_CHANNEL_PREFIX": None,  # None: "<REDIS_NAMESPACE>-cable"
    "REDIS_CABLE_HISTORY": 1000,
    "REDIS_CABLE_MAX_STREAM_SECONDS": 120,
    "REDIS_PURPOSES": [],
    "REDIS_LOCAL_CACHE": False,  # False, "request" or "process" (docs/local-cache.rst)
    "REDIS_LOCAL_CACHE_SIZE": 10_000,
    "REDIS_LOCAL_CACHE_MAX_BYTES": 64 * 1024 * 1024,
    "REDIS_LOCAL_CACHE_TTL": 60,
}

#: The values of ``REDIS_LOCAL_CACHE``.
LOCAL_CACHE_MODES = (False, "request", "process")

#: Upper bound of the cache timeouts and the compression threshold (about 31
#: years): NaN, infinity and absurd values would otherwise pass validation
#: and break at run time (Redis refuses the expiry).
MAX_NUMBER = 10**9

DIGITS = re.compile(r"\d+", re.ASCII)

#: Keys of other libraries that build ``REDIS_URL`` when it is unset (see the module docstring).
ALIAS_KEYS = ("REDIS_HOST", "REDIS_PORT", "REDIS_DB")
#: Keys from other libraries or guesses, and what to use here instead.
HINTS: dict[str, str] = {
    "REDIS_KEY_PREFIX": "use REDIS_NAMESPACE (the cache's key prefix; sessions use REDIS_SESSION_PREFIX)",
    "REDIS_PREFIX": "use REDIS_NAMESPACE (the cache's key prefix; sessions use REDIS_SESSION_PREFIX)",
    "REDIS_CACHE_PREFIX": "use REDIS_NAMESPACE",
    "REDIS_USER": "use REDIS_USERNAME",
    "REDIS_PASS": "use REDIS_PASSWORD",
    "REDIS_AUTH": "use REDIS_PASSWORD",
    "REDIS_TIMEOUT": "use REDIS_READ_TIMEOUT and REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT": "use REDIS_READ_TIMEOUT",
    "REDIS_SOCKET_CONNECT_TIMEOUT": "use REDIS_CONNECT_TIMEOUT",
    "REDIS_MAX_CONNECTIONS": "use REDIS_POOL_SIZE",
    "REDIS_SSL": "use a rediss:// URL in REDIS_URL",
    "REDIS_TLS": "use a rediss:// URL in REDIS_URL",
    "REDIS_DEFAULT_TTL": "use REDIS_DEFAULT_TIMEOUT",
}

#: The purposes built in; ``REDIS_PURPOSES`` adds named ones (``REDIS_<NAME>_URL``).
BUILTIN_PURPOSES = ("cache", "session", "cable")


@dataclass(frozen=True, repr=False)
class Settings:
    """The validated configuration of one app.

    URLs already carry ``REDIS_USERNAME``/``REDIS_PASSWORD`` when they had no
    credentials of their own, so every consumer sees one URL per purpose.
    The ``repr`` masks every password and omits the signing keys.
    """

    cache_url: str
    session_url: str
    fail_open: bool
    username: str | None
    password: str | None
    connection_options: Mapping[str, Any]
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    reconnect_attempts: int
    reconnect_delay: float
    reconnect_delay_max: float
    pool_size: int
    pool_timeout: float
    namespace: str
    default_timeout: int
    race_condition_ttl: float | None
    compress_threshold: int
    error_handler: Callable[..., Any] | None
    breaker_threshold: int
    breaker_cooldown: float
    sentinels: tuple[tuple[str, int], ...]
    sentinel_master: str | None
    sentinel_password: str | None
    cluster: tuple[str, ...]
    ssl_ca_certs: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_cert_reqs: str
    session: bool
    session_prefix: str
    health_endpoint: str | None
    secret_key: bytes
    secret_key_fallbacks: tuple[bytes, ...]
    #: The broadcast purpose (flask_rediscache.cable): its URL, stream key prefix
    #: (see :func:`channel_key_prefix`), messages kept per channel, longest stream.
    cable_url: str
    channel_prefix: str
    cable_history: int
    cable_max_stream_seconds: float
    #: ``REDIS_PURPOSES``: name -> URL (``REDIS_<NAME>_URL``, default ``REDIS_URL``).
    purposes: Mapping[str, str]
    #: ``REDIS_CABLE_URL`` or ``REDIS_CHANNEL_PREFIX`` was set: health and
    #: doctor check the broadcast purpose (an app that never broadcasts should
    #: not fail them for lacking an ACL on ``{<namespace>-cable}:*``).
    cable_configured: bool = False
    # -- with defaults: Flask-Caching's and Flask-Session's keys (see peer_keys) --
    #: ``REDIS_CACHE_ENABLED`` (or ``CACHE_TYPE="NullCache"``): False = a disabled cache.
    cache_enabled: bool = True
    #: ``REDIS_READ_FROM_REPLICAS``: cache reads may go to replicas (Cluster, Sentinel).
    read_from_replicas: bool = False
    #: ``REDIS_ENABLE_SIGNALS`` (or ``CACHE_ENABLE_SIGNALS``): Flask-Caching's signals.
    enable_signals: bool = False
    #: ``CACHE_SOURCE_CHECK``: the decorators' default ``source_check``.
    source_check: bool = False
    #: ``SESSION_REDIS``: a redis-py client the session purpose uses as it is.
    session_client: Any = None
    #: ``SESSION_PERMANENT``: new sessions are permanent (None: Flask's default, not).
    session_permanent: bool | None = None
    #: ``SESSION_ID_LENGTH``: random bytes in a session id.
    session_id_bytes: int = 32
    #: ``REDIS_LOCAL_CACHE``: "" (off), "request" or "process"; its bounds
    #: (entries and bytes per map) and the longest a copy is kept (seconds).
    local_cache: str = ""
    local_cache_size: int = 10_000
    local_cache_max_bytes: int = 64 * 1024 * 1024
    local_cache_ttl: float = 60.0

    def secrets(self) -> tuple[str, ...]:
        """Every password these settings carry, for :func:`~flask_rediscache.masking.mask`."""
        return secrets_in([self.cache_url, self.session_url, self.cable_url, *self.purposes.values(),
                            *self.cluster, self.password, self.sentinel_password]) + secrets_in(
            client_password(self.session_client), literal=True)

    def __repr__(self) -> str:
        hidden = {"password", "sentinel_password", "secret_key", "secret_key_fallbacks"}
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in hidden)
        return mask(f"Settings({shown})", self.secrets())


def worst_case_call_seconds(settings: Settings) -> float:
    """The longest one cache call can take when Redis hangs, in seconds.

    The pool wait, then the first attempt and every retry timing out on both
    connect and read, plus the backoff between attempts (retry ``n`` sleeps
    ``min(REDIS_RECONNECT_DELAY_MAX, REDIS_RECONNECT_DELAY * 2**n)``, as
    redis-py's ``ExponentialBackoff`` computes it). An upper bound: ``doctor``
    prints it so an operator sees what one request may cost.
    """
    attempts = settings.reconnect_attempts + 1
    backoff = sum(min(settings.reconnect_delay_max, settings.reconnect_delay * 2 ** n)
                  for n in range(1, attempts))
    return float(settings.pool_timeout + attempts * (settings.connect_timeout + settings.read_timeout)
                 + backoff)


def timeout_seconds(value: Any, key: str = "timeout") -> int:
    """Normalise a cache timeout (seconds, ``timedelta``) to whole seconds.

    ``0`` means "no expiry". Fractions round up so a 0.5 s timeout does not
    silently become "forever".
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_NUMBER:
        raise ConfigError(f"{key}={value!r} is invalid: expected seconds from 0 to {MAX_NUMBER:g} "
                          "or a timedelta (0 means no expiry)")
    whole = int(value)
    return whole + 1 if value > whole else whole


def channel_key_prefix(prefix: str) -> str:
    """The key prefix of the broadcast streams: ``REDIS_CHANNEL_PREFIX`` as a
    Redis Cluster hash tag (``cache-cable`` -> ``{cache-cable}``) unless it
    already holds one, so every stream of the purpose lives in one slot and
    one ``XREAD`` can read them all."""
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 1) > start + 1:  # Redis' rule: the first {...}, non-empty
        return prefix
    return "{" + prefix + "}"


def purpose_url_key(name: str) -> str:
    """``queue`` -> ``REDIS_QUEUE_URL``."""
    return f"REDIS_{name.upper()}_URL"


def location(url: str, settings: Settings) -> tuple[Any, ...]:
    """Which server and db ``url`` reaches under ``settings``' topology.

    Loopback names count as one host; memory:// URLs are one store each;
    every purpose of a Sentinel or Cluster setup shares that topology.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    path = unquote(parts.path)
    if "db" in query and DIGITS.fullmatch(query["db"][-1]):
        db = int(query["db"][-1])
    elif parts.scheme != "unix" and DIGITS.fullmatch(path[1:]):
        db = int(path[1:])
    else:
        db = 0
    if settings.cluster:
        return ("cluster",)
    if settings.sentinels:
        return ("sentinel", settings.sentinel_master, db)
    if parts.scheme == "memory":
        return ("memory", url.rstrip("/"))
    if parts.scheme == "unix":
        return ("unix", path, db)
    host = (parts.hostname or "localhost").lower()
    if host in ("localhost", "127.0.0.1", "::1"):
        host = "localhost"
    return ("tcp", host, parts.port or 6379, db)


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn about ``REDIS_*`` keys we don't know: a hint for other libraries'
    names (:data:`HINTS`), else the closest known key."""
    known = set(DEFAULTS) | set(ALIAS_KEYS)
    declared = config.get("REDIS_PURPOSES")
    if isinstance(declared, str):
        declared = declared.split(",")
    if isinstance(declared, (list, tuple)):
        known.update(purpose_url_key(name.strip()) for name in declared if isinstance(name, str))
    for key in config:
        if not (isinstance(key, str) and key.startswith("REDIS_")) or key in known:
            continue
        if key in HINTS:
            logger.warning("flask-rediscache: %s is not a flask-rediscache setting: %s", key, HINTS[key])
            continue
        close = difflib.get_close_matches(key, sorted(DEFAULTS), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        logger.warning("flask-rediscache: unknown config key %s%s", key, hint)
