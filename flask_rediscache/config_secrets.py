"""Finding every password in a configuration, so that no message prints one.

:func:`flask_rediscache.masking.mask` hides what it can recognise; these
functions collect the literal secrets it is given on top: configured
passwords, URL passwords (also malformed ones the regexes would miss), and
the password of a ``SESSION_REDIS`` client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

#: The ``REDIS_*`` keys that are passwords themselves.
SECRET_KEYS = ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD")
_URL_KEYS = ("REDIS_URL", "REDIS_CACHE_URL", "REDIS_SESSION_URL", "REDIS_CABLE_URL")
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


def secrets_in(value: Any, *, literal: bool = False, depth: int = 0) -> tuple[str, ...]:
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
            found.extend(secrets_in(item, literal=secret, depth=depth + 1))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found.extend(secrets_in(item, literal=literal, depth=depth + 1))
    return tuple(dict.fromkeys(found))


def config_secrets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Every password in ``config``'s ``REDIS_*`` values, even malformed ones,
    so an error about any value can mask all of them."""
    found: list[str] = []
    for key in SECRET_KEYS:
        found.extend(secrets_in(config.get(key), literal=True))
    for key in (*_URL_KEYS, "REDIS_CLUSTER", "REDIS_SENTINELS", "REDIS_CONNECTION_OPTIONS"):
        found.extend(secrets_in(config.get(key)))
    for key in config:  # REDIS_<NAME>_URL of the REDIS_PURPOSES, even undeclared ones
        if isinstance(key, str) and key.startswith("REDIS_") and key.endswith("_URL"):
            found.extend(secrets_in(config.get(key)))
    return tuple(dict.fromkeys(found))


def client_password(client: Any) -> str | None:
    """The password of a ``SESSION_REDIS`` client, which no config key carries."""
    options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    value = options.get("password") if isinstance(options, Mapping) else None
    return value if isinstance(value, str) and value else None


def show(value: Any) -> str:
    """How a bad value appears in a message: scalars as their repr, containers
    by type (their items may be secrets the regexes cannot recognise)."""
    if value is None or isinstance(value, (str, int, float, bool, timedelta)):
        return repr(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return repr(value)
    return f"<{type(value).__name__}>"
