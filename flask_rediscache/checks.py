"""The health check of each Redis target, shared by ``flask redis health``, doctor and the endpoint.

A target is healthy when it answers, and when every purpose it serves can
write, read and delete under its own prefix
(:func:`~flask_rediscache.probes.check_access`): "the server answers PING" is
not enough when an ACL key pattern, a replica or a full ``noeviction`` server
refuses every cache write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .clients import Target
from .info import fill_memory, role_of, server_info, text_of
from .probes import Probe, Problem, active_purposes, check_access, distinct_targets, settings_secrets

if TYPE_CHECKING:  # pragma: no cover
    from .state import AppState


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
    #: The server-level problem (unreachable, wrong password, timeout...).
    error: Problem | None = None
    #: purpose -> why it cannot write, read and delete under its prefix.
    access: dict[str, Problem] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def problem_for(self, purpose: str) -> Problem | None:
        """What keeps ``purpose`` from working on this target, if anything."""
        return self.error or self.access.get(purpose)

    def problems(self) -> list[Problem]:
        return [self.error] if self.error else list(self.access.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        problems = self.problems()
        data["error"] = "; ".join(str(p) for p in problems) or None
        data["reason"] = "; ".join(p.reason for p in problems) or None
        data["access"] = {purpose: (None if self.problem_for(purpose) is None else
                                    str(self.problem_for(purpose))) for purpose in self.purposes}
        return data


def check_target(target: Target, purposes: Iterable[str], prefixes: Mapping[str, str], *,
                 info: bool = True, secrets: Iterable[str] = ()) -> TargetHealth:
    """PING (twice: the first connects and authenticates, the second is timed),
    the write/read/delete probe of each purpose, then, with ``info``, one INFO
    for version, role and memory.

    A NOPERM on PING still proves the server is up and we are authenticated
    (the Rails guide's least-privilege user ``+@read +@write`` may not PING),
    so it is a note, not a failure; so is a refused INFO. A refused probe key
    is a failure: that purpose cannot work.
    """
    health = TargetHealth(target.name, target.kind, list(purposes))
    probe = Probe(target, secrets)
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
    for purpose in health.purposes:
        if purpose not in prefixes:  # a REDIS_PURPOSES name: its keys are not ours to probe
            continue
        refused = check_access(probe, purpose, prefixes[purpose])
        if refused is not None:
            health.access[purpose] = refused
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
    health.ok = health.error is None and not health.access
    return health


def _fill_info(health: TargetHealth, data: dict[str, Any], kind: str) -> None:
    health.version = text_of(data.get("redis_version"))
    health.role = role_of(data, kind)
    fill_memory(health, data)
    if str(data.get("loading", "0")) == "1":
        health.error = Problem("server is loading its dataset")


def check_one(state: AppState, target: Target, purposes: Iterable[str], *, info: bool = True) -> TargetHealth:
    """:func:`check_target` with the app's prefixes and configured secrets."""
    return check_target(target, purposes, active_purposes(state), info=info,
                        secrets=settings_secrets(state.settings))


def check_all(state: AppState, *, info: bool = True) -> list[TargetHealth]:
    """:func:`check_target` for every distinct target of the app's active purposes."""
    return [check_one(state, target, purposes, info=info) for target, purposes in distinct_targets(state)]
