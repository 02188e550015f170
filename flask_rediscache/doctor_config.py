"""The doctor checks that read the configuration alone (no server needed).

:class:`Finding` lives here so that :mod:`~flask_rediscache.doctor` (the
server checks and the entry point) and these checks share it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import config
from .probes import FAIL, PASS, SKIP, WARN

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .state import AppState

#: Timeouts above this many seconds make a hung Redis hold requests for too long.
LONG_TIMEOUT = 5.0
#: A worst-case call above this many seconds (half of gunicorn's default worker timeout) warns.
LONG_CALL = 15.0


@dataclass(frozen=True)
class Finding:
    """One doctor check: ``status`` is pass/warn/fail/skip; ``fix`` is one line."""

    status: str
    check: str
    message: str
    fix: str = ""
    #: The server the finding is about (``"cache+session Redis (redis://…)"``); empty for app settings.
    scope: str = ""


def plural(count: int, word: str) -> str:
    """``1 key``, ``2 keys``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- security, from the URLs ------------------------------------------------------
def _is_loopback(host: str | None, scheme: str) -> bool:
    if scheme in ("unix", "memory"):
        return True
    if not host or host == "localhost":
        return True  # redis-py's default is localhost
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


def _has_password(parts: Any, settings: Settings) -> bool:
    query = parts.query.lower()
    return bool(parts.password or "password=" in query or getattr(settings, "password", None))


def _endpoints(state: AppState, purpose: str) -> list[tuple[str, str | None, bool]]:
    """``(scheme, host, has_password)`` of every address the target's client dials."""
    settings = state.settings
    url = urlsplit(settings.cache_url if purpose == "cache" else settings.session_url)
    has_password = _has_password(url, settings)
    if settings.cluster:
        seeds = [urlsplit(seed) for seed in settings.cluster]
        return [(s.scheme, s.hostname, _has_password(s, settings) or has_password) for s in seeds]
    if settings.sentinels:
        return [(url.scheme, host, has_password) for host, _ in settings.sentinels]
    return [(url.scheme, url.hostname, has_password)]


def security_findings(state: AppState, purposes: list[str]) -> list[Finding]:
    """``password`` and ``tls``: what crosses the network, read from the URLs."""
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
        out.append(Finding(WARN, "tls", f"plaintext redis:// to {', '.join(plain)} (private network)",
                           "use rediss:// unless the network is trusted end to end"))
    else:
        out.append(Finding(FAIL, "tls", f"plaintext redis:// to remote host {', '.join(plain)}; "
                           "passwords and data cross the network unencrypted", "use rediss://"))
    return out


# -- sizing and timeouts ------------------------------------------------------------
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


def pool_finding(pool_size: int, pool_timeout: float, threads: int | None, env: Any) -> Finding:
    """``pool``: a pool smaller than the threads makes bursts wait (a warning: it still works)."""
    count, source = thread_hint(threads, env)
    if count is None:
        return Finding(SKIP, "pool", f"REDIS_POOL_SIZE={pool_size}; skipped: threads per worker unknown "
                       "(pass --threads N or set GUNICORN_THREADS)")
    if count > pool_size:
        return Finding(WARN, "pool", f"REDIS_POOL_SIZE={pool_size} but {count} threads per worker "
                       f"({source}); busy threads wait up to REDIS_POOL_TIMEOUT={pool_timeout:g}s "
                       "for a connection, then fail open",
                       f"set REDIS_POOL_SIZE >= {count}")
    return Finding(PASS, "pool", f"REDIS_POOL_SIZE={pool_size} covers {count} threads per worker ({source})")


def timeouts_finding(connect: float, read: float) -> Finding:
    """``timeouts``: connect and read timeouts (redis-py has one socket timeout: the read one)."""
    long = [f"{name}={value:g}s" for name, value in (("REDIS_CONNECT_TIMEOUT", connect),
            ("REDIS_READ_TIMEOUT", read)) if value > LONG_TIMEOUT]
    if long:
        return Finding(WARN, "timeouts", f"{', '.join(long)}: a hung Redis holds each request that long",
                       "use the Rails values: connect 2s, read 1s")
    return Finding(PASS, "timeouts", f"connect {connect:g}s, read {read:g}s")


def worst_case_seconds(settings: Settings) -> float:
    """The longest one call can take against a hung server: pool wait + every
    attempt timing out (connect + read) + the backoff between attempts."""
    from_config = getattr(config, "worst_case_call_seconds", None)  # once config.py has it
    if callable(from_config):
        return float(from_config(settings))
    attempts = 1 + settings.reconnect_attempts
    backoff = sum(min(settings.reconnect_delay_max, settings.reconnect_delay * 2 ** i)
                  for i in range(1, attempts))
    per_attempt = settings.connect_timeout + settings.read_timeout
    return float(settings.pool_timeout + attempts * per_attempt + backoff)


def worst_case_finding(settings: Settings) -> Finding:
    """``worst-case``: how long one call may hold a request when Redis hangs."""
    seconds = worst_case_seconds(settings)
    attempts = 1 + settings.reconnect_attempts
    how = (f"pool wait {settings.pool_timeout:g}s + {plural(attempts, 'attempt')} x (connect "
           f"{settings.connect_timeout:g}s + read {settings.read_timeout:g}s) + backoff")
    message = f"one Redis call can take up to {seconds:.1f}s when Redis hangs ({how})"
    if seconds > LONG_CALL:
        return Finding(WARN, "worst-case", message,
                       "lower REDIS_RECONNECT_ATTEMPTS, the timeouts or REDIS_POOL_TIMEOUT")
    return Finding(PASS, "worst-case", message)


def error_handler_finding(has_handler: bool, production: bool) -> Finding:
    if has_handler:
        return Finding(PASS, "error-handler", "REDIS_ERROR_HANDLER is set")
    if not production:
        return Finding(PASS, "error-handler", "no REDIS_ERROR_HANDLER (fine in debug/testing)")
    return Finding(WARN, "error-handler",
                   "no REDIS_ERROR_HANDLER: Redis errors are swallowed and only logged",
                   "set REDIS_ERROR_HANDLER to report them (e.g. to Sentry)")


def default_timeout_finding(default_timeout: int) -> Finding:
    if default_timeout == 0:
        return Finding(WARN, "default-timeout", "REDIS_DEFAULT_TIMEOUT=0: entries never expire unless "
                       "evicted", "set a default such as REDIS_DEFAULT_TIMEOUT = 300")
    return Finding(PASS, "default-timeout", f"REDIS_DEFAULT_TIMEOUT={default_timeout}s")
