"""Diagnostic calls that report the real error: the base of health, stats, keys and doctor.

The cache's own paths fail open through :mod:`~flask_rediscache.failopen` and
never show an error to the user. Diagnostics need the opposite: the real
reason, in one line, with credentials masked. :meth:`Probe.call` is where they
catch Redis errors; it turns any exception into a :class:`Problem` (a short
reason such as ``connection refused`` or ``no permission for INFO`` plus the
masked first line of the message).

Diagnostics talk to the app's clients directly (not through the boundary), so
they neither trip nor are blocked by the circuit breaker.

:func:`check_access` is the probe that proves a purpose can do its job: it
writes, reads and deletes a short-lived key under the purpose's own prefix, so
an ACL user whose key pattern does not cover the prefix is reported, not
mistaken for healthy.
"""

from __future__ import annotations

import secrets as random_tokens
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import exceptions as rexc

from .clients import Target
from .config import channel_key_prefix
from .errors import PoolExhaustedError
from .keys import escape_glob
from .keyspace import printable
from .masking import mask

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .state import AppState

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"

#: The access probe's key is ``<prefix>:__rediscache_probe__:<random>``, alive this many ms at most.
PROBE_TTL_MS = 10_000
PROBE_MARK = "__rediscache_probe__"


# -- one-line errors ----------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Why a diagnostic call failed: a short ``reason`` and the masked message."""

    reason: str
    detail: str = ""
    #: The server refused the command (ACL NOPERM, or CONFIG disabled by a managed service):
    #: it answered, so for PING/INFO this is "can't check", not "unhealthy".
    permission: bool = False

    def __str__(self) -> str:
        if self.detail and self.detail.lower() != self.reason.lower():
            return f"{self.reason}: {self.detail}"
        return self.reason


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line of ``text``, escaped and cut to ``limit`` characters."""
    stripped = text.strip()
    line = printable(stripped.splitlines()[0]) if stripped else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_error(exc: BaseException, command: str, secrets: Iterable[str | None] = (),
                   has_password: bool = True) -> Problem:
    """Turn any exception from ``command`` into a :class:`Problem`.

    The message is masked (URL passwords, ``password=`` values and the literal
    ``secrets``), so a driver that ever echoes a password still prints ``***``.
    """
    text = mask(str(exc), secrets)
    detail = first_line(text)
    lowered = text.lower()
    cmd = command.upper()
    if isinstance(exc, rexc.NoPermissionError) or lowered.startswith("noperm"):
        if "key" in lowered or "channel" in lowered:
            return Problem(f"no permission for {cmd} on this key (ACL key pattern)", detail, permission=True)
        return Problem(f"no permission for {cmd}", detail, permission=True)
    if isinstance(exc, rexc.ResponseError) and "unknown command" in lowered and cmd.startswith("CONFIG"):
        # Managed services (ElastiCache, Memorystore) rename or disable CONFIG.
        return Problem(f"no permission for {cmd} (the command is disabled)", detail, permission=True)
    if isinstance(exc, rexc.AuthenticationError) or "wrongpass" in lowered or "noauth" in lowered:
        if "authenticated" in lowered or "noauth" in lowered or "authentication required" in lowered:
            why = "the URL has no password" if not has_password else "the server wants credentials"
            return Problem(f"authentication required ({why})", detail)
        return Problem("authentication failed (wrong password or user)", detail)
    if _is_tls_error(exc):
        if "certificate" in lowered or "hostname" in lowered:
            return Problem("TLS certificate problem", detail)
        return Problem("TLS handshake failed", detail)
    if isinstance(exc, PoolExhaustedError):
        return Problem("connection pool exhausted (all connections busy)", detail)
    if isinstance(exc, (rexc.TimeoutError, TimeoutError)):
        return Problem(f"timeout (no answer to {cmd})", detail)
    if isinstance(exc, rexc.BusyLoadingError):
        return Problem("server is loading its dataset", detail)
    if isinstance(exc, rexc.ReadOnlyError):
        return Problem("server is a read-only replica", detail)
    if isinstance(exc, rexc.OutOfMemoryError):
        return Problem("server is out of memory (maxmemory reached, noeviction)", detail)
    if isinstance(exc, (rexc.ConnectionError, OSError)):
        return Problem(_connection_reason(lowered), detail)
    if isinstance(exc, (rexc.ClusterError, rexc.RedisClusterException)):
        return Problem("cluster error", detail)
    if isinstance(exc, rexc.ResponseError):
        return Problem(f"{cmd} refused by the server", detail)
    if isinstance(exc, rexc.RedisError):
        return Problem(f"{cmd} failed", detail)
    return Problem(f"{cmd} failed ({type(exc).__name__})", detail)


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # the SSL error is often the __cause__/__context__ of redis' ConnectionError
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "SSL" in text or "CERTIFICATE_VERIFY" in text or "certificate verify" in text


#: Operating-system wording of socket errors, for a reason a human recognises.
_CONNECTION_REASONS = (
    ("connection refused", "connection refused"),
    ("max number of clients", "server refused: max number of clients reached"),
    ("name or service not known", "host not found (DNS)"),
    ("nodename nor servname", "host not found (DNS)"),
    ("temporary failure in name resolution", "host not found (DNS)"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("no such file or directory", "unix socket not found"),
    ("permission denied", "unix socket: permission denied"),
    ("timed out", "timeout (connecting)"),
    ("reset by peer", "connection reset by the server (does it expect TLS? use rediss://)"),
    ("closed by server", "connection closed by the server (TLS expected, or a proxy?)"),
)


def _connection_reason(lowered: str) -> str:
    for needle, reason in _CONNECTION_REASONS:
        if needle in lowered:
            return reason
    return "connection error"


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    """Every password the settings carry: URL userinfo, ``?password=`` values,
    ``REDIS_PASSWORD`` and ``REDIS_SENTINEL_PASSWORD`` (masked even when printed bare)."""
    found: list[str] = []
    urls = [settings.cache_url, settings.session_url, *settings.cluster]
    for url in urls:
        parts = urlsplit(url)
        if parts.password:
            found.append(unquote(parts.password))
        found.extend(parse_qs(parts.query).get("password", []))
    for name in ("password", "sentinel_password"):
        configured = getattr(settings, name, None)
        if isinstance(configured, str) and configured:
            found.append(configured)
    return tuple(dict.fromkeys(found))


class Probe:
    """Runs diagnostic calls against one target; failures become a :class:`Problem`."""

    def __init__(self, target: Target, secrets: Iterable[str] = ()) -> None:
        self.target = target
        self.client = target.client
        kwargs = _connection_kwargs(target.client)
        password = kwargs.get("password")
        extra = (password,) if isinstance(password, str) and password else ()
        self.secrets = (*extra, *secrets)
        self.has_password = bool(password)

    def call(self, command: str, func: Callable[..., Any], *args: Any,
             **kwargs: Any) -> tuple[Any, Problem | None]:
        """``(func(*args), None)`` or ``(None, Problem)``; never raises."""
        try:
            return func(*args, **kwargs), None
        except Exception as exc:
            return None, self.describe(exc, command)

    def describe(self, exc: BaseException, command: str) -> Problem:
        return describe_error(exc, command, self.secrets, self.has_password)


def _connection_kwargs(client: Any) -> dict[str, Any]:
    for path in (("connection_pool", "connection_kwargs"), ("nodes_manager", "connection_kwargs")):
        obj: Any = client
        for attr in path:
            obj = getattr(obj, attr, None)
        if isinstance(obj, dict):
            return obj
    return {}


# -- which targets, under which names ------------------------------------------
def active_purposes(state: AppState) -> dict[str, str]:
    """``purpose -> key prefix`` for the features that are on and own a key
    prefix: cache, session (unless ``REDIS_SESSION = False``) and the broadcast
    streams once the app configures them (``REDIS_CABLE_URL`` or
    ``REDIS_CHANNEL_PREFIX`` set: an app that never broadcasts should not fail
    health because its ACL user cannot write ``{<namespace>-cable}:*``)."""
    settings = state.settings
    # A disabled cache (REDIS_CACHE_ENABLED = False) sends nothing: nothing to check.
    out = {"cache": settings.namespace} if settings.cache_enabled else {}
    if settings.session:
        out["session"] = settings.session_prefix
    if settings.cable_configured:
        out["cable"] = channel_key_prefix(settings.channel_prefix)
    return out


def checked_purposes(state: AppState) -> list[str]:
    """Every purpose health and doctor check: the active ones, then the
    ``REDIS_PURPOSES`` names (whose keys are not ours: connectivity only)."""
    return [*active_purposes(state), *state.settings.purposes]


def distinct_targets(state: AppState) -> list[tuple[Target, list[str]]]:
    """Each configured target once, with the purposes it serves."""
    seen: dict[int, tuple[Target, list[str]]] = {}
    for purpose in checked_purposes(state):
        target = state.targets[purpose]
        seen.setdefault(id(target), (target, []))[1].append(purpose)
    return list(seen.values())


def namespace_match(prefix: str, pattern: str = "*") -> str:
    """The SCAN MATCH pattern for ``pattern`` inside ``<prefix>:`` (the prefix matched literally)."""
    return f"{escape_glob(prefix)}:{pattern}"


# -- can this purpose write, read and delete under its prefix? ------------------------
def check_access(probe: Probe, purpose: str, prefix: str) -> Problem | None:
    """``SET <prefix>:__rediscache_probe__:<random> PX``, ``GET``, ``UNLINK``.

    Proves the purpose's user may write, read and delete under its own prefix
    (the ACL key pattern and ``+@read +@write``) and that the server accepts
    writes (not a replica, not out of memory). Returns None when all three
    worked, else a :class:`Problem` that names the ACL rule to fix.
    """
    client = probe.client
    key = f"{prefix}:{PROBE_MARK}:{random_tokens.token_hex(8)}"
    token = random_tokens.token_hex(8).encode()
    steps: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("SET", lambda: client.set(key, token, px=PROBE_TTL_MS)),
        ("GET", lambda: client.get(key)),
        ("UNLINK", lambda: client.unlink(key)),
    )
    for command, step in steps:
        result, problem = probe.call(command, step)
        if problem is not None:
            return _access_problem(problem, purpose, prefix, command)
        if command == "GET" and result != token:
            return Problem(f"{purpose}: the probe key {prefix}:{PROBE_MARK}:… read back wrong "
                           "(a proxy or another client changed it)")
    return None


def _access_problem(problem: Problem, purpose: str, prefix: str, command: str) -> Problem:
    if not problem.permission:
        return Problem(f"{purpose}: {problem.reason}", problem.detail)
    if "key pattern" in problem.reason:
        reason = (f"{purpose}: ACL refuses keys under {prefix}: (NOPERM on {command}); "
                  f"the user's key pattern must allow ~{prefix}:*")
    else:
        reason = (f"{purpose}: ACL refuses {command} (NOPERM); the user needs +@read +@write "
                  "(see the ACL page of the docs)")
    return Problem(reason, problem.detail, permission=True)
