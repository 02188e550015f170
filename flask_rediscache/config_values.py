"""Reading one ``REDIS_*`` value: a number within its bounds, a flag, a text,
a URL redis-py takes as written, a list of sentinels or cluster seeds.

Why so strict: a value that is merely odd here (a port of 71500, a pool of
10**9 connections, a string where a list of keys was meant) turns into a
hang, a silent fallback or a security hole at run time, far from its cause.
Every error names the key, the masked value and what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis.connection import parse_url

from .config import DEFAULTS, DIGITS, MAX_NUMBER
from .config_secrets import SECRET_KEYS, config_secrets, show
from .errors import ConfigError
from .masking import mask

URL_SCHEMES = ("redis", "rediss", "unix", "memory")
SCHEMES_TEXT = "redis://, rediss:// (TLS), unix:// or memory:// (in-process, needs fakeredis)"
_PREFIX_RE = re.compile(r"^[^\s*?\[\]]+$")


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
    "REDIS_LOCAL_CACHE_SIZE": Bound(1, 100_000_000, integer=True),
    "REDIS_LOCAL_CACHE_MAX_BYTES": Bound(1024, 2**40, integer=True),
    "REDIS_LOCAL_CACHE_TTL": Bound(0, 86400, low_open=True),
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


class Reader:
    """Reads the values of one config; every error it raises is masked with all the config's secrets."""

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
        shown = "'***'" if key in SECRET_KEYS else show(value)
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
        elif path not in ("", "/") and not DIGITS.fullmatch(path[1:]):
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
                if not DIGITS.fullmatch(item):
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
                raise self.error(f"{key}: option {show(name)} is not accepted{instead}: "
                                 f"expected only {accepted}")
            check, expected = CONNECTION_OPTIONS[name]
            if not check(option):
                raise self.error(f"{key}: option {name}={show(option)} is invalid: expected {expected}")
        return MappingProxyType(dict(value))
