"""Reading and validating the ``REDIS_*`` keys of ``app.config``.

Every key the extension understands is declared once, in :data:`DEFAULTS`, so
the defaults are visible in one place (``init_app`` ``setdefault``\\ s them on
the app config). :func:`load_settings` turns the config into an immutable
:class:`Settings`; a bad value raises :class:`ConfigError` naming the key, the
value and what was expected, at start-up rather than on the first request.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("flask_rediscache")

#: Every ``REDIS_*`` key the extension reads, with its default.
DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "REDIS_CACHE_URL": None,
    "REDIS_SESSION_URL": None,
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
    "REDIS_CIRCUIT_BREAKER_THRESHOLD": 5,
    "REDIS_CIRCUIT_BREAKER_COOLDOWN": 5,
    "REDIS_SENTINELS": None,
    "REDIS_SENTINEL_MASTER": None,
    "REDIS_SENTINEL_PASSWORD": None,
    "REDIS_CLUSTER": None,
    "REDIS_SSL_CA_CERTS": None,
    "REDIS_SSL_CERTFILE": None,
    "REDIS_SSL_KEYFILE": None,
    "REDIS_SSL_CERT_REQS": "required",
    "REDIS_SESSION": True,
    "REDIS_SESSION_PREFIX": "session",
    "REDIS_HEALTH_ENDPOINT": None,
}

#: Upper bound of every numeric setting and cache timeout (about 31 years):
#: NaN, infinity and absurd values would otherwise pass validation and break
#: at run time (socket timeouts raise, Redis refuses the expiry, a breaker
#: never closes).
MAX_NUMBER = 10**9

URL_SCHEMES = ("redis", "rediss", "unix", "memory")
CERT_REQS = ("required", "optional", "none")
_PREFIX_RE = re.compile(r"^[^\s*?\[\]]+$")


class ConfigError(ValueError):
    """A ``REDIS_*`` value is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one app (see the contract for meanings)."""

    cache_url: str
    session_url: str
    url_was_defaulted: bool
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


def _fail(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is invalid: expected {expected}")


def _number(config: Mapping[str, Any], key: str, *, minimum: float = 0,
            allow_zero: bool = True, integer: bool = False) -> Any:
    value = config[key]
    if isinstance(value, timedelta) and not integer:
        value = value.total_seconds()
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise _fail(key, config[key], _describe(minimum, allow_zero, integer)) from None
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        raise _fail(key, config[key], _describe(minimum, allow_zero, integer))
    # NaN compares false with everything, so test the valid range, not the invalid one.
    if not (minimum <= value <= MAX_NUMBER) or (not allow_zero and value == 0):
        raise _fail(key, config[key], _describe(minimum, allow_zero, integer))
    return value


def _describe(minimum: float, allow_zero: bool, integer: bool) -> str:
    kind = "an integer" if integer else "a number of seconds"
    low = f"{'>= 0' if allow_zero else '> 0'}" if minimum == 0 else f">= {minimum:g}"
    return f"{kind} {low} and <= {MAX_NUMBER:g}"


def timeout_seconds(value: Any, key: str = "timeout") -> int:
    """Normalise a cache timeout (seconds, ``timedelta``) to whole seconds.

    ``0`` means "no expiry". Fractions round up so a 0.5 s timeout does not
    silently become "forever".
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_NUMBER:
        raise _fail(key, value, f"seconds from 0 to {MAX_NUMBER:g} or a timedelta (0 means no expiry)")
    whole = int(value)
    return whole + 1 if value > whole else whole


def _url(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(key, value, "a URL string such as redis://localhost:6379/0")
    scheme = urlsplit(value).scheme
    if scheme not in URL_SCHEMES:
        raise _fail(key, mask_url(value), "a URL with scheme " + ", ".join(f"{s}://" for s in URL_SCHEMES))
    return value


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for logs and CLI output)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}"
    return parts._replace(netloc=netloc).geturl()


def _sentinels(value: Any) -> tuple[tuple[str, int], ...]:
    key = "REDIS_SENTINELS"
    if value is None:
        return ()
    expected = 'a list of "host:port" strings'
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(key, value, expected)
    out = []
    for item in value:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            host, port = item
        elif isinstance(item, str) and ":" in item:
            host, _, port = item.strip().rpartition(":")
        else:
            raise _fail(key, value, expected)
        try:
            out.append((str(host), int(port)))
        except ValueError:
            raise _fail(key, value, expected) from None
    return tuple(out)


def _cluster(value: Any) -> tuple[str, ...]:
    key = "REDIS_CLUSTER"
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(key, value, 'a list of seed URLs such as ["redis://node1:6379"]')
    for item in value:
        if not isinstance(item, str) or urlsplit(item).scheme not in ("redis", "rediss"):
            raise _fail(key, item, "each seed a redis:// or rediss:// URL")
    return tuple(value)


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(key, value, "a string")
    return value


def _prefix(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not _PREFIX_RE.match(value):
        raise _fail(key, value, "a non-empty string without spaces or glob characters (*?[])")
    return value


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn about ``REDIS_*`` keys we don't know, naming the closest known one."""
    for key in config:
        if isinstance(key, str) and key.startswith("REDIS_") and key not in DEFAULTS:
            close = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
            logger.warning("flask-rediscache: unknown config key %s%s", key, hint)


def load_settings(config: Mapping[str, Any], *, debug: bool) -> Settings:
    """Validate ``config`` (already defaulted) and return :class:`Settings`.

    ``debug`` is ``app.debug or app.testing``: only then does a missing
    ``REDIS_URL`` fall back to ``memory://`` (with a warning); in production a
    missing URL is an error, because a per-process cache silently breaks
    sessions across gunicorn workers.
    """
    warn_unknown_keys(config)
    url = _url(config, "REDIS_URL")
    cache_url = _url(config, "REDIS_CACHE_URL")
    session_url = _url(config, "REDIS_SESSION_URL")
    sentinels = _sentinels(config.get("REDIS_SENTINELS"))
    cluster = _cluster(config.get("REDIS_CLUSTER"))
    defaulted = False
    if url is None and not (cache_url and session_url) and not sentinels and not cluster:
        if not debug:
            raise ConfigError(
                "REDIS_URL is not set: expected a URL such as redis://localhost:6379/0 "
                "(memory:// is only chosen automatically when app.debug or app.testing)"
            )
        logger.warning("flask-rediscache: REDIS_URL is not set; using memory:// (in-process, not shared)")
        url, defaulted = "memory://", True
    master = _optional_str(config, "REDIS_SENTINEL_MASTER")
    if sentinels and not master:
        raise _fail("REDIS_SENTINEL_MASTER", master, "the master's service name when REDIS_SENTINELS is set")
    handler = config.get("REDIS_ERROR_HANDLER")
    if handler is not None and not callable(handler):
        raise _fail("REDIS_ERROR_HANDLER", handler, "a callable (method=, returning=, exception=)")
    rct = config.get("REDIS_RACE_CONDITION_TTL")
    race = None if rct is None else float(_number(config, "REDIS_RACE_CONDITION_TTL", allow_zero=False))
    reqs = config.get("REDIS_SSL_CERT_REQS")
    if reqs not in CERT_REQS:
        raise _fail("REDIS_SSL_CERT_REQS", reqs, " or ".join(repr(r) for r in CERT_REQS))
    for flag in ("REDIS_SESSION",):
        if not isinstance(config.get(flag), bool):
            raise _fail(flag, config.get(flag), "True or False")
    endpoint = _optional_str(config, "REDIS_HEALTH_ENDPOINT")
    if endpoint is not None and not endpoint.startswith("/"):
        raise _fail("REDIS_HEALTH_ENDPOINT", endpoint, 'a path starting with "/", e.g. "/health/redis"')
    # With Sentinel or Cluster the URL only carries credentials and the db.
    base = url or ("redis://" if sentinels or cluster else "memory://")
    return Settings(
        cache_url=cache_url or base,
        session_url=session_url or base,
        url_was_defaulted=defaulted,
        connect_timeout=float(_number(config, "REDIS_CONNECT_TIMEOUT", allow_zero=False)),
        read_timeout=float(_number(config, "REDIS_READ_TIMEOUT", allow_zero=False)),
        write_timeout=float(_number(config, "REDIS_WRITE_TIMEOUT", allow_zero=False)),
        reconnect_attempts=_number(config, "REDIS_RECONNECT_ATTEMPTS", integer=True),
        reconnect_delay=float(_number(config, "REDIS_RECONNECT_DELAY")),
        reconnect_delay_max=float(_number(config, "REDIS_RECONNECT_DELAY_MAX")),
        pool_size=_number(config, "REDIS_POOL_SIZE", minimum=1, integer=True),
        pool_timeout=float(_number(config, "REDIS_POOL_TIMEOUT")),
        namespace=_prefix(config, "REDIS_NAMESPACE"),
        default_timeout=timeout_seconds(_number(config, "REDIS_DEFAULT_TIMEOUT"), "REDIS_DEFAULT_TIMEOUT"),
        race_condition_ttl=race,
        compress_threshold=_number(config, "REDIS_COMPRESS_THRESHOLD", integer=True),
        error_handler=handler,
        breaker_threshold=_number(config, "REDIS_CIRCUIT_BREAKER_THRESHOLD", minimum=1, integer=True),
        breaker_cooldown=float(_number(config, "REDIS_CIRCUIT_BREAKER_COOLDOWN")),
        sentinels=sentinels,
        sentinel_master=master,
        sentinel_password=_optional_str(config, "REDIS_SENTINEL_PASSWORD"),
        cluster=cluster,
        ssl_ca_certs=_optional_str(config, "REDIS_SSL_CA_CERTS"),
        ssl_certfile=_optional_str(config, "REDIS_SSL_CERTFILE"),
        ssl_keyfile=_optional_str(config, "REDIS_SSL_KEYFILE"),
        ssl_cert_reqs=reqs,
        session=config["REDIS_SESSION"],
        session_prefix=_prefix(config, "REDIS_SESSION_PREFIX"),
        health_endpoint=endpoint,
    )
