"""The ``flask redis`` command group: health, stats, clear, keys, doctor, broadcast.

What an operator types at 3 a.m., so every command is quick, prints one clear
line per problem (never a traceback), masks passwords, escapes non-printable
characters, and exits non-zero when something is wrong (``flask redis
health`` works as a container healthcheck).

The group loads the app itself (through Flask's ``ScriptInfo``), so it is
usable from the ``flask.commands`` entry point even when the app fails to
start: the command then prints the error in one line and exits 1. It talks to
Redis through the strict store and clients (never the fail-open API), so the
real error is what gets reported. This module only runs the diagnostics
(:mod:`~flask_rediscache.checks`, :mod:`~flask_rediscache.info`,
:mod:`~flask_rediscache.keyspace`, :mod:`~flask_rediscache.doctor`) and
formats them.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from flask import has_app_context
from flask.cli import ScriptInfo

from .cable import check_channel, encode
from .checks import check_all
from .cli_format import (
    SECRETS_META,
    dump,
    duration,
    echo,
    fail,
    format_finding,
    format_findings,
    format_health,
    format_local_cache,
    format_stats,
    one_line,
    safe,
)
from .doctor import doctor
from .doctor_config import plural
from .info import process_counters, server_dbsize, target_stats
from .keyspace import count_keys, describe_keys, printable, scan_keys
from .probes import FAIL, Probe, distinct_targets, namespace_match, settings_secrets
from .state import get_state

if TYPE_CHECKING:  # pragma: no cover
    from .state import AppState

F = TypeVar("F", bound=Callable[..., Any])

#: Namespaces (well, databases) smaller than this are scanned without a progress bar.
PROGRESS_MIN_KEYS = 10_000

MEMORY_NOTICE = ("Note: memory:// is a per-process store; this command sees the CLI process's own "
                 "(empty) store, not the running app's. Set REDIS_URL to a real Redis server "
                 "(redis://host:6379/0) to inspect what the app stores.")


@click.group("redis")
def redis_cli() -> None:
    """Check and manage the app's Redis: health, stats, clear, keys, doctor, broadcast."""


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
    with click.progressbar(length=total, label=safe(label), file=sys.stderr) as bar:
        def step(n: int) -> None:
            nonlocal done
            n = min(n, total - done)
            if n > 0:
                done += n
                bar.update(n)

        yield step
        bar.update(total - done)  # SCAN's steps are estimates: end at 100%



@contextmanager
def _app_context() -> Iterator[None]:
    """The app's context: the current one, or the app Flask's CLI was told to load."""
    if has_app_context():
        yield
        return
    info = click.get_current_context().ensure_object(ScriptInfo)
    try:
        app = info.load_app()
    except Exception as exc:  # a ConfigError from init_app, an import error, no app found...
        fail(f"could not load the app: {one_line(exc)}")
        return  # pragma: no cover - _fail exits
    with app.app_context():
        yield


def _state() -> AppState:
    try:
        return get_state()
    except RuntimeError:
        raise click.ClickException(
            "flask-rediscache is not initialised on this app (RedisCache(app) or init_app(app))") from None


def _command(name: str) -> Callable[[F], Any]:
    """A ``flask redis`` subcommand: loads the app, passes its state, turns any
    error into ``Error: <one line>`` with exit 1, and says so on memory://."""

    def decorate(func: F) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                with _app_context():
                    state = _state()
                    click.get_current_context().meta[SECRETS_META] = settings_secrets(state.settings)
                    if any(target.kind == "memory" for target, _ in distinct_targets(state)):
                        echo(MEMORY_NOTICE, err=True)
                    return func(state, *args, **kwargs)
            except (click.exceptions.Exit, click.Abort, SystemExit):
                raise
            except Exception as exc:
                fail(one_line(exc))

        return redis_cli.command(name)(cast(F, wrapper))

    return decorate


def _cache_target(state: AppState) -> Any:
    """The cache purpose's target, or one clear line when the cache is disabled."""
    target = state.targets["cache"]
    if target.client is None:
        raise click.ClickException("the cache is disabled (REDIS_CACHE_ENABLED = False or CACHE_TYPE = "
                                   "'NullCache'): it stores nothing and has no server")
    return target


@_command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def health_command(state: AppState, as_json: bool) -> None:
    """Check every configured Redis (cache, session): PING, latency, version,
    role, memory, and a write/read/delete probe under each purpose's prefix.

    Exits 0 when all are healthy and 1 otherwise, so it works as a container
    healthcheck.
    """
    checks = check_all(state)
    ok = all(check.ok for check in checks)
    if as_json:
        dump({"status": "ok" if ok else "error", "targets": [check.to_dict() for check in checks]})
    else:
        for check in checks:
            echo(format_health(check))
    sys.exit(0 if ok else 1)


# -- stats -----------------------------------------------------------------------
@_command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def stats_command(state: AppState, as_json: bool) -> None:
    """Server hit/miss counters, memory, evictions and the keys in the namespace.

    Also prints this process's own counters; from the CLI they only count the
    CLI's calls (web workers keep their own).
    """
    secrets = settings_secrets(state.settings)
    results = []
    for target, purposes in distinct_targets(state):
        with ExitStack() as bars:
            def progress(total: int, label: str) -> Callable[[int], None] | None:
                return bars.enter_context(_progress(total, label, enabled=not as_json))

            results.append(target_stats(state, Probe(target, secrets), purposes, progress))
    own = process_counters(state)
    failed = any(stats.error is not None for stats in results)
    if as_json:
        dump({"status": "error" if failed else "ok", "targets": [s.to_dict() for s in results],
               "process": own})
    else:
        for stats in results:
            for line in format_stats(stats):
                echo(line)
        errors = ", ".join(f"{purpose} {count}" for purpose, count in own["errors"].items())
        echo(f"this process: cache hits {own['cache_hits']}, misses {own['cache_misses']}, "
              f"errors: {errors}")
        local = own["local_cache"]
        if local is not None:
            echo(format_local_cache(local))
    sys.exit(1 if failed else 0)


# -- clear -----------------------------------------------------------------------
@_command("clear")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text (needs --yes).")
def clear_command(state: AppState, yes: bool, as_json: bool) -> None:
    """Delete every key in the cache namespace (REDIS_NAMESPACE:*) and nothing else.

    Uses SCAN + UNLINK, never FLUSHDB: other data and sessions in the same
    database survive. Asks first unless --yes is given.
    """
    if as_json and not yes:
        raise click.ClickException("--json does not ask for confirmation: add --yes")
    target = _cache_target(state)
    prefix = state.settings.namespace
    match = namespace_match(prefix)
    probe = Probe(target, settings_secrets(state.settings))
    where = f"cache Redis ({target.name})"
    total, problem = probe.call("DBSIZE", server_dbsize, target)
    if problem is not None and not problem.permission:
        fail(f"{where}: {problem}")
    with _progress(total or 0, f"Counting {prefix}:* keys", enabled=not as_json) as step:
        count, problem = probe.call("SCAN", count_keys, target, match, step)
    if problem is not None:
        fail(f"{where}: {problem}")
    if count == 0:
        if as_json:
            dump({"status": "ok", "namespace": prefix, "deleted": 0})
        else:
            echo(f"Nothing to clear: no keys under {prefix}: on {target.name}.")
        return
    question = safe(f"Delete {plural(count, 'key')} under {prefix}: on {target.name}? "
                     "(nothing outside the namespace is touched)")
    if not yes and not click.confirm(question, default=False):
        echo("Aborted; nothing was deleted.")
        sys.exit(1)
    deleted = 0
    with ExitStack() as stack:
        bar = (stack.enter_context(click.progressbar(length=count, label=safe(f"Deleting {prefix}:* keys"),
                                                     file=sys.stderr))
               if count >= PROGRESS_MIN_KEYS and not as_json else None)

        def progress(done: int) -> None:
            nonlocal deleted
            if bar is not None and done > deleted:
                bar.update(min(done, count) - min(deleted, count))
            deleted = done

        try:
            deleted = state.store.delete_matching(match.encode("utf-8", "surrogatepass"), progress=progress)
        except Exception as exc:  # SCAN already worked above: what fails here is the UNLINK
            fail(f"{where}: clearing stopped after removing {plural(deleted, 'key')}: "
                  f"{probe.describe(exc, 'UNLINK')}")
    if as_json:
        dump({"status": "ok", "namespace": prefix, "deleted": deleted})
    else:
        echo(f"Removed {plural(deleted, 'key')} under {prefix}: from {target.name}.")


# -- keys ------------------------------------------------------------------------
@_command("keys")
@click.argument("pattern", default="*")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def keys_command(state: AppState, pattern: str, limit: int, as_json: bool) -> None:
    """List keys in the cache namespace matching PATTERN (a glob, default *),
    with their TTL and size.

    The pattern is matched inside the namespace: flask redis keys 'user:*'
    lists <namespace>:user:*. Sizes come from MEMORY USAGE, or STRLEN when
    the ACL refuses it. Non-printable characters in key names are shown
    escaped (\\x1b).
    """
    target = _cache_target(state)
    prefix = state.settings.namespace
    probe = Probe(target, settings_secrets(state.settings))
    where = f"cache Redis ({target.name})"

    def collect() -> list[bytes]:
        found: list[bytes] = []
        for key in scan_keys(target, namespace_match(prefix, pattern)):
            found.append(key)
            if len(found) > limit:
                break
        return found

    found, problem = probe.call("SCAN", collect)
    if problem is not None:
        fail(f"{where}: {problem}")
    more = len(found) > limit
    described, problem = probe.call("TTL", describe_keys, target, sorted(found[:limit]))
    if problem is not None:
        fail(f"{where}: {problem}")
    infos, notes = described
    shown_pattern = printable(pattern)
    if as_json:
        dump({"namespace": prefix, "pattern": shown_pattern, "truncated": more, "notes": notes,
               "keys": [{"key": k.key, "ttl": k.ttl, "size": k.size, "size_source": k.size_source}
                        for k in infos]})
        return
    if not infos:
        echo(f"No keys under {prefix}: match '{shown_pattern}' on {target.name}.")
        return
    echo(f"{'TTL':>9}  {'SIZE':>9}  KEY")
    for info in infos:
        size = "?" if info.size is None else f"{info.size}B"
        echo(f"{duration(info.ttl):>9}  {size:>9}  {info.key}")
    for note in notes:
        echo(f"({note})")
    shown = plural(len(infos), "key") + (f"; more match, raise --limit (now {limit})" if more else "")
    echo(f"{shown} under {prefix}: on {target.name}")


# -- doctor ----------------------------------------------------------------------
@_command("doctor")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads per worker (default: GUNICORN_THREADS, THREADS or GUNICORN_CMD_ARGS).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def doctor_command(state: AppState, threads: int | None, as_json: bool) -> None:
    """Check the setup against the Rails guide's anti-patterns (pass/warn/fail/skip, with fixes).

    Exits 1 when any check fails and 0 otherwise (warnings included). Checks
    the ACL does not allow are reported as skipped, not failed.
    """
    findings = doctor(state.app, state, threads)
    failed = any(f.status == FAIL for f in findings)
    if as_json:
        dump({"status": "fail" if failed else "ok", "findings": [asdict(f) for f in findings]})
    else:
        for line in format_findings(findings):
            echo(line)
    sys.exit(1 if failed else 0)


# -- broadcast -------------------------------------------------------------------
@_command("broadcast")
@click.argument("channel")
@click.argument("data")
@click.option("--event", "-e", default=None, help="Event name (default: a plain message, onmessage).")
def broadcast_command(state: AppState, channel: str, data: str, event: str | None) -> None:
    """Send DATA (one JSON value) to CHANNEL's open streams in every process.

    What rediscache.broadcast(channel, data) does in the app, from the shell,
    e.g. flask redis broadcast product:3 '{"stock": 2}'. Prints the message
    id; a Redis failure is reported (exit 1), not swallowed.
    """
    try:
        value = json.loads(data)
    except ValueError as exc:
        fail(f"DATA is not valid JSON ({exc}); quote it for the shell, e.g. '{{\"stock\": 2}}'")
        return  # pragma: no cover - fail exits
    check_channel(channel)
    encode(value, event)  # a bad event name is a usage error, before any Redis call
    target = state.targets["cable"]
    probe = Probe(target, settings_secrets(state.settings))
    message_id, problem = probe.call("XADD", state.extras["cable"].publish, channel, value, event)
    if problem is not None:
        fail(f"cable Redis ({target.name}): {problem}")
    echo(f"Broadcast to {channel} on {target.name}: id {message_id}")


__all__ = ["format_finding", "format_findings", "format_health", "format_stats", "redis_cli"]
