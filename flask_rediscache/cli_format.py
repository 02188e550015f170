"""How ``flask redis`` prints: masked, escaped, one line per problem.

Every line leaves through :func:`echo`, which masks passwords (URL userinfo,
``password=`` values and the app's configured passwords) and writes any
non-printable character as a visible escape (``\\x1b``), so neither a
password nor a key name crafted by a visitor reaches the terminal as is.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from . import config, errors
from .checks import TargetHealth
from .doctor_config import Finding, plural
from .info import TargetStats
from .keyspace import printable
from .masking import mask
from .probes import FAIL, PASS, SKIP, WARN

#: ``click.Context.meta`` key holding the passwords to mask in this command's output.
SECRETS_META = "flask_rediscache.secrets"

_SGR = re.compile(r"(\x1b\[[0-9;]*m)")  # the colours click.style adds


def safe(text: str) -> str:
    """Mask passwords, then escape every non-printable character except line
    breaks and our own colours (names from Redis are already escaped at the source)."""
    ctx = click.get_current_context(silent=True)
    secrets = ctx.meta.get(SECRETS_META, ()) if ctx is not None else ()
    text = mask(text, secrets)
    return "\n".join("".join(part if _SGR.fullmatch(part) else printable(part) for part in _SGR.split(line))
                     for line in text.split("\n"))


def echo(text: str = "", err: bool = False) -> None:
    """Every line goes through here."""
    click.echo(safe(text), err=err)


def fail(message: str) -> None:
    echo(f"Error: {message}", err=True)
    sys.exit(1)


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, (config.ConfigError, errors.ConfigError, click.ClickException)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def dump(data: Any) -> None:
    echo(json.dumps(data, indent=2, default=str))


def size_text(value: int | None, human: str | None) -> str:
    if human:
        return human
    return "?" if value is None else f"{value}B"


def memory_text(used: int | None, used_h: str | None, maximum: int | None, max_h: str | None) -> str:
    limit = "no limit" if maximum == 0 else size_text(maximum, max_h)
    return f"{size_text(used, used_h)} / {limit}"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "none"
    if seconds < 120:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"


STATUS_STYLE = {PASS: ("PASS", "green"), WARN: ("WARN", "yellow"), FAIL: ("FAIL", "red"),
                SKIP: ("SKIP", "cyan")}


# -- health ----------------------------------------------------------------------
def format_health(check: TargetHealth) -> str:
    """One line per target: ``OK``/``FAIL``, purposes, masked URL, then details or the reasons."""
    who = "+".join(check.purposes)
    if not check.ok:
        reasons = "; ".join(str(problem) for problem in check.problems())
        return f"{click.style('FAIL', fg='red')}  {who:<13} {check.name}  {reasons}"
    parts = [f"{click.style('OK  ', fg='green')}  {who:<13} {check.name}"]
    if check.latency_ms is not None:
        parts.append(f"{check.latency_ms:.2f} ms")
    if check.version:
        parts.append(f"redis {check.version}")
    if check.role:
        parts.append(check.role)
    if check.used_memory is not None:
        parts.append("memory " + memory_text(check.used_memory, check.used_memory_human,
                                         check.maxmemory, check.maxmemory_human))
    if check.maxmemory_policy:
        parts.append(f"policy {check.maxmemory_policy}")
    parts.extend(f"({note})" for note in check.notes)
    return "  ".join(parts)


def format_stats(stats: TargetStats) -> list[str]:
    """A header line for the server, then one ``label  value`` row per counter."""
    lines = [f"{'+'.join(stats.purposes)} Redis ({stats.name})"]
    if stats.error is not None:
        return [*lines, f"  {click.style('FAIL', fg='red')}  {stats.error}"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<20} {value}")

    if stats.keyspace_hits is not None:
        ratio = "-" if stats.hit_ratio is None else f"{stats.hit_ratio:.1%}"
        row("keyspace hits", f"{stats.keyspace_hits}  misses {stats.keyspace_misses}  hit ratio {ratio}")
        row("evicted keys", stats.evicted_keys)
        memory = memory_text(stats.used_memory, stats.used_memory_human,
                             stats.maxmemory, stats.maxmemory_human)
        row("memory", f"{memory}  (policy {stats.maxmemory_policy})")
        row("connected clients", stats.connected_clients)
    if stats.dbsize is not None:
        row("keys in database", stats.dbsize)
    for prefix, count in stats.keys.items():
        row(f"keys under {prefix}", count)
    lines.extend(f"  ({note})" for note in stats.notes)
    return lines


def format_local_cache(stats: dict[str, Any]) -> str:
    """One line for ``REDIS_LOCAL_CACHE`` in this process (see docs/local-cache.rst)."""
    ratio = "-" if stats.get("hit_ratio") is None else f"{stats['hit_ratio']:.1%}"
    line = f"this process: local cache ({stats['mode']}) hits {stats['hits']}, hit ratio {ratio}"
    if stats["mode"] == "process":
        state = "up" if stats["tracking"] else "down"
        line += (f", {stats['entries']} entries, {stats['bytes']} bytes, {stats['invalidations']} "
                 f"invalidations received, tracking {state}")
    return line


def format_finding(finding: Finding) -> list[str]:
    """``STATUS  check  message`` and, for warn/fail, an indented ``fix:`` line."""
    word, color = STATUS_STYLE[finding.status]
    lines = [f"  {click.style(word, fg=color)}  {finding.check:<18} {finding.message}"]
    if finding.fix and finding.status in (WARN, FAIL):
        lines.append(f"{'':8}{'':19}fix: {finding.fix}")
    return lines


def format_findings(findings: list[Finding]) -> list[str]:
    """Findings grouped under their server (or "settings"), then a summary line."""
    lines: list[str] = []
    scopes = list(dict.fromkeys(f.scope for f in findings))
    for scope in sorted(scopes, key=lambda s: s == ""):  # servers first, app settings last
        lines.append(scope or "settings")
        for finding in findings:
            if finding.scope == scope:
                lines.extend(format_finding(finding))
    counts = {status: sum(f.status == status for f in findings) for status in (FAIL, WARN, PASS, SKIP)}
    lines.append("")
    lines.append(f"{counts[FAIL]} failed, {plural(counts[WARN], 'warning')}, {counts[PASS]} passed, "
                 f"{counts[SKIP]} skipped")
    return lines
