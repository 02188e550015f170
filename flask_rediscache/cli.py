"""The ``flask redis`` command group: health, stats, clear, keys, doctor.

What an operator types at 3 a.m., so every command is quick, prints one clear
line per problem (never a traceback), masks passwords, and exits non-zero
when something is wrong (``flask redis health`` works as a container
healthcheck). The checks live in :mod:`flask_rediscache.health`; this module
only runs them and formats the results.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from flask import current_app
from flask.cli import AppGroup

from . import signals
from .doctor import Finding, doctor
from .guard import mask_credentials
from .health import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Probe,
    TargetHealth,
    TargetStats,
    check_all,
    count_keys,
    describe_error,
    describe_keys,
    distinct_targets,
    namespace_match,
    process_counters,
    scan_keys,
    server_dbsize,
    target_stats,
)

if TYPE_CHECKING:  # extension.py imports this module to register the group
    from .extension import AppState

F = TypeVar("F", bound=Callable[..., Any])

#: Namespaces (well, databases) smaller than this are scanned without a progress bar.
PROGRESS_MIN_KEYS = 10_000

redis_cli = AppGroup("redis", help="Check and manage the app's Redis: health, stats, clear, keys, doctor.")


# -- helpers ---------------------------------------------------------------------
def _echo(text: str = "", err: bool = False) -> None:
    """Every line goes through here: a last line of defence against printing a password."""
    click.echo(mask_credentials(text), err=err)


def _fail(message: str) -> None:
    _echo(f"Error: {message}", err=True)
    sys.exit(1)


def _one_line_errors(func: F) -> F:
    """Turn any unexpected exception into ``Error: <one line>`` and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            _fail(f"{type(exc).__name__}: {text[0] if text else ''}")
    return cast(F, wrapper)


def _state() -> AppState:
    from .extension import STATE_KEY

    try:
        return cast("AppState", current_app.extensions[STATE_KEY])
    except KeyError:
        raise click.ClickException(
            "flask-rediscache is not initialised on this app (RedisCache(app))") from None


def _dump(data: Any) -> None:
    _echo(json.dumps(data, indent=2, default=str))


@contextmanager
def _progress(total: int, label: str, enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr (stdout stays clean for ``--json``) for big databases.

    Yields ``step(n)`` or None when no bar is wanted. SCAN gives no exact
    position, so the bar advances by the keys each SCAN call examined, out of DBSIZE.
    """
    if not enabled or total < PROGRESS_MIN_KEYS:
        yield None
        return
    done = 0
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        def step(n: int) -> None:
            nonlocal done
            n = min(n, total - done)
            if n > 0:
                done += n
                bar.update(n)

        yield step
        bar.update(total - done)  # SCAN's steps are estimates: end at 100%


def _bytes(value: int | None, human: str | None) -> str:
    if human:
        return human
    return "?" if value is None else f"{value}B"


def _memory(used: int | None, used_h: str | None, maximum: int | None, max_h: str | None) -> str:
    limit = "no limit" if maximum == 0 else _bytes(maximum, max_h)
    return f"{_bytes(used, used_h)} / {limit}"


def _duration(seconds: int | None) -> str:
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
    """One line per target: ``OK``/``FAIL``, purposes, masked URL, then details or the reason."""
    who = "+".join(check.purposes)
    if not check.ok:
        return f"{click.style('FAIL', fg='red')}  {who:<13} {check.name}  {check.error}"
    parts = [f"{click.style('OK  ', fg='green')}  {who:<13} {check.name}"]
    if check.latency_ms is not None:
        parts.append(f"{check.latency_ms:.2f} ms")
    if check.version:
        parts.append(f"redis {check.version}")
    if check.role:
        parts.append(check.role)
    if check.used_memory is not None:
        parts.append("memory " + _memory(check.used_memory, check.used_memory_human,
                                         check.maxmemory, check.maxmemory_human))
    if check.maxmemory_policy:
        parts.append(f"policy {check.maxmemory_policy}")
    parts.extend(f"({note})" for note in check.notes)
    return "  ".join(parts)


@redis_cli.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_one_line_errors
def health_command(as_json: bool) -> None:
    """PING every configured Redis (cache, session): latency, version, role, memory.

    Exits 0 when all are healthy and 1 otherwise, so it works as a container
    healthcheck: ``flask redis health``.
    """
    checks = check_all(_state())
    ok = all(check.ok for check in checks)
    if as_json:
        _dump({"status": "ok" if ok else "error", "targets": [check.to_dict() for check in checks]})
    else:
        for check in checks:
            _echo(format_health(check))
    sys.exit(0 if ok else 1)


# -- stats -----------------------------------------------------------------------
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
        memory = _memory(stats.used_memory, stats.used_memory_human, stats.maxmemory, stats.maxmemory_human)
        row("memory", f"{memory}  (policy {stats.maxmemory_policy})")
        row("connected clients", stats.connected_clients)
    if stats.dbsize is not None:
        row("keys in database", stats.dbsize)
    for prefix, count in stats.keys.items():
        row(f"keys under {prefix}", count)
    lines.extend(f"  ({note})" for note in stats.notes)
    return lines


@redis_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_one_line_errors
def stats_command(as_json: bool) -> None:
    """Server hit/miss counters, memory, evictions and the keys in the namespace.

    Also prints this process's own counters; from the CLI they only count the
    CLI's calls (web workers keep their own).
    """
    state = _state()
    results = []
    for target, purposes in distinct_targets(state):
        with ExitStack() as bars:
            def progress(total: int, label: str) -> Callable[[int], None] | None:
                return bars.enter_context(_progress(total, label, enabled=not as_json))

            results.append(target_stats(state, target, purposes, progress))
    own = process_counters(state)
    failed = any(stats.error is not None for stats in results)
    if as_json:
        _dump({"status": "error" if failed else "ok", "targets": [s.to_dict() for s in results],
               "process": own})
    else:
        for stats in results:
            for line in format_stats(stats):
                _echo(line)
        errors = ", ".join(f"{purpose} {count}" for purpose, count in own["errors"].items())
        _echo(f"this process: cache hits {own['cache_hits']}, misses {own['cache_misses']}, "
              f"errors: {errors}")
    sys.exit(1 if failed else 0)


# -- clear -----------------------------------------------------------------------
def _clear(state: AppState, probe: Probe, count: int, label: str) -> tuple[int, BaseException | None]:
    """Run the cache's own ``clear()`` (SCAN + UNLINK inside the namespace).

    ``clear()`` fails open like every cache method, so its error is caught
    from the ``cache_error`` signal. On a large namespace it runs in a thread
    while the bar follows DBSIZE (O(1)) going down.
    """
    errors: list[BaseException] = []

    def on_error(sender: Any, exception: BaseException | None = None, **kwargs: Any) -> None:
        if exception is not None:
            errors.append(exception)

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with signals.cache_error.connected_to(on_error, sender=app):
        start, _ = probe.call("DBSIZE", server_dbsize, probe.target)
        if count < PROGRESS_MIN_KEYS or not isinstance(start, int):
            return int(state.cache.clear()), (errors[0] if errors else None)
        result: list[int] = [0]

        def work() -> None:
            with app.app_context():
                result[0] = int(state.cache.clear())

        worker = threading.Thread(target=work, name="flask-redis-clear", daemon=True)
        shown = 0
        with click.progressbar(length=count, label=label, file=sys.stderr) as bar:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                now, _ = probe.call("DBSIZE", server_dbsize, probe.target)
                if isinstance(now, int):
                    gone = min(count, max(0, start - now))
                    if gone > shown:
                        bar.update(gone - shown)
                        shown = gone
            bar.update(count - shown)
    return result[0], (errors[0] if errors else None)


@redis_cli.command("clear")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_one_line_errors
def clear_command(yes: bool) -> None:
    """Delete every key in the cache namespace (``<REDIS_NAMESPACE>:*``) and nothing else.

    Uses SCAN + UNLINK, never FLUSHDB: other data and sessions in the same
    database survive. Asks first unless ``--yes``.
    """
    state = _state()
    target = state.targets["cache"]
    prefix = state.settings.namespace
    match = namespace_match(prefix)
    probe = Probe(target)
    total, problem = probe.call("DBSIZE", server_dbsize, target)
    if problem is not None and not problem.permission:
        _fail(f"cache Redis ({target.name}): {problem}")
    total = total or 0
    with _progress(total, f"Counting {prefix}:* keys") as step:
        count, problem = probe.call("SCAN", count_keys, target, match, step)
    if problem is not None:
        _fail(f"cache Redis ({target.name}): {problem}")
    if count == 0:
        _echo(f"Nothing to clear: no keys under {prefix}: on {target.name}.")
        return
    if not yes and not click.confirm(f"Delete {count} keys under {prefix}: on {target.name}? "
                                     "(nothing outside the namespace is touched)", default=False):
        _echo("Aborted; nothing was deleted.")
        sys.exit(1)
    removed, error = _clear(state, probe, count, f"Deleting {prefix}:* keys")
    if error is not None:
        problem = describe_error(error, "UNLINK", probe.secrets, probe.has_password)
        _fail(f"cache Redis ({target.name}): clearing stopped after removing {removed} keys: {problem}")
    _echo(f"Removed {removed} keys under {prefix}: from {target.name}.")


# -- keys ------------------------------------------------------------------------
@redis_cli.command("keys")
@click.argument("pattern", default="*")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_one_line_errors
def keys_command(pattern: str, limit: int, as_json: bool) -> None:
    """List keys in the cache namespace matching PATTERN (a glob, default ``*``),
    with their TTL and size.

    The pattern is matched inside the namespace: ``flask redis keys 'user:*'``
    lists ``<namespace>:user:*``. Sizes come from MEMORY USAGE, or STRLEN when
    the ACL refuses it.
    """
    state = _state()
    target = state.targets["cache"]
    prefix = state.settings.namespace
    probe = Probe(target)

    def collect() -> list[bytes]:
        found: list[bytes] = []
        for key in scan_keys(target, namespace_match(prefix, pattern)):
            found.append(key)
            if len(found) > limit:
                break
        return found

    found, problem = probe.call("SCAN", collect)
    if problem is not None:
        _fail(f"cache Redis ({target.name}): {problem}")
    more = len(found) > limit
    described, problem = probe.call("TTL", describe_keys, target, sorted(found[:limit]))
    if problem is not None:
        _fail(f"cache Redis ({target.name}): {problem}")
    infos, notes = described
    if as_json:
        _dump({"namespace": prefix, "pattern": pattern, "truncated": more, "notes": notes,
               "keys": [{"key": k.key, "ttl": k.ttl, "size": k.size, "size_source": k.size_source}
                        for k in infos]})
        return
    if not infos:
        _echo(f"No keys under {prefix}: match {pattern!r} on {target.name}.")
        return
    _echo(f"{'TTL':>9}  {'SIZE':>9}  KEY")
    for info in infos:
        size = "?" if info.size is None else f"{info.size}B"
        _echo(f"{_duration(info.ttl):>9}  {size:>9}  {info.key}")
    for note in notes:
        _echo(f"({note})")
    shown = f"{len(infos)} keys" + (f"; more match, raise --limit (now {limit})" if more else "")
    _echo(f"{shown} under {prefix}: on {target.name}")


# -- doctor ----------------------------------------------------------------------
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
    lines.append(f"{counts[FAIL]} failed, {counts[WARN]} warnings, {counts[PASS]} passed, "
                 f"{counts[SKIP]} skipped")
    return lines


@redis_cli.command("doctor")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads per worker (default: GUNICORN_THREADS, THREADS or GUNICORN_CMD_ARGS).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_one_line_errors
def doctor_command(threads: int | None, as_json: bool) -> None:
    """Check the setup against the Rails guide's anti-patterns (pass/warn/fail/skip, with fixes).

    Exits 1 when any check fails. Checks the ACL does not allow are reported as
    skipped, not failed.
    """
    findings = doctor(current_app, _state(), threads)
    failed = any(f.status == FAIL for f in findings)
    if as_json:
        _dump({"status": "fail" if failed else "ok", "findings": [asdict(f) for f in findings]})
    else:
        for line in format_findings(findings):
            _echo(line)
    sys.exit(1 if failed else 0)


__all__ = ["format_finding", "format_findings", "format_health", "format_stats", "redis_cli"]
