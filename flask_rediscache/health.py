"""Diagnostics: the checks behind ``flask redis health|stats|keys`` and the health endpoint.

The cache's own paths fail open through :class:`~flask_rediscache.guard.Guard`
and never show an error to the user. Diagnostics need the opposite: the real
reason, in one line, with credentials masked. :meth:`Probe.call` is the only
place in the package, besides the guard, that catches Redis errors; it turns
any exception into a :class:`Problem` (a short reason such as ``connection
refused`` or ``no permission for INFO`` plus the masked message).

Diagnostics talk to the app's clients directly (not through the guard), so they
neither trip nor are blocked by the circuit breaker. Everything here returns
small dataclasses; :mod:`flask_rediscache.doctor` builds on them, and
:mod:`flask_rediscache.cli` and the endpoint format them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify
from redis import exceptions as rexc

from .clients import Target
from .guard import mask_credentials
from .keys import escape_glob

if TYPE_CHECKING:
    from .extension import AppState

logger = logging.getLogger("flask_rediscache")

#: Keys examined per SCAN call: large enough to be quick, small enough not to block Redis.
SCAN_COUNT = 1000

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


# -- one-line errors ----------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Why a diagnostic call failed: a short ``reason`` and the masked message."""

    reason: str
    detail: str = ""
    #: The server refused the command (ACL NOPERM, or CONFIG disabled by a managed service):
    #: it answered, so this is "can't check", not "unhealthy".
    permission: bool = False

    def __str__(self) -> str:
        if self.detail and self.detail.lower() != self.reason.lower():
            return f"{self.reason}: {self.detail}"
        return self.reason


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_error(exc: BaseException, command: str, secrets: tuple[str, ...] = (),
                   has_password: bool = True) -> Problem:
    """Turn any exception from ``command`` into a :class:`Problem`.

    The message is masked twice: URLs with passwords (``mask_credentials``)
    and the literal passwords the client was configured with (``secrets``),
    so a driver that ever echoes a password still prints ``***``.
    """
    text = str(exc)
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would mangle ordinary words
            text = text.replace(secret, "***")
    detail = _first_line(mask_credentials(text))
    lowered = text.lower()
    cmd = command.upper()
    if isinstance(exc, rexc.NoPermissionError) or lowered.startswith("noperm"):
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
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):  # the SSL error is often the __cause__/__context__ of redis' ConnectionError
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "SSL" in text or "CERTIFICATE_VERIFY" in text or "certificate verify" in text


def _connection_reason(lowered: str) -> str:
    table = (
        ("no connection available", "connection pool exhausted (all connections busy)"),
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
    for needle, reason in table:
        if needle in lowered:
            return reason
    return "connection error"


def _client_connection_kwargs(client: Any) -> dict[str, Any]:
    for path in (("connection_pool", "connection_kwargs"), ("nodes_manager", "connection_kwargs")):
        obj: Any = client
        for attr in path:
            obj = getattr(obj, attr, None)
        if isinstance(obj, dict):
            return obj
    return {}


class Probe:
    """Runs diagnostic calls against one target; failures become a :class:`Problem`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.client = target.client
        kwargs = _client_connection_kwargs(target.client)
        password = kwargs.get("password")
        self.secrets = tuple(s for s in (password,) if isinstance(s, str) and s)
        self.has_password = bool(password)

    def call(self, command: str, func: Callable[..., Any], *args: Any,
             **kwargs: Any) -> tuple[Any, Problem | None]:
        """``(func(*args), None)`` or ``(None, Problem)``; never raises."""
        try:
            return func(*args, **kwargs), None
        except Exception as exc:
            return None, describe_error(exc, command, self.secrets, self.has_password)


# -- which targets, under which names ------------------------------------------
def active_purposes(state: AppState) -> dict[str, str]:
    """``purpose -> key prefix`` for the features that are on (sessions may be off)."""
    out = {"cache": state.settings.namespace}
    if state.settings.session:
        out["session"] = state.settings.session_prefix
    return out


def distinct_targets(state: AppState) -> list[tuple[Target, list[str]]]:
    """Each configured target once, with the active purposes it serves."""
    seen: dict[int, tuple[Target, list[str]]] = {}
    for purpose in active_purposes(state):
        target = state.targets[purpose]
        seen.setdefault(id(target), (target, []))[1].append(purpose)
    return list(seen.values())


def namespace_match(prefix: str, pattern: str = "*") -> str:
    """The SCAN MATCH pattern for ``pattern`` inside ``<prefix>:`` (the prefix matched literally)."""
    return f"{escape_glob(prefix)}:{pattern}"


# -- INFO and DBSIZE (per server, or summed over a cluster's primaries) -----------
#: INFO fields that add up across a cluster's primaries.
_SUMMED = ("used_memory", "keyspace_hits", "keyspace_misses", "evicted_keys", "connected_clients")


def server_info(target: Target) -> dict[str, Any]:
    """INFO of the target's server; for a cluster, the primaries' INFO merged
    (counters summed; the weakest maxmemory setting, so doctor flags any node)."""
    if not target.is_cluster:
        return flatten_info(target.client.info())
    from redis.cluster import RedisCluster

    per_node = target.client.info(target_nodes=RedisCluster.PRIMARIES)
    nodes = [v for v in per_node.values() if isinstance(v, dict)] if isinstance(per_node, dict) else []
    if not nodes:
        return flatten_info(per_node)
    merged = dict(nodes[0])
    for key in _SUMMED:
        merged[key] = sum(as_int(node.get(key)) or 0 for node in nodes)
    merged["used_memory_human"] = human_bytes(merged["used_memory"])
    limits = [as_int(node.get("maxmemory")) or 0 for node in nodes]
    merged["maxmemory"] = 0 if 0 in limits else min(limits)
    merged["maxmemory_human"] = human_bytes(merged["maxmemory"])
    policies = {str(node.get("maxmemory_policy")) for node in nodes}
    merged["maxmemory_policy"] = "noeviction" if "noeviction" in policies else sorted(policies)[0]
    merged["cluster_primaries"] = len(nodes)
    return merged


def server_dbsize(target: Target) -> int:
    """DBSIZE, summed over a cluster's primaries."""
    if target.is_cluster:
        from redis.cluster import RedisCluster

        return int(target.client.dbsize(target_nodes=RedisCluster.PRIMARIES))
    return int(target.client.dbsize())


def human_bytes(value: int) -> str:
    """Bytes the way Redis' INFO prints them (``1.15M``)."""
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.2f}{unit}"
        size /= 1024
    return f"{value}B"  # pragma: no cover


def flatten_info(info: Any) -> dict[str, Any]:
    """A per-node INFO answer (cluster) reduced to the first node's."""
    if not isinstance(info, dict):
        return {}
    if "redis_version" in info or not info:
        return info
    for value in info.values():
        if isinstance(value, dict) and "redis_version" in value:
            return value
    return info


def _role(info: dict[str, Any], kind: str) -> str | None:
    role = info.get("role")
    if role is None:
        return None
    role = {"slave": "replica"}.get(str(role), str(role))
    if "cluster_primaries" in info:
        role = f"cluster of {info['cluster_primaries']} primaries"
    elif str(info.get("cluster_enabled", "0")) == "1":
        role += ", cluster node"
    if kind == "sentinel":
        role += " via sentinel"
    return str(role)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- health ----------------------------------------------------------------------
@dataclass
class TargetHealth:
    """The result of :func:`check_target` for one Redis server."""

    name: str
    kind: str
    purposes: list[str]
    ok: bool = False
    latency_ms: float | None = None
    version: str | None = None
    role: str | None = None
    used_memory: int | None = None
    used_memory_human: str | None = None
    maxmemory: int | None = None
    maxmemory_human: str | None = None
    maxmemory_policy: str | None = None
    error: Problem | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = str(self.error) if self.error else None
        data["reason"] = self.error.reason if self.error else None
        return data


def check_target(target: Target, purposes: list[str] | None = None, *, info: bool = True) -> TargetHealth:
    """PING (twice: the first connects and authenticates, the second is timed),
    then, with ``info``, one INFO for version, role and memory.

    A NOPERM on PING still proves the server is up and we are authenticated
    (the Rails guide's least-privilege user ``+@read +@write`` may not PING),
    so it is a note, not a failure; so is a refused INFO.
    """
    health = TargetHealth(target.name, target.kind, list(purposes or target.purposes))
    probe = Probe(target)
    _, problem = probe.call("PING", target.client.ping)
    if problem is not None and not problem.permission:
        health.error = problem
        return health
    started = time.perf_counter()
    _, problem = probe.call("PING", target.client.ping)
    health.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    if problem is not None and not problem.permission:
        health.error = problem
        return health
    if problem is not None:
        health.notes.append(f"{problem.reason}; the server answered, so it is reachable")
    if target.kind == "memory":
        health.role = "in-process (memory://)"
    elif info:
        data, problem = probe.call("INFO", server_info, target)
        if problem is not None and problem.permission:
            health.notes.append(f"{problem.reason}: version, role and memory not shown")
        elif problem is not None:
            health.error = problem
            return health
        else:
            _fill_info(health, data, target.kind)
    health.ok = True
    return health


def _fill_info(health: TargetHealth, data: dict[str, Any], kind: str) -> None:
    health.version = str(data["redis_version"]) if "redis_version" in data else None
    health.role = _role(data, kind)
    health.used_memory = as_int(data.get("used_memory"))
    health.used_memory_human = data.get("used_memory_human")
    health.maxmemory = as_int(data.get("maxmemory"))
    health.maxmemory_human = data.get("maxmemory_human")
    health.maxmemory_policy = data.get("maxmemory_policy")
    if str(data.get("loading", "0")) == "1":
        health.ok = False
        health.error = Problem("server is loading its dataset")


def check_all(state: AppState, *, info: bool = True) -> list[TargetHealth]:
    """:func:`check_target` for every distinct target of the app's active purposes."""
    return [check_target(target, purposes, info=info) for target, purposes in distinct_targets(state)]


def endpoint_payload(checks: list[TargetHealth]) -> tuple[dict[str, Any], int]:
    """The JSON body and status of the health endpoint.

    Deliberately small: per purpose ok/latency and the short reason only (no
    server addresses, versions or exception text: the endpoint is often public).
    """
    ok = all(check.ok for check in checks)
    purposes: dict[str, Any] = {}
    reasons = []
    for check in checks:
        for purpose in check.purposes:
            entry: dict[str, Any] = {"ok": check.ok, "latency_ms": check.latency_ms}
            if check.error is not None:
                entry["reason"] = check.error.reason
                reasons.append(f"{purpose}: {check.error.reason}")
            purposes[purpose] = entry
    body: dict[str, Any] = {"status": "ok" if ok else "error", "checks": purposes}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return body, 200 if ok else 503


def health_view() -> tuple[Response, int]:
    """The ``REDIS_HEALTH_ENDPOINT`` view: 200 ``{"status": "ok"}`` or 503 ``{"status": "error"}``."""
    from .extension import STATE_KEY

    state = current_app.extensions[STATE_KEY]
    checks = check_all(state, info=False)
    for check in checks:
        if check.error is not None:
            logger.warning("flask-rediscache: health check failed for %s Redis (%s): %s",
                           "+".join(check.purposes), check.name, check.error)
    body, status = endpoint_payload(checks)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, status


def register_health_endpoint(app: Flask, path: str) -> None:
    """Serve :func:`health_view` at ``path`` (``REDIS_HEALTH_ENDPOINT``)."""
    app.add_url_rule(path, endpoint="rediscache_health", view_func=health_view, methods=["GET", "HEAD"])


# -- scanning the namespace ------------------------------------------------------
def scan_keys(target: Target, match: str, *, count: int = SCAN_COUNT,
              progress: Callable[[int], None] | None = None, max_scans: int | None = None) -> Iterator[bytes]:
    """Keys matching ``match`` via SCAN (never KEYS).

    ``progress(n)`` is called after each SCAN call with the number of keys it
    examined (about ``count``), so a caller can drive a bar of DBSIZE length.
    ``max_scans`` bounds the work when sampling.
    """
    client = target.client
    if target.is_cluster:  # redis-py walks every primary for us
        yield from client.scan_iter(match=match, count=count)
        return
    cursor, scans = 0, 0
    while True:
        cursor, batch = client.scan(cursor, match=match, count=count)
        scans += 1
        if progress is not None:
            progress(count)
        yield from batch
        if int(cursor) == 0 or (max_scans is not None and scans >= max_scans):
            return


def count_keys(target: Target, match: str, progress: Callable[[int], None] | None = None) -> int:
    return sum(1 for _ in scan_keys(target, match, progress=progress))


# -- stats ----------------------------------------------------------------------
@dataclass
class TargetStats:
    """Server counters and namespace sizes for one target (``flask redis stats``)."""

    name: str
    purposes: list[str]
    error: Problem | None = None
    notes: list[str] = field(default_factory=list)
    dbsize: int | None = None
    keyspace_hits: int | None = None
    keyspace_misses: int | None = None
    hit_ratio: float | None = None
    evicted_keys: int | None = None
    used_memory: int | None = None
    used_memory_human: str | None = None
    maxmemory: int | None = None
    maxmemory_human: str | None = None
    maxmemory_policy: str | None = None
    connected_clients: int | None = None
    keys: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = str(self.error) if self.error else None
        return data


def ratio(hits: int | None, misses: int | None) -> float | None:
    if hits is None or misses is None or hits + misses == 0:
        return None
    return round(hits / (hits + misses), 4)


def target_stats(state: AppState, target: Target, purposes: list[str],
                 progress: Callable[[int, str], Any] | None = None) -> TargetStats:
    """INFO counters plus a SCAN count of each purpose's prefix on ``target``.

    ``progress(dbsize, label)`` may return a ``step(n)`` callback (the CLI's
    progress bar) or None.
    """
    stats = TargetStats(target.name, list(purposes))
    probe = Probe(target)
    stats.dbsize, problem = probe.call("DBSIZE", server_dbsize, target)
    if problem is not None and not problem.permission:
        stats.error = problem
        return stats
    if target.kind != "memory":
        data, problem = probe.call("INFO", server_info, target)
        if problem is not None and problem.permission:
            stats.notes.append(f"{problem.reason}: server counters not shown")
        elif problem is not None:
            stats.error = problem
            return stats
        else:
            info = data
            stats.keyspace_hits = as_int(info.get("keyspace_hits"))
            stats.keyspace_misses = as_int(info.get("keyspace_misses"))
            stats.hit_ratio = ratio(stats.keyspace_hits, stats.keyspace_misses)
            stats.evicted_keys = as_int(info.get("evicted_keys"))
            stats.used_memory = as_int(info.get("used_memory"))
            stats.used_memory_human = info.get("used_memory_human")
            stats.maxmemory = as_int(info.get("maxmemory"))
            stats.maxmemory_human = info.get("maxmemory_human")
            stats.maxmemory_policy = info.get("maxmemory_policy")
            stats.connected_clients = as_int(info.get("connected_clients"))
    prefixes = active_purposes(state)
    for purpose in purposes:
        prefix = prefixes[purpose]
        step = progress(stats.dbsize or 0, f"Counting {prefix}:* keys") if progress else None
        count, problem = probe.call("SCAN", count_keys, target, namespace_match(prefix), step)
        if problem is not None:
            stats.error = problem
            return stats
        stats.keys[f"{prefix}:"] = count
    return stats


def process_counters(state: AppState) -> dict[str, Any]:
    """This process's own counters (a CLI process only sees its own calls)."""
    cache = state.cache
    return {
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "hit_ratio": ratio(cache.hits, cache.misses),
        "errors": {purpose: guard.errors for purpose, guard in state.guards.items()},
    }


# -- keys ------------------------------------------------------------------------
@dataclass
class KeyInfo:
    key: str
    ttl: int | None  # seconds; None = no expiry
    size: int | None  # bytes; None = unknown
    size_source: str  # "memory" (MEMORY USAGE), "strlen" or "?"


def decode_key(key: Any) -> str:
    return key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)


def describe_keys(target: Target, keys: list[bytes]) -> tuple[list[KeyInfo], list[str]]:
    """TTL and size of ``keys`` in one pipelined round trip (two if MEMORY USAGE is refused)."""
    if not keys:
        return [], []
    notes: list[str] = []
    pipe = target.client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
        pipe.memory_usage(key)
    results = pipe.execute(raise_on_error=False)
    ttls, sizes = results[0::2], results[1::2]
    source = "memory"
    if any(isinstance(s, Exception) for s in sizes):
        refused = next(s for s in sizes if isinstance(s, Exception))
        notes.append(f"MEMORY USAGE refused ({_first_line(str(refused), 80)}); showing STRLEN instead")
        pipe = target.client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        sizes = pipe.execute(raise_on_error=False)
        source = "strlen"
    out = []
    for key, ttl, size in zip(keys, ttls, sizes, strict=True):
        ttl_value = ttl if isinstance(ttl, int) and ttl >= 0 else None
        known = isinstance(size, int) and not isinstance(size, bool)
        out.append(KeyInfo(decode_key(key), ttl_value, size if known else None, source if known else "?"))
    return out, notes
