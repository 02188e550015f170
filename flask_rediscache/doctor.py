"""``flask redis doctor``: the Rails guide's anti-patterns, checked against a live setup.

Each check is a :class:`Finding` (pass / warn / fail / skip) with a one-line
fix. Config-only checks need no server; server checks reuse the diagnostics of
:mod:`flask_rediscache.health` (INFO, CONFIG GET when INFO is refused, SCAN)
and report "skipped: no permission" when an ACL forbids them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask

from .clients import Target
from .health import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Probe,
    Problem,
    active_purposes,
    as_int,
    decode_key,
    distinct_targets,
    flatten_info,
    human_bytes,
    namespace_match,
    scan_keys,
    server_dbsize,
    server_info,
)

if TYPE_CHECKING:
    from .extension import AppState

#: How many namespace keys ``doctor`` samples for a TTL, and how many SCAN calls it may spend finding them.
TTL_SAMPLE = 100
TTL_SAMPLE_SCANS = 50
#: Timeouts above this many seconds make a hung Redis hold requests for too long.
LONG_TIMEOUT = 5.0


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
        return as_int(info.get("maxmemory")), info.get("maxmemory_policy"), None
    data, problem = probe.call("CONFIG GET", probe.client.config_get, "maxmemory*")
    if problem is not None:
        if info_problem is not None and problem.permission:
            refused = problem.reason.removeprefix("no permission for ")
            return None, None, Problem(f"{info_problem.reason} or {refused}", permission=True)
        return None, None, problem
    data = flatten_info(data) if isinstance(data, dict) else {}
    return as_int(data.get("maxmemory")), data.get("maxmemory-policy"), None


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
        return len(keys), [decode_key(k) for k, ttl in zip(keys, ttls, strict=True) if ttl == -1]

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
    maxclients = as_int((info or {}).get("maxclients"))
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
