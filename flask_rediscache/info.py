"""Server facts from ``INFO`` and ``DBSIZE``, and the numbers behind ``flask redis stats``.

On a Cluster, counters are summed over the primaries and the weakest memory
setting is kept (so doctor flags any node). Refused ``INFO`` (an ACL user
without ``+info``) is a note, not a failure: the server answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .clients import Target
from .keyspace import count_keys, printable
from .probes import Probe, Problem, active_purposes, namespace_match

if TYPE_CHECKING:  # pragma: no cover
    from .state import AppState

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


def role_of(info: dict[str, Any], kind: str) -> str | None:
    """``master``, ``replica``, ``cluster of 3 primaries``, ``master via sentinel``..."""
    role = info.get("role")
    if role is None:
        return None
    text = {"slave": "replica"}.get(str(role), str(role))
    if "cluster_primaries" in info:
        text = f"cluster of {info['cluster_primaries']} primaries"
    elif str(info.get("cluster_enabled", "0")) == "1":
        text += ", cluster node"
    if kind == "sentinel":
        text += " via sentinel"
    return printable(text)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def text_of(value: Any) -> str | None:
    """An INFO string field, escaped for printing (None stays None)."""
    return None if value is None else printable(str(value))


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


def target_stats(state: AppState, probe: Probe, purposes: list[str],
                 progress: Callable[[int, str], Any] | None = None) -> TargetStats:
    """INFO counters plus a SCAN count of each purpose's prefix on the probe's target.

    ``progress(dbsize, label)`` may return a ``step(n)`` callback (the CLI's
    progress bar) or None.
    """
    target = probe.target
    stats = TargetStats(target.name, list(purposes))
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
            _fill_stats(stats, data)
    prefixes = active_purposes(state)
    for purpose in purposes:
        if purpose not in prefixes:  # a REDIS_PURPOSES name: its keys are not ours
            continue
        prefix = prefixes[purpose]
        step = progress(stats.dbsize or 0, f"Counting {prefix}:* keys") if progress else None
        count, problem = probe.call("SCAN", count_keys, target, namespace_match(prefix), step)
        if problem is not None:
            stats.error = problem
            return stats
        stats.keys[f"{prefix}:"] = count
    return stats


def fill_memory(facts: Any, info: dict[str, Any]) -> None:
    """Copy INFO's memory fields onto a health or stats record (they share the names)."""
    facts.used_memory = as_int(info.get("used_memory"))
    facts.used_memory_human = text_of(info.get("used_memory_human"))
    facts.maxmemory = as_int(info.get("maxmemory"))
    facts.maxmemory_human = text_of(info.get("maxmemory_human"))
    facts.maxmemory_policy = text_of(info.get("maxmemory_policy"))


def _fill_stats(stats: TargetStats, info: dict[str, Any]) -> None:
    stats.keyspace_hits = as_int(info.get("keyspace_hits"))
    stats.keyspace_misses = as_int(info.get("keyspace_misses"))
    stats.hit_ratio = ratio(stats.keyspace_hits, stats.keyspace_misses)
    stats.evicted_keys = as_int(info.get("evicted_keys"))
    fill_memory(stats, info)
    stats.connected_clients = as_int(info.get("connected_clients"))


def process_counters(state: AppState) -> dict[str, Any]:
    """This process's own counters (a CLI process only sees its own calls)."""
    cache = state.cache
    return {
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "hit_ratio": ratio(cache.hits, cache.misses),
        "errors": {purpose: boundary.errors for purpose, boundary in state.boundaries.items()},
        "local_cache": state.store.local_stats(),  # None: REDIS_LOCAL_CACHE is off
    }
