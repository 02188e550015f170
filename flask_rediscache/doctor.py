"""``flask redis doctor``: the Rails guide's anti-patterns, checked against a live setup.

Each check is a :class:`Finding` (pass / warn / fail / skip) with a one-line
fix; ``flask redis doctor`` exits 1 when any check fails and 0 otherwise
(warnings included). Every check and its levels are listed in one table in
docs/operations.rst, and a test holds the two together. Config-only checks
need no server; server checks use the diagnostics of
:mod:`~flask_rediscache.probes` and :mod:`~flask_rediscache.info` (the
write/read/delete probe, INFO, CONFIG GET when INFO is refused, SCAN) and
report "skipped: no permission" when an ACL forbids a check that is not
essential.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask

from .clients import Target
from .config import location
from .doctor_config import (
    Finding,
    default_timeout_finding,
    error_handler_finding,
    plural,
    pool_finding,
    security_findings,
    thread_hint,
    timeouts_finding,
    worst_case_finding,
)
from .info import as_int, flatten_info, human_bytes, server_dbsize, server_info, text_of
from .keyspace import decode_key, scan_keys
from .probes import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Probe,
    Problem,
    active_purposes,
    check_access,
    distinct_targets,
    namespace_match,
    settings_secrets,
)

if TYPE_CHECKING:
    from .state import AppState

#: Seconds ``doctor`` waits for the local cache's tracking to start.
TRACKING_WAIT = 3.0
#: More tracking clients than this on one server make doctor warn (each write is sent to all).
TRACKING_CLIENTS_WARN = 256
#: How many namespace keys ``doctor`` samples for a TTL, and how many SCAN calls it may spend finding them.
TTL_SAMPLE = 100
TTL_SAMPLE_SCANS = 50

__all__ = ["Finding", "doctor", "thread_hint"]


def _label(purposes: list[str], target: Target) -> str:
    return f"{'+'.join(purposes)} Redis ({target.name})"


def _server_memory(probe: Probe, info: dict[str, Any] | None,
                   info_problem: Problem | None) -> tuple[int | None, str | None, Problem | None]:
    """maxmemory and policy from INFO, or CONFIG GET when INFO is refused."""
    if info is not None and "maxmemory" in info:
        return as_int(info.get("maxmemory")), text_of(info.get("maxmemory_policy")), None
    data, problem = probe.call("CONFIG GET", probe.client.config_get, "maxmemory*")
    if problem is not None:
        if info_problem is not None and problem.permission:
            refused = problem.reason.removeprefix("no permission for ")
            return None, None, Problem(f"{info_problem.reason} or {refused}", permission=True)
        return None, None, problem
    data = flatten_info(data) if isinstance(data, dict) else {}
    return as_int(data.get("maxmemory")), text_of(data.get("maxmemory-policy")), None


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
        have = "has" if len(forever) == 1 else "have"
        return Finding(WARN, "ttl", f"{len(forever)} of {plural(sampled, 'sampled key')} under {prefix}: "
                       f"{have} no TTL (e.g. {forever[0][:80]})",
                       "give entries a timeout (REDIS_DEFAULT_TIMEOUT > 0; avoid timeout=0)")
    if sampled == 1:
        return Finding(PASS, "ttl", f"the 1 sampled key under {prefix}: expires")
    return Finding(PASS, "ttl", f"all {sampled} sampled keys under {prefix}: expire")


def doctor(app: Flask, state: AppState, threads: int | None = None,
           environ: Any = None) -> list[Finding]:
    """Check the app's Redis setup against the anti-patterns of the Rails guide.

    Config-only checks need no server; server checks prove each purpose can
    write, read and delete under its prefix, then use INFO (or CONFIG GET when
    INFO is refused) and SCAN, and say "skipped: no permission" when the ACL
    forbids those. Per-server findings carry the server as ``scope``.
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
    findings.append(default_timeout_finding(settings.default_timeout))
    findings.append(_separate_purposes_finding(state, targets, infos))
    declared = _declared_purposes_finding(state)
    if declared is not None:
        findings.append(declared)
    findings.append(pool_finding(settings.pool_size, settings.pool_timeout, threads, env))
    findings.append(timeouts_finding(settings.connect_timeout, settings.read_timeout))
    findings.append(worst_case_finding(settings))
    findings.append(error_handler_finding(settings.error_handler is not None, production))
    return findings


def _target_findings(state: AppState, target: Target, purposes: list[str], production: bool,
                     env: Any, infos: dict[int, dict[str, Any]]) -> list[Finding]:
    """The checks of one server; stores its INFO in ``infos`` for the cross-server checks."""
    if target.kind == "memory":
        return [Finding(FAIL if production else WARN, "memory-url", "memory:// is per process; gunicorn "
                        "workers would not share the cache or sessions",
                        "set REDIS_URL to a real server (redis:// or rediss://)")]
    out = security_findings(state, purposes)
    probe = Probe(target, settings_secrets(state.settings))
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
    prefixes = active_purposes(state)
    out.extend(_access_finding(probe, purpose, prefixes[purpose])
               for purpose in purposes if purpose in prefixes)  # REDIS_PURPOSES names: not our keys
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
    out.extend(_ttl_finding(probe, prefixes[purpose]) for purpose in purposes if purpose in prefixes)
    out.extend(_maxclients_finding(state, info, env))
    if "cache" in purposes and state.settings.local_cache == "process":
        out.append(_local_cache_finding(state, info))
    return out


def _local_cache_finding(state: AppState, info: dict[str, Any] | None) -> Finding:
    """``REDIS_LOCAL_CACHE = "process"``: can this process track keys, and at what cost?

    BCAST tracking keeps no per-key table on the server (``tracking-table-max-keys``
    does not apply to it); its cost is one invalidation message per tracking
    client for every write under the prefix, so many tracking clients warn.
    """
    problem = state.store.local_problem(TRACKING_WAIT)
    if problem is not None:
        return Finding(WARN, "local-cache", f'REDIS_LOCAL_CACHE = "process" cannot track keys '
                       f"({problem}); every read goes to Redis",
                       "let the cache user run CLIENT TRACKING: +client|id +client|tracking "
                       "+subscribe +ping &__redis__:invalidate (docs/local-cache.rst)")
    clients = as_int(info.get("tracking_clients")) if info is not None else None
    if clients is not None and clients > TRACKING_CLIENTS_WARN:
        return Finding(WARN, "local-cache", f"{clients} clients track keys on this server: each "
                       "write under a tracked prefix is sent to every one of them",
                       'fewer processes with REDIS_LOCAL_CACHE = "process" (or use "request")')
    counted = "" if clients is None else f" ({plural(clients, 'tracking client')} on the server)"
    return Finding(PASS, "local-cache", "invalidation tracking works" + counted)


def _access_finding(probe: Probe, purpose: str, prefix: str) -> Finding:
    """``access``: the purpose's user can SET, GET and UNLINK a probe key under its prefix."""
    problem = check_access(probe, purpose, prefix)
    if problem is None:
        return Finding(PASS, "access", f"{purpose} can write, read and delete under {prefix}:")
    if problem.permission:
        fix = (f"allow the key pattern ~{prefix}:* for this user (ACL SETUSER ... ~{prefix}:*)"
               if "key pattern" in problem.reason else "grant +@read +@write (see docs/topologies/acl)")
    else:
        fix = "see flask redis health; writes must succeed for the cache and sessions to work"
    return Finding(FAIL, "access", str(problem), fix)


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


def _declared_purposes_finding(state: AppState) -> Finding | None:
    """The Rails guide's separate instance for jobs: a ``REDIS_PURPOSES`` name
    on the same server and db as another purpose shares its memory, eviction
    policy and keyspace (a queue's keys evicted by the cache's ``allkeys-lru``)."""
    names = list(state.settings.purposes)
    if not names:
        return None
    urls = {"cache": state.settings.cache_url, "cable": state.settings.cable_url,
            **state.settings.purposes}
    if state.settings.session:
        urls["session"] = state.settings.session_url
    places = {purpose: location(url, state.settings) for purpose, url in urls.items()}
    shared = sorted(f"{name} and {other}" for name in names for other in urls
                    if other != name and places[other] == places[name]
                    and (other not in names or other > name))  # each pair of names once
    if shared:
        return Finding(WARN, "declared-purposes", "share one server and db: " + ", ".join(shared),
                       "give each REDIS_PURPOSES name its own REDIS_<NAME>_URL (its own server, or at "
                       "least its own db), so eviction and load of one cannot hit the other")
    return Finding(PASS, "declared-purposes", "each REDIS_PURPOSES name has its own server or db")


def _separate_purposes_finding(state: AppState, targets: list[tuple[Target, list[str]]],
                               infos: dict[int, dict[str, Any]]) -> Finding:
    if not state.settings.session:
        return Finding(PASS, "separate-purposes",
                       "sessions are off (REDIS_SESSION = False); only the cache uses Redis")
    if state.targets["cache"] is state.targets["session"]:
        return Finding(WARN, "separate-purposes", "cache and sessions share one Redis: cache load and "
                       "eviction (allkeys-lru) hit sessions too",
                       "give sessions their own server with REDIS_SESSION_URL "
                       "(maxmemory and eviction are per server)")
    cache_target, session_target = state.targets["cache"], state.targets["session"]
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


