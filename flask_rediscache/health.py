"""Diagnostics: the checks behind ``flask redis health|stats|doctor`` and the health endpoint.

The cache's own paths fail open through :class:`~flask_rediscache.guard.Guard`
and never show an error to the user. Diagnostics need the opposite: the real
reason, in one line, with credentials masked. :meth:`Probe.call` is the only
place in the package, besides the guard, that catches Redis errors; it turns
any exception into a :class:`Problem` (a short reason such as ``connection
refused`` or ``no permission for INFO`` plus the masked message).

Diagnostics talk to the app's clients directly (not through the guard), so they
neither trip nor are blocked by the circuit breaker. Everything here returns
small dataclasses; :mod:`flask_rediscache.cli` and the endpoint format them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
#: How many namespace keys ``doctor`` samples for a TTL, and how many SCAN calls it may spend finding them.
TTL_SAMPLE = 100
TTL_SAMPLE_SCANS = 50
#: Timeouts above this many seconds make a hung Redis hold requests for too long.
LONG_TIMEOUT = 5.0

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
        return _flatten_info(target.client.info())
    from redis.cluster import RedisCluster

    per_node = target.client.info(target_nodes=RedisCluster.PRIMARIES)
    nodes = [v for v in per_node.values() if isinstance(v, dict)] if isinstance(per_node, dict) else []
    if not nodes:
        return _flatten_info(per_node)
    merged = dict(nodes[0])
    for key in _SUMMED:
        merged[key] = sum(_as_int(node.get(key)) or 0 for node in nodes)
    merged["used_memory_human"] = human_bytes(merged["used_memory"])
    limits = [_as_int(node.get("maxmemory")) or 0 for node in nodes]
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


def _flatten_info(info: Any) -> dict[str, Any]:
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


def _as_int(value: Any) -> int | None:
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
    health.used_memory = _as_int(data.get("used_memory"))
    health.used_memory_human = data.get("used_memory_human")
    health.maxmemory = _as_int(data.get("maxmemory"))
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
            stats.keyspace_hits = _as_int(info.get("keyspace_hits"))
            stats.keyspace_misses = _as_int(info.get("keyspace_misses"))
            stats.hit_ratio = ratio(stats.keyspace_hits, stats.keyspace_misses)
            stats.evicted_keys = _as_int(info.get("evicted_keys"))
            stats.used_memory = _as_int(info.get("used_memory"))
            stats.used_memory_human = info.get("used_memory_human")
            stats.maxmemory = _as_int(info.get("maxmemory"))
            stats.maxmemory_human = info.get("maxmemory_human")
            stats.maxmemory_policy = info.get("maxmemory_policy")
            stats.connected_clients = _as_int(info.get("connected_clients"))
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


def _decode_key(key: Any) -> str:
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
        out.append(KeyInfo(_decode_key(key), ttl_value, size if known else None, source if known else "?"))
    return out, notes


# -- doctor ----------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One doctor check: ``status`` is pass/warn/fail/skip; ``fix`` is one line."""

    status: str
    check: str
    message: str
    fix: str = ""
    #: The server the finding is about (``"cache+session Redis (redis://…)"``); empty for app settings.
    scope: str = ""


def _is_loopback(host: str | None, scheme: str) -> bool:
    if scheme in ("unix", "memory"):
        return True
    if not host:
        return True  # redis-py's default is localhost
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_private(host: str) -> bool:
    """RFC 1918 addresses and single-label names (docker-compose/k8s service names)."""
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return "." not in host


def thread_hint(option: int | None, environ: Any = None) -> tuple[int | None, str]:
    """Threads per worker from ``--threads``, GUNICORN_THREADS, THREADS or GUNICORN_CMD_ARGS."""
    env = os.environ if environ is None else environ
    if option:
        return option, "--threads"
    for name in ("GUNICORN_THREADS", "THREADS"):
        value = env.get(name, "")
        if value.strip().isdigit():
            return int(value), name
    args = env.get("GUNICORN_CMD_ARGS", "")
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    for i, word in enumerate(words):
        match = re.fullmatch(r"--threads(?:=(\d+))?", word)
        if match:
            value = match.group(1) or (words[i + 1] if i + 1 < len(words) else "")
            if value.isdigit():
                return int(value), "GUNICORN_CMD_ARGS"
    return None, ""


def _label(purposes: list[str], target: Target) -> str:
    return f"{'+'.join(purposes)} Redis ({target.name})"


def _url_for(state: AppState, purpose: str) -> str:
    return state.settings.cache_url if purpose == "cache" else state.settings.session_url


def _endpoints(state: AppState, purpose: str) -> list[tuple[str, str | None, bool]]:
    """``(scheme, host, has_password)`` of every address the target's client dials."""
    settings = state.settings
    url = urlsplit(_url_for(state, purpose))
    if settings.cluster:
        seeds = [urlsplit(seed) for seed in settings.cluster]
        return [(s.scheme, s.hostname, bool(s.password or url.password)) for s in seeds]
    if settings.sentinels:
        return [(url.scheme, host, bool(url.password)) for host, _ in settings.sentinels]
    return [(url.scheme, url.hostname, bool(url.password))]


def _server_memory(probe: Probe, info: dict[str, Any] | None,
                   info_problem: Problem | None) -> tuple[int | None, str | None, Problem | None]:
    """maxmemory and policy from INFO, or CONFIG GET when INFO is refused."""
    if info is not None and "maxmemory" in info:
        return _as_int(info.get("maxmemory")), info.get("maxmemory_policy"), None
    data, problem = probe.call("CONFIG GET", probe.client.config_get, "maxmemory*")
    if problem is not None:
        if info_problem is not None and problem.permission:
            refused = problem.reason.removeprefix("no permission for ")
            return None, None, Problem(f"{info_problem.reason} or {refused}", permission=True)
        return None, None, problem
    data = _flatten_info(data) if isinstance(data, dict) else {}
    return _as_int(data.get("maxmemory")), data.get("maxmemory-policy"), None


def _memory_findings(purposes: list[str], maxmemory: int | None,
                     policy: str | None) -> list[Finding]:
    if "cache" not in purposes:  # a session-only server: evicting sessions logs users out
        if policy and policy.startswith("allkeys-"):
            return [Finding(WARN, "eviction-policy", f"maxmemory-policy {policy} evicts sessions "
                            "(users get logged out) under memory pressure",
                            "use volatile-lru or noeviction on the session server, sized to fit")]
        return [Finding(PASS, "eviction-policy", f"session store, maxmemory-policy {policy}")]
    out = []
    if not maxmemory:
        out.append(Finding(FAIL, "maxmemory", "no maxmemory limit; the cache grows until the host "
                           "runs out of memory", "set maxmemory (e.g. `maxmemory 256mb` in redis.conf, "
                           "or CONFIG SET maxmemory 256mb)"))
    else:
        out.append(Finding(PASS, "maxmemory", f"maxmemory {human_bytes(maxmemory)}"))
    if policy == "noeviction":
        out.append(Finding(FAIL, "eviction-policy", "maxmemory-policy noeviction; when full, every "
                           "cache write fails with OOM instead of evicting old entries",
                           "set `maxmemory-policy allkeys-lru` (or allkeys-lfu)"))
    elif policy and policy.startswith("volatile-"):
        out.append(Finding(WARN, "eviction-policy", f"maxmemory-policy {policy} never evicts keys "
                           "without a TTL", "use allkeys-lru for a cache"))
    else:
        out.append(Finding(PASS, "eviction-policy", f"maxmemory-policy {policy}"))
    return out


def _ttl_finding(probe: Probe, prefix: str) -> Finding:
    target = probe.target

    def sample() -> tuple[int, list[str]]:
        keys = []
        for key in scan_keys(target, namespace_match(prefix), max_scans=TTL_SAMPLE_SCANS):
            keys.append(key)
            if len(keys) >= TTL_SAMPLE:
                break
        if not keys:
            return 0, []
        pipe = target.client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        ttls = pipe.execute()
        return len(keys), [_decode_key(k) for k, ttl in zip(keys, ttls, strict=True) if ttl == -1]

    result, problem = probe.call("SCAN/TTL", sample)
    if problem is not None and problem.permission:
        return Finding(SKIP, "ttl", f"skipped: {problem.reason}")
    if problem is not None:
        return Finding(FAIL, "ttl", f"sampling keys failed: {problem}")
    sampled, forever = result
    if not sampled:
        return Finding(PASS, "ttl", f"no keys under {prefix}: to sample")
    if forever:
        return Finding(WARN, "ttl", f"{len(forever)} of {sampled} sampled keys under {prefix}: have "
                       f"no TTL (e.g. {forever[0][:80]})",
                       "give entries a timeout (REDIS_DEFAULT_TIMEOUT > 0; avoid timeout=0)")
    return Finding(PASS, "ttl", f"all {sampled} sampled keys under {prefix}: expire")


def doctor(app: Flask, state: AppState, threads: int | None = None,
           environ: Any = None) -> list[Finding]:
    """Check the app's Redis setup against the anti-patterns of the Rails guide.

    Config-only checks need no server; server checks use INFO (or CONFIG GET
    when INFO is refused) and SCAN, and say "skipped: no permission" when the
    ACL forbids them. Per-server findings carry the server as ``scope``.
    """
    env = os.environ if environ is None else environ
    settings = state.settings
    production = not (app.debug or app.testing)
    findings: list[Finding] = []
    targets = distinct_targets(state)
    infos: dict[int, dict[str, Any]] = {}
    for target, purposes in targets:
        scope = _label(purposes, target)
        found = _target_findings(state, target, purposes, production, env, infos)
        findings.extend(replace(finding, scope=scope) for finding in found)
    if settings.default_timeout == 0:
        findings.append(Finding(WARN, "ttl", "REDIS_DEFAULT_TIMEOUT=0: entries never expire unless evicted",
                                "set a default such as REDIS_DEFAULT_TIMEOUT = 300"))
    findings.append(_separate_purposes_finding(state, targets, infos))
    findings.append(_pool_finding(settings.pool_size, settings.pool_timeout, threads, env))
    findings.append(_timeouts_finding(settings.connect_timeout, settings.read_timeout,
                                      settings.write_timeout))
    findings.append(_error_handler_finding(settings.error_handler is not None, production))
    return findings


def _target_findings(state: AppState, target: Target, purposes: list[str], production: bool,
                     env: Any, infos: dict[int, dict[str, Any]]) -> list[Finding]:
    """The checks of one server; stores its INFO in ``infos`` for the cross-server checks."""
    if target.kind == "memory":
        return [Finding(FAIL if production else WARN, "memory-url", "memory:// is per process; gunicorn "
                        "workers would not share the cache or sessions",
                        "set REDIS_URL to a real server (redis:// or rediss://)")]
    out = _security_findings(state, purposes)
    probe = Probe(target)
    _, problem = probe.call("DBSIZE", server_dbsize, target)
    if problem is not None and not problem.permission:
        out.append(Finding(FAIL, "connect", f"cannot use the server: {problem}",
                           "check the URL, the password and that the server is up (flask redis health)"))
        return out
    info, info_problem = probe.call("INFO", server_info, target)
    if info_problem is not None and not info_problem.permission:
        out.append(Finding(FAIL, "connect", f"INFO failed: {info_problem}"))
        return out
    if info is not None:
        infos[id(target)] = info
    out.append(Finding(PASS, "connect", "reachable" + (f" ({info_problem.reason})" if info_problem else "")))
    maxmemory, policy, problem = _server_memory(probe, info, info_problem)
    if problem is not None and problem.permission:
        out.append(Finding(SKIP, "maxmemory", f"skipped: {problem.reason}"))
    elif problem is not None:
        out.append(Finding(FAIL, "maxmemory", f"reading maxmemory failed: {problem}"))
    else:
        out.extend(_memory_findings(purposes, maxmemory, policy))
    if info is not None and info.get("role") == "slave":
        out.append(Finding(FAIL, "replica", "connected to a read-only replica; cache and session writes "
                           "fail with READONLY", "point the URL at the master (or use Sentinel)"))
    prefixes = active_purposes(state)
    out.extend(_ttl_finding(probe, prefixes[purpose]) for purpose in purposes)
    out.extend(_maxclients_finding(state, info, env))
    return out


def _security_findings(state: AppState, purposes: list[str]) -> list[Finding]:
    out = []
    endpoints = _endpoints(state, purposes[0])
    remote = [(scheme, host or "", pw) for scheme, host, pw in endpoints if not _is_loopback(host, scheme)]
    if not remote:
        out.append(Finding(PASS, "password", "loopback/unix only"))
        out.append(Finding(PASS, "tls", "loopback/unix only, TLS not needed"))
        return out
    hosts = ", ".join(sorted({host for _, host, _ in remote}))
    if any(not pw for _, _, pw in remote):
        out.append(Finding(FAIL, "password", f"no password for {hosts}; anyone who can reach it can "
                           "read and change the cache and sessions",
                           "set requirepass (or an ACL user) and put the password in the URL"))
    else:
        out.append(Finding(PASS, "password", "authenticates with a password"))
    plain = sorted({host for scheme, host, _ in remote if scheme != "rediss"})
    if not plain:
        if state.settings.ssl_cert_reqs == "none":
            out.append(Finding(WARN, "tls", "TLS without certificate verification "
                               "(REDIS_SSL_CERT_REQS='none')",
                               "keep REDIS_SSL_CERT_REQS='required' and set REDIS_SSL_CA_CERTS"))
        else:
            out.append(Finding(PASS, "tls", "TLS (rediss://)"))
    elif all(_is_private(host) for host in plain):
        out.append(Finding(WARN, "tls", f"plaintext redis:// to {', '.join(plain)} "
                           "(private network)",
                           "use rediss:// unless the network is trusted end to end"))
    else:
        out.append(Finding(FAIL, "tls", f"plaintext redis:// to remote host {', '.join(plain)}; "
                           "passwords and data cross the network unencrypted", "use rediss://"))
    return out


def _separate_purposes_finding(state: AppState, targets: list[tuple[Target, list[str]]],
                               infos: dict[int, dict[str, Any]]) -> Finding:
    if not state.settings.session:
        return Finding(PASS, "separate-purposes",
                       "sessions are off (REDIS_SESSION = False); only the cache uses Redis")
    if len(targets) == 1:
        return Finding(WARN, "separate-purposes", "cache and sessions share one Redis: cache load and "
                       "eviction (allkeys-lru) hit sessions too",
                       "give sessions their own server with REDIS_SESSION_URL "
                       "(maxmemory and eviction are per server)")
    (cache_target, _), (session_target, _) = targets[0], targets[1]
    run_ids = [infos.get(id(t), {}).get("run_id") for t in (cache_target, session_target)]
    if run_ids[0] and run_ids[1]:
        same = run_ids[0] == run_ids[1]
    else:  # INFO refused: compare the addresses in the URLs instead
        urls = [urlsplit(url) for url in (state.settings.cache_url, state.settings.session_url)]
        cache_addr, session_addr = ((u.scheme, u.hostname, u.port) for u in urls)
        same = cache_addr == session_addr
    if same:
        return Finding(WARN, "separate-purposes", "cache and sessions use different databases of the same "
                       "server; maxmemory and eviction are per server",
                       "point REDIS_SESSION_URL at a separate server")
    return Finding(PASS, "separate-purposes", "cache and sessions use separate Redis servers")


def _pool_finding(pool_size: int, pool_timeout: float, threads: int | None, env: Any) -> Finding:
    count, source = thread_hint(threads, env)
    if count is None:
        return Finding(SKIP, "pool", f"REDIS_POOL_SIZE={pool_size}; skipped: threads per worker unknown "
                       "(pass --threads N or set GUNICORN_THREADS)")
    if count > pool_size:
        return Finding(FAIL, "pool", f"REDIS_POOL_SIZE={pool_size} but {count} threads per worker "
                       f"({source}); "
                       f"busy threads wait up to REDIS_POOL_TIMEOUT={pool_timeout:g}s for a connection",
                       f"set REDIS_POOL_SIZE >= {count}")
    return Finding(PASS, "pool", f"REDIS_POOL_SIZE={pool_size} covers {count} threads per worker ({source})")


def _maxclients_finding(state: AppState, info: dict[str, Any] | None, env: Any) -> list[Finding]:
    workers = env.get("WEB_CONCURRENCY", "")
    maxclients = _as_int((info or {}).get("maxclients"))
    if not workers.strip().isdigit() or maxclients is None:
        return []
    needed = int(workers) * state.settings.pool_size
    if needed > maxclients:
        return [Finding(WARN, "maxclients", f"WEB_CONCURRENCY={workers} workers x REDIS_POOL_SIZE="
                        f"{state.settings.pool_size} = {needed} connections, above maxclients {maxclients}",
                        "raise maxclients or lower REDIS_POOL_SIZE")]
    return [Finding(PASS, "maxclients",
                    f"up to {needed} connections, within maxclients {maxclients}")]


def _timeouts_finding(connect: float, read: float, write: float) -> Finding:
    long = [f"{name}={value:g}s" for name, value in (("REDIS_CONNECT_TIMEOUT", connect),
            ("REDIS_READ_TIMEOUT", read), ("REDIS_WRITE_TIMEOUT", write)) if value > LONG_TIMEOUT]
    if long:
        return Finding(WARN, "timeouts", f"{', '.join(long)}: a hung Redis holds each request that long",
                       "use the Rails values: connect 2s, read 1s, write 1s")
    return Finding(PASS, "timeouts", f"connect {connect:g}s, read {read:g}s, write {write:g}s")


def _error_handler_finding(has_handler: bool, production: bool) -> Finding:
    if has_handler:
        return Finding(PASS, "error-handler", "REDIS_ERROR_HANDLER is set")
    if not production:
        return Finding(PASS, "error-handler", "no REDIS_ERROR_HANDLER (fine in debug/testing)")
    return Finding(WARN, "error-handler",
                   "no REDIS_ERROR_HANDLER: Redis errors are swallowed and only logged",
                   "set REDIS_ERROR_HANDLER to report them (e.g. to Sentry)")
