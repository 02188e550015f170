"""The results of a run as plain data (the ``--json`` format) and as a text table.

Both the console output and ``benchmarks.report`` read the same dictionary,
so the published page can only show what a run printed.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from importlib import metadata
from typing import Any

from .goals import Goal, fmt_met, fmt_target, fmt_value
from .harness import Benchmark, paired_ratio

FORMAT_VERSION = 1
PACKAGES = ("flask-rediscache", "flask", "redis", "hiredis", "flask-caching", "flask-session", "cachelib")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def meta(*, redis_version: str, rounds: int, target_ms: float, quick: bool, seconds: float) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _git_commit(),
        "rounds": rounds,
        "target_ms": target_ms,
        "quick": quick,
        "seconds": round(seconds, 1),
    }


def _quartiles(samples: list[float]) -> tuple[float, float] | None:
    if len(samples) < 2:
        return None
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[0], q[2]


def to_dict(benches: list[Benchmark], goals: list[Goal], run_meta: dict[str, Any]) -> dict[str, Any]:
    out = []
    for b in benches:
        ref = b.get(b.ref)
        rows = []
        for c in b.contenders:
            median = c.median_us
            quart = _quartiles(c.samples_us)
            ratio = paired_ratio(c, ref) if ref is not None else None
            rows.append({
                "key": c.key,
                "label": c.label,
                "unavailable": c.unavailable,
                "ops_per_round": c.n,
                "samples_us": [round(s, 3) for s in c.samples_us],
                "median_us": None if median is None else round(median, 3),
                "p25_us": None if quart is None else round(quart[0], 3),
                "p75_us": None if quart is None else round(quart[1], 3),
                "ratio": None if ratio is None else round(ratio, 4),
                "round_trips": c.round_trips,
                "commands": c.commands,
            })
        out.append({"key": b.key, "title": b.title, "unit": b.unit, "ref": b.ref, "note": b.note,
                    "contenders": rows})
    return {"meta": run_meta, "benchmarks": out, "goals": [g.as_dict() for g in goals]}


def merge(path: str, section: str, payload: dict[str, Any], goals: list[Goal]) -> None:
    """Add the results of a benchmark run on its own (``python -m benchmarks.invalidation``,
    ``benchmarks.rss``) to the JSON at ``path``: ``payload`` under ``section``, and ``goals``
    replacing any of the same keys. A missing file is started with just these."""
    data: dict[str, Any] = {"goals": []}
    if os.path.exists(path):
        with open(path) as fh:
            data = json.load(fh)
    data[section] = payload
    keys = {g.key for g in goals}
    data["goals"] = [g for g in data.get("goals", []) if g["key"] not in keys] + [g.as_dict() for g in goals]
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False)
        fh.write("\n")


def fmt_commands(commands: dict[str, float]) -> str:
    """``{"mget": 1, "get": 1}`` → ``"MGET + GET"``; ``{"set": 100}`` → ``"100 SET"``."""
    if not commands:
        return "none"
    parts = []
    for name, calls in commands.items():
        shown = name.upper().replace("|", " ")
        parts.append(shown if calls == 1 else f"{calls:g} {shown}")
    return " + ".join(parts)


def fmt_trips(trips: float | None) -> str:
    return "-" if trips is None else f"{trips:g}"


def table(results: dict[str, Any]) -> str:
    """The console report: every benchmark, then the goals."""
    m = results["meta"]
    lines = [
        f"flask-rediscache benchmarks: medians of {m['rounds']} interleaved rounds, "
        f"redis-server {m['redis_server']} on loopback, Python {m['python']}, {m['cpus']} CPUs"
        + (" (--quick: smoke run, numbers are rough)" if m["quick"] else ""),
        "",
    ]
    head = f"  {'contender':<64} {'median':>12} {'p25–p75':>17} {'ratio':>7} {'trips':>6}  commands"
    for b in results["benchmarks"]:
        lines.append(f"{b['title']}  (µs per {b['unit']}; ratio against {b['ref']})")
        lines.append(head)
        for c in b["contenders"]:
            name = f"{c['key']}: {c['label']}"
            if c["unavailable"]:
                lines.append(f"  {name:<64} {'n/a':>12}  {c['unavailable']}")
                continue
            spread = f"{c['p25_us']:.1f}–{c['p75_us']:.1f}" if c["p25_us"] is not None else ""
            ratio = f"{c['ratio']:.2f}×" if c["ratio"] is not None else "-"
            lines.append(f"  {name:<64} {c['median_us']:>12.1f} {spread:>17} {ratio:>7} "
                         f"{fmt_trips(c['round_trips']):>6}  {fmt_commands(c['commands'])}")
        lines.append("")
    lines.append("Goals")
    for g in results["goals"]:
        lines.append(f"  {g['label']:<86} {fmt_value(g):>8}  goal {fmt_target(g):<16} {fmt_met(g)}")
        lines.append(f"      {g['detail']}")
    return "\n".join(lines)
