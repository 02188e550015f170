"""Reading and validating the ``REDIS_*`` keys of ``app.config``.

Every key the extension understands is declared once, in :data:`DEFAULTS`,
with its default; nothing is ever written back into ``app.config`` (a missing
key is read as its default). :func:`load_settings` turns the config into an
immutable :class:`Settings`; a bad value raises
:class:`~flask_rediscache.errors.ConfigError` naming the key, the (masked)
value and what is expected, at start-up rather than on the first request.

Why so strict: a value that is merely odd here (a port of 71500, a pool of
10**9 connections, a string where a list of keys was meant) turns into a
hang, a silent fallback or a security hole at run time, far from its cause.

Every message goes through :func:`flask_rediscache.masking.mask` with every
password found anywhere in the config, so no error ever prints a secret.

Aliases: ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB`` (the form some
platforms hand out, and redis-py's own argument names) build
``redis://host:port/db`` when ``REDIS_URL`` is unset (one log line says so);
when ``REDIS_URL`` is set they are ignored with a warning. Other libraries'
names that mean something else here (``REDIS_KEY_PREFIX``, ...) get a hint
naming the right key instead of a misleading "did you mean".

Flask-Caching's ``CACHE_*`` and Flask-Session's ``SESSION_*`` keys are read
when the app sets no ``REDIS_*`` equivalent (:func:`peer_keys`): one info line
names the ``REDIS_*`` keys to move to, one warning the keys that mean nothing
here.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis.connection import parse_url

from .errors import ConfigError
from .masking import mask, mask_url

__all__ = [
    "ALIAS_KEYS", "BOUNDS", "CONNECTION_OPTIONS", "DEFAULTS", "HINTS", "KEPT_PEER_KEYS", "URL_SCHEMES",
    "Bound", "ConfigError", "PeerKeys", "Settings", "channel_key_prefix", "load_settings", "mask_url",
    "peer_keys",
    "purpose_url_key", "session_client_url",
    "timeout_seconds", "warn_unknown_keys",
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
}

#: Upper bound of the cache timeouts and the compression threshold (about 31
#: years): NaN, infinity and absurd values would otherwise pass validation
#: and break at run time (Redis refuses the expiry).
MAX_NUMBER = 10**9

URL_SCHEMES = ("redis", "rediss", "unix", "memory")
SCHEMES_TEXT = "redis://, rediss:// (TLS), unix:// or memory:// (in-process, needs fakeredis)"
CERT_REQS = ("required", "optional", "none")
_PREFIX_RE = re.compile(r"^[^\s*?\[\]]+$")
_DIGITS = re.compile(r"\d+", re.ASCII)


@dataclass(frozen=True)
class Bound:
    """The accepted range of a numeric setting.

    The ranges are wide enough for every sane deployment and narrow enough
    that a typo (``1e9`` connections, a million reconnect attempts) fails at
    start-up instead of hanging it or a request.
    """

    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # True: the low end itself is excluded (timeouts must be > 0)

    def describe(self) -> str:
        if self.integer:
            return f"an integer from {self.low:g} to {self.high:g}"
        if self.low_open:
            return f"a number of seconds > {self.low:g} and <= {self.high:g}"
        return f"a number of seconds from {self.low:g} to {self.high:g}"

    def contains(self, value: float) -> bool:
        # NaN compares false with everything, so test the valid range, not the invalid one.
        inside = self.low <= value <= self.high
        return inside and not (self.low_open and value == self.low)


#: The accepted range of every numeric setting (named in each error message).
BOUNDS: dict[str, Bound] = {
    "REDIS_CONNECT_TIMEOUT": Bound(0, 300, low_open=True),
    "REDIS_READ_TIMEOUT": Bound(0, 300, low_open=True),
    "REDIS_WRITE_TIMEOUT": Bound(0, 300, low_open=True),
    "REDIS_RECONNECT_ATTEMPTS": Bound(0, 10, integer=True),
    "REDIS_RECONNECT_DELAY": Bound(0, 60),
    "REDIS_RECONNECT_DELAY_MAX": Bound(0, 60),
    "REDIS_POOL_SIZE": Bound(1, 1000, integer=True),
    "REDIS_POOL_TIMEOUT": Bound(0, 300),
    "REDIS_DEFAULT_TIMEOUT": Bound(0, MAX_NUMBER),
    "REDIS_RACE_CONDITION_TTL": Bound(0, 86400, low_open=True),
    "REDIS_COMPRESS_THRESHOLD": Bound(0, MAX_NUMBER, integer=True),
    "REDIS_CIRCUIT_BREAKER_THRESHOLD": Bound(1, 1000, integer=True),
    "REDIS_CIRCUIT_BREAKER_COOLDOWN": Bound(0, 3600),
    "REDIS_PORT": Bound(1, 65535, integer=True),
    "REDIS_DB": Bound(0, 1_000_000, integer=True),
    "REDIS_CABLE_HISTORY": Bound(1, 10_000_000, integer=True),
    "REDIS_CABLE_MAX_STREAM_SECONDS": Bound(1, 86400),
}


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_port_options(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, int) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items())


#: The redis-py connection options ``REDIS_CONNECTION_OPTIONS`` (and a URL's
#: query string) may set, with a check of the value and what it expects.
#: Everything else is refused: timeouts, pool size, credentials and the db
#: have their own ``REDIS_*`` keys, and retries (``retry``,
#: ``retry_on_timeout``, ``retry_on_error``) are the extension's own (only
#: idempotent commands are retried, which redis-py cannot know).
CONNECTION_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "health_check_interval": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                              and 0 <= v <= 3600, "seconds from 0 to 3600"),
    "socket_keepalive": (_is_bool, "True or False"),
    "socket_keepalive_options": (_is_port_options, "a dict of TCP option -> int"),
    "client_name": (lambda v: isinstance(v, str) and bool(v) and not any(c.isspace() for c in v),
                    "a name without spaces"),
    "protocol": (lambda v: v in (2, 3) and not isinstance(v, bool), "2 or 3 (RESP version)"),
    "ssl_check_hostname": (_is_bool, "True or False"),
}
#: Connection options that exist but are set elsewhere: the key to use instead.
_OPTION_OWNERS = {
    "socket_timeout": "REDIS_READ_TIMEOUT", "socket_connect_timeout": "REDIS_CONNECT_TIMEOUT",
    "timeout": "REDIS_POOL_TIMEOUT", "max_connections": "REDIS_POOL_SIZE",
    "password": "REDIS_PASSWORD", "username": "REDIS_USERNAME", "db": "REDIS_URL's /db",
    "retry": "REDIS_RECONNECT_ATTEMPTS", "retry_on_timeout": "REDIS_RECONNECT_ATTEMPTS",
    "retry_on_error": "REDIS_RECONNECT_ATTEMPTS",
    "ssl_ca_certs": "REDIS_SSL_CA_CERTS", "ssl_certfile": "REDIS_SSL_CERTFILE",
    "ssl_keyfile": "REDIS_SSL_KEYFILE", "ssl_cert_reqs": "REDIS_SSL_CERT_REQS",
}
#: What a URL's query string may carry besides :data:`CONNECTION_OPTIONS`
#: (redis-py lets query values override every other pool argument).
_URL_QUERY_KEYS = ("db", "password", "username")

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

_URL_KEYS = ("REDIS_URL", "REDIS_CACHE_URL", "REDIS_SESSION_URL", "REDIS_CABLE_URL")
#: The purposes built in; ``REDIS_PURPOSES`` adds named ones (``REDIS_<NAME>_URL``).
BUILTIN_PURPOSES = ("cache", "session", "cable")
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SECRET_KEYS = ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD")

#: The per-process signing key used in debug/testing when SECRET_KEY is unset.
_random_secret: bytes | None = None


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

    def secrets(self) -> tuple[str, ...]:
        """Every password these settings carry, for :func:`~flask_rediscache.masking.mask`."""
        return _secrets_in([self.cache_url, self.session_url, self.cable_url, *self.purposes.values(),
                            *self.cluster, self.password, self.sentinel_password]) + _secrets_in(
            _client_password(self.session_client), literal=True)

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


# -- secrets ----------------------------------------------------------------
_QUERY_PASSWORD = re.compile(r"password=([^&;#\s]*)", re.IGNORECASE)
#: A URL's scheme however many slashes follow (``redis:/host`` is a typo to mask too).
_SCHEME = re.compile(r"[A-Za-z][\w+.-]*:/*")


def _url_passwords(text: str) -> list[str]:
    """Passwords in ``text`` read as a URL: userinfo and ``password=`` values, raw and decoded."""
    found: list[str] = []
    for token in text.split():
        match = _SCHEME.match(token)
        if not match:
            continue
        rest = token[match.end():]
        # As a URL parser reads it (userinfo ends at the first "/") and as the
        # user may have meant it (a password with a raw "/" or "@" in it).
        for userinfo in (re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[0], rest.rpartition("@")[0]):
            if ":" in userinfo:
                found.append(userinfo.partition(":")[2])
    found.extend(_QUERY_PASSWORD.findall(text))
    return [v for p in found for v in (p, unquote(p)) if v]


def _secrets_in(value: Any, *, literal: bool = False, depth: int = 0) -> tuple[str, ...]:
    """Every secret inside ``value``: URL passwords in strings (and in lists of
    them), and, with ``literal``, the value itself (a password setting)."""
    found: list[str] = []
    if depth > 3 or value is None or isinstance(value, bool):
        return ()
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        if literal:
            found.append(value)
        found.extend(_url_passwords(value))
    elif isinstance(value, (int, float)):
        if literal:
            found.append(str(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            secret = literal or "password" in str(key).lower()
            found.extend(_secrets_in(item, literal=secret, depth=depth + 1))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found.extend(_secrets_in(item, literal=literal, depth=depth + 1))
    return tuple(dict.fromkeys(found))


def config_secrets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Every password in ``config``'s ``REDIS_*`` values, even malformed ones,
    so an error about any value can mask all of them."""
    found: list[str] = []
    for key in _SECRET_KEYS:
        found.extend(_secrets_in(config.get(key), literal=True))
    for key in (*_URL_KEYS, "REDIS_CLUSTER", "REDIS_SENTINELS", "REDIS_CONNECTION_OPTIONS"):
        found.extend(_secrets_in(config.get(key)))
    for key in config:  # REDIS_<NAME>_URL of the REDIS_PURPOSES, even undeclared ones
        if isinstance(key, str) and key.startswith("REDIS_") and key.endswith("_URL"):
            found.extend(_secrets_in(config.get(key)))
    return tuple(dict.fromkeys(found))


# -- the loader ---------------------------------------------------------------
def _shown(value: Any) -> str:
    """How a bad value appears in a message: scalars as their repr, containers
    by type (their items may be secrets the regexes cannot recognise)."""
    if value is None or isinstance(value, (str, int, float, bool, timedelta)):
        return repr(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return repr(value)
    return f"<{type(value).__name__}>"


class _Loader:
    """Reads one config; every error it raises is masked with all the config's secrets."""

    def __init__(self, config: Mapping[str, Any], debug: bool,
                 sources: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.debug = debug
        self.secrets = config_secrets(config)
        #: ``REDIS_*`` key -> the Flask-Caching/Flask-Session key it was read from.
        self.sources = sources or {}

    def get(self, key: str) -> Any:
        return self.config.get(key, DEFAULTS.get(key))

    def error(self, message: str) -> ConfigError:
        return ConfigError(mask(message, self.secrets))

    def fail(self, key: str, value: Any, expected: str) -> ConfigError:
        shown = "'***'" if key in _SECRET_KEYS else _shown(value)
        if key in self.sources:  # mapped from a Flask-Caching/Flask-Session key: name that one
            return self.error(f"{self.sources[key]}={shown} (read as {key}) is invalid: expected {expected}")
        return self.error(f"{key}={shown} is invalid: expected {expected}")

    # -- scalars ----------------------------------------------------------
    def number(self, key: str, value: Any = None) -> float:
        """A number within :data:`BOUNDS` (strings from the environment are parsed)."""
        bound = BOUNDS[key]
        raw = self.get(key) if value is None else value
        number = raw
        if isinstance(number, timedelta) and not bound.integer:
            number = number.total_seconds()
        if isinstance(number, str):
            try:
                number = float(number.strip())
            except ValueError:
                raise self.fail(key, raw, bound.describe()) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise self.fail(key, raw, bound.describe())
        if not bound.contains(number) or (bound.integer and number != int(number)):
            raise self.fail(key, raw, bound.describe())
        return number

    def integer(self, key: str, value: Any = None) -> int:
        return int(self.number(key, value))

    def seconds(self, key: str) -> float:
        return float(self.number(key))

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, value, "True or False")
        return value

    def replica_reads(self, sentinels: Any, cluster: Any) -> bool:
        """``REDIS_READ_FROM_REPLICAS``: only meaningful with Sentinel or Cluster."""
        value = self.flag("REDIS_READ_FROM_REPLICAS")
        if value and not sentinels and not cluster:
            raise self.fail("REDIS_READ_FROM_REPLICAS", value,
                            "False without REDIS_SENTINELS or REDIS_CLUSTER (a single server has no replicas "
                            "to read from)")
        return value

    def text(self, key: str) -> str | None:
        """A text setting; numbers (``from_prefixed_env`` turns ``2024`` into an
        int) are taken as their string form, booleans are refused with a hint."""
        value = self.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            raise self.fail(key, value, f"a string, not a boolean: in the environment quote it, e.g. "
                                        f"FLASK_{key}='\"{str(value).lower()}\"' for from_prefixed_env()")
        if isinstance(value, (int, float)):
            return str(value)
        raise self.fail(key, value, "a string")

    def prefix(self, key: str) -> str:
        value = self.text(key)
        if value is None or not _PREFIX_RE.match(value):
            raise self.fail(key, value, "a non-empty string without spaces or glob characters (*?[])")
        return value

    # -- URLs ---------------------------------------------------------------
    def url(self, key: str, value: Any = None, schemes: tuple[str, ...] = URL_SCHEMES) -> str:
        """A URL redis-py (or fakeredis) will take exactly as written."""
        value = self.get(key) if value is None else value
        accepted = ("redis:// or rediss://" if schemes != URL_SCHEMES
                    else f"a URL such as redis://localhost:6379/0; accepted schemes: {SCHEMES_TEXT}")
        if not isinstance(value, str):
            raise self.fail(key, value, f"a URL string: {accepted}")
        if not value or any(c.isspace() for c in value):
            raise self.fail(key, value, f"a URL without spaces (check for a leading or trailing blank): "
                                        f"{accepted}")
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in schemes:
            raise self.fail(key, value, accepted)
        if scheme == "memory":
            return value
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise self.fail(key, value, "a port from 1 to 65535, e.g. redis://localhost:6379/0") from None
        if port == 0:
            raise self.fail(key, value, "a port from 1 to 65535, e.g. redis://localhost:6379/0")
        path = unquote(parts.path)
        if scheme == "unix":
            if path in ("", "/"):
                raise self.fail(key, value, "a socket path, e.g. unix:///run/redis/redis.sock?db=0")
        elif path not in ("", "/") and not _DIGITS.fullmatch(path[1:]):
            raise self.fail(key, value, "a db number after the host, e.g. redis://localhost:6379/0")
        self.url_query(key, value, parts.query)
        try:
            parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError:
            raise self.fail(key, value, accepted) from None
        return value

    def url_query(self, key: str, value: str, query: str) -> None:
        for name, items in parse_qs(query, keep_blank_values=True).items():
            item = items[-1]
            if name == "db":
                if not _DIGITS.fullmatch(item):
                    raise self.fail(key, value, "?db= a number from 0")
            elif name in _URL_QUERY_KEYS:
                continue
            elif name in CONNECTION_OPTIONS:
                continue  # redis-py parses these; parse_url() below rejects a malformed one
            else:
                owner = _OPTION_OWNERS.get(name)
                instead = f" (use {owner})" if owner else ""
                raise self.fail(key, value, f"no URL query parameter {name!r}{instead}; accepted: "
                                            + ", ".join((*_URL_QUERY_KEYS, *CONNECTION_OPTIONS)))

    def optional_url(self, key: str) -> str | None:
        return None if self.get(key) is None else self.url(key)

    def alias_url(self) -> str | None:
        """``redis://REDIS_HOST:REDIS_PORT/REDIS_DB`` when ``REDIS_URL`` is unset (see module docstring)."""
        given = [key for key in ALIAS_KEYS if self.config.get(key) is not None]
        if not given:
            return None
        if self.get("REDIS_URL") is not None:
            logger.warning("flask-rediscache: %s ignored because REDIS_URL is set", ", ".join(given))
            return None
        host = self.text("REDIS_HOST") or "localhost"
        if any(c.isspace() or c in "/@?#" for c in host):
            raise self.fail("REDIS_HOST", host, "a host name or address, e.g. localhost")
        port = self.integer("REDIS_PORT") if self.config.get("REDIS_PORT") is not None else 6379
        db = self.integer("REDIS_DB") if self.config.get("REDIS_DB") is not None else 0
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"redis://{host}:{port}/{db}"
        logger.info("flask-rediscache: REDIS_URL=%s built from %s; prefer setting REDIS_URL",
                    url, ", ".join(given))
        return url

    def credentials(self, url: str, username: str | None, password: str | None) -> str:
        """``url`` with ``REDIS_USERNAME``/``REDIS_PASSWORD`` when it carries no credentials."""
        if not (username or password) or url.startswith("memory://"):
            return url
        parts = urlsplit(url)
        if parts.username or parts.password or "password" in parse_qs(parts.query):
            return url
        userinfo = quote(username or "", safe="") + (":" + quote(password, safe="") if password else "")
        return parts._replace(netloc=f"{userinfo}@{parts.netloc}").geturl()

    # -- topologies -----------------------------------------------------------
    def sentinels(self) -> tuple[tuple[str, int], ...]:
        key = "REDIS_SENTINELS"
        value = self.get(key)
        if value is None:
            return ()
        expected = 'a list of "host:port" strings (ports from 1 to 65535)'
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise self.fail(key, value, expected)
        out = []
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                host, port = item
            elif isinstance(item, str) and ":" in item:
                host, _, port = item.strip().rpartition(":")
            else:
                raise self.fail(key, value, expected)
            host = str(host).strip("[]")
            try:
                number = int(port)
            except (TypeError, ValueError):
                raise self.fail(key, value, expected) from None
            if isinstance(port, bool) or not host or "/" in host or not 1 <= number <= 65535:
                raise self.fail(key, value, expected)
            out.append((host, number))
        return tuple(out)

    def cluster(self) -> tuple[str, ...]:
        key = "REDIS_CLUSTER"
        value = self.get(key)
        if value is None:
            return ()
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise self.fail(key, value, 'a list of seed URLs such as ["redis://node1:6379"]')
        return tuple(self.url(key, item, schemes=("redis", "rediss")) for item in items)

    def connection_options(self) -> Mapping[str, Any]:
        key = "REDIS_CONNECTION_OPTIONS"
        value = self.get(key)
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, Mapping):
            raise self.fail(key, value, "a dict of redis-py connection options, e.g. "
                                        '{"health_check_interval": 30}')
        accepted = ", ".join(CONNECTION_OPTIONS)
        for name, option in value.items():
            if name not in CONNECTION_OPTIONS:
                owner = _OPTION_OWNERS.get(name) if isinstance(name, str) else None
                instead = f"; set {owner} instead" if owner else ""
                raise self.error(f"{key}: option {_shown(name)} is not accepted{instead}: "
                                 f"expected only {accepted}")
            check, expected = CONNECTION_OPTIONS[name]
            if not check(option):
                raise self.error(f"{key}: option {name}={_shown(option)} is invalid: expected {expected}")
        return MappingProxyType(dict(value))

    # -- the broadcast purpose and named purposes ----------------------------
    def purposes(self, base: str, username: str | None, password: str | None) -> dict[str, str]:
        """``REDIS_PURPOSES`` -> ``{name: URL}``; each URL from ``REDIS_<NAME>_URL``, else ``base``."""
        key = "REDIS_PURPOSES"
        value = self.get(key)
        expected = ('a list of lower-case names such as ["queue"] (letters, digits, _), other than '
                    + ", ".join(BUILTIN_PURPOSES))
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise self.fail(key, value, expected)
        out: dict[str, str] = {}
        for name in value:
            if (not isinstance(name, str) or not _PURPOSE_RE.match(name) or name in BUILTIN_PURPOSES
                    or name in out):
                raise self.fail(key, value, expected)
            url_key = purpose_url_key(name)
            url = self.optional_url(url_key) or base
            out[name] = self.credentials(url, username, password)
        return out

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

    # -- everything -----------------------------------------------------------
    def missing_url(self) -> ConfigError:
        return self.error(
            "REDIS_URL is not set: expected a URL such as redis://localhost:6379/0 (accepted schemes: "
            f"{SCHEMES_TEXT}). memory:// is only chosen automatically when the app is in debug or "
            "testing mode when the extension is created; app.run(debug=True) turns debug on too late "
            'for that. Set REDIS_URL, or FLASK_DEBUG=1 / app.config["DEBUG"] = True before '
            "RedisCache(app) / init_app(app)")

    def load(self) -> Settings:
        warn_unknown_keys(self.config)
        alias = self.alias_url()  # first: it warns when REDIS_URL makes it moot
        url = self.optional_url("REDIS_URL") or alias
        cache_url = self.optional_url("REDIS_CACHE_URL")
        session_url = self.optional_url("REDIS_SESSION_URL")
        sentinels = self.sentinels()
        cluster = self.cluster()
        session = self.flag("REDIS_SESSION")
        username = self.text("REDIS_USERNAME")
        password = self.text("REDIS_PASSWORD")
        if username == "":
            username = None
        if password == "":
            password = None
        # Flask-Session's SESSION_REDIS: that client serves the session purpose.
        session_client = self.session_client() if session and session_url is None else None
        client_url = session_client_url(session_client)
        session_covered = session_url is not None or not session or session_client is not None
        covered = cache_url is not None and session_covered
        if url is None and not covered and not sentinels and not cluster:
            if not self.debug:
                raise self.missing_url()
            logger.warning("flask-rediscache: REDIS_URL is not set; using memory:// (in-process, not shared)")
            url = "memory://"
        master = self.text("REDIS_SENTINEL_MASTER")
        if sentinels and not master:
            raise self.fail("REDIS_SENTINEL_MASTER", master, "the master's service name when REDIS_SENTINELS "
                                                             "is set")
        handler = self.get("REDIS_ERROR_HANDLER")
        if handler is not None and not callable(handler):
            raise self.fail("REDIS_ERROR_HANDLER", handler, "a callable (method=, returning=, exception=)")
        race_key = "REDIS_RACE_CONDITION_TTL"
        race = None if self.get(race_key) is None else self.seconds(race_key)
        reqs = self.get("REDIS_SSL_CERT_REQS")
        if reqs not in CERT_REQS:
            raise self.fail("REDIS_SSL_CERT_REQS", reqs, " or ".join(repr(r) for r in CERT_REQS))
        endpoint = self.text("REDIS_HEALTH_ENDPOINT")
        if endpoint is not None and not endpoint.startswith("/"):
            raise self.fail("REDIS_HEALTH_ENDPOINT", endpoint,
                            'a path starting with "/", e.g. "/health/redis"')
        # With Sentinel or Cluster the URL only carries credentials and the db.
        base = url or ("redis://" if sentinels or cluster else "memory://")
        cache_url = self.credentials(cache_url or base, username, password)
        if session_client is not None:
            session_url = client_url or cache_url
        session_url = self.credentials(session_url or (base if session else cache_url), username, password)
        cluster = tuple(self.credentials(seed, username, password) for seed in cluster)
        namespace = self.prefix("REDIS_NAMESPACE")
        cable_url = self.credentials(self.optional_url("REDIS_CABLE_URL") or base, username, password)
        channel_prefix = (f"{namespace}-cable" if self.get("REDIS_CHANNEL_PREFIX") is None
                          else self.prefix("REDIS_CHANNEL_PREFIX"))
        settings = Settings(
            cache_url=cache_url,
            session_url=session_url,
            fail_open=self.flag("REDIS_FAIL_OPEN"),
            username=username,
            password=password,
            connection_options=self.connection_options(),
            connect_timeout=self.seconds("REDIS_CONNECT_TIMEOUT"),
            read_timeout=self.seconds("REDIS_READ_TIMEOUT"),
            write_timeout=self.seconds("REDIS_WRITE_TIMEOUT"),
            reconnect_attempts=self.integer("REDIS_RECONNECT_ATTEMPTS"),
            reconnect_delay=self.seconds("REDIS_RECONNECT_DELAY"),
            reconnect_delay_max=self.seconds("REDIS_RECONNECT_DELAY_MAX"),
            pool_size=self.integer("REDIS_POOL_SIZE"),
            pool_timeout=self.seconds("REDIS_POOL_TIMEOUT"),
            namespace=namespace,
            default_timeout=timeout_seconds(self.number("REDIS_DEFAULT_TIMEOUT"), "REDIS_DEFAULT_TIMEOUT"),
            race_condition_ttl=race,
            compress_threshold=self.integer("REDIS_COMPRESS_THRESHOLD"),
            error_handler=handler,
            breaker_threshold=self.integer("REDIS_CIRCUIT_BREAKER_THRESHOLD"),
            breaker_cooldown=self.seconds("REDIS_CIRCUIT_BREAKER_COOLDOWN"),
            sentinels=sentinels,
            sentinel_master=master,
            sentinel_password=self.text("REDIS_SENTINEL_PASSWORD"),
            cluster=cluster,
            ssl_ca_certs=self.text("REDIS_SSL_CA_CERTS"),
            ssl_certfile=self.text("REDIS_SSL_CERTFILE"),
            ssl_keyfile=self.text("REDIS_SSL_KEYFILE"),
            ssl_cert_reqs=reqs,
            session=session,
            session_prefix=self.prefix("REDIS_SESSION_PREFIX"),
            health_endpoint=endpoint,
            secret_key=self.secret_key(),
            secret_key_fallbacks=self.secret_key_fallbacks(),
            cable_url=cable_url,
            channel_prefix=channel_prefix,
            cable_configured=(self.get("REDIS_CABLE_URL") is not None
                              or self.get("REDIS_CHANNEL_PREFIX") is not None),
            cable_history=self.integer("REDIS_CABLE_HISTORY"),
            cable_max_stream_seconds=self.seconds("REDIS_CABLE_MAX_STREAM_SECONDS"),
            purposes=MappingProxyType(self.purposes(base, username, password)),
            cache_enabled=self.flag("REDIS_CACHE_ENABLED"),
            read_from_replicas=self.replica_reads(sentinels, cluster),
            enable_signals=self.flag("REDIS_ENABLE_SIGNALS"),
            source_check=bool(self.peer_flag("CACHE_SOURCE_CHECK", False)),
            session_client=session_client,
            session_permanent=self.peer_flag(
                "SESSION_PERMANENT", True if self.config.get("SESSION_TYPE") is not None else None),
            session_id_bytes=self.session_id_bytes(),
        )
        self.check_overlaps(settings)
        return settings

    def check_overlaps(self, settings: Settings) -> None:
        """Two purposes whose key prefixes overlap on one server and db are an error.

        ``clear()`` deletes ``<namespace>:*``: with ``REDIS_NAMESPACE="shop"``
        and ``REDIS_SESSION_PREFIX="shop:session"`` on the same db it would
        delete every session. Prefixes are compared as key prefixes (``a``
        overlaps ``b`` when ``b + ":"`` starts with ``a + ":"``).
        """
        purposes = [("REDIS_NAMESPACE", settings.namespace, settings.cache_url)]
        if settings.session:
            purposes.append(("REDIS_SESSION_PREFIX", settings.session_prefix, settings.session_url))
        purposes.append(("REDIS_CHANNEL_PREFIX", channel_key_prefix(settings.channel_prefix),
                         settings.cable_url))
        for i, (key_a, prefix_a, url_a) in enumerate(purposes):
            for key_b, prefix_b, url_b in purposes[i + 1:]:
                if location(url_a, settings) != location(url_b, settings):
                    continue
                a, b = prefix_a + ":", prefix_b + ":"
                if a.startswith(b) or b.startswith(a):
                    raise self.error(
                        f"{key_a}={prefix_a!r} and {key_b}={prefix_b!r} overlap on the same Redis server "
                        f"and db ({mask_url(url_a)}): clearing one would delete the other's keys; expected "
                        "prefixes where neither is a prefix of the other (e.g. REDIS_NAMESPACE='cache', "
                        "REDIS_SESSION_PREFIX='session'), or separate databases (REDIS_SESSION_URL)")


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
    if "db" in query and _DIGITS.fullmatch(query["db"][-1]):
        db = int(query["db"][-1])
    elif parts.scheme != "unix" and _DIGITS.fullmatch(path[1:]):
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


# -- Flask-Caching's CACHE_* and Flask-Session's SESSION_* keys -----------------
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


def _client_password(client: Any) -> str | None:
    options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    value = options.get("password") if isinstance(options, Mapping) else None
    return value if isinstance(value, str) and value else None


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
            out.ignored.append(f"CACHE_TYPE={_shown(raw_type)} (the cache is Redis here)")
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
            out.ignored.append(f"SESSION_TYPE={_shown(session_type)} (sessions live in Redis here)")
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


def load_settings(config: Mapping[str, Any], *, debug: bool) -> Settings:
    """Validate ``config`` (``app.config``; missing keys read as :data:`DEFAULTS`)
    and return :class:`Settings`.

    ``debug`` is ``app.debug or app.testing``: only then does a missing
    ``REDIS_URL`` fall back to ``memory://`` and a missing ``SECRET_KEY`` to a
    random per-process key (each with a warning); in production both are
    errors, because a per-process cache silently breaks sessions across
    gunicorn workers and a random key breaks them on every restart.
    """
    peers = peer_keys(config)
    peers.log()
    merged: Mapping[str, Any] = ChainMap(peers.overlay, dict(config)) if peers.overlay else config
    return _Loader(merged, debug, peers.sources).load()

