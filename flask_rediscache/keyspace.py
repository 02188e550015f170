"""Looking at the keys under a prefix: SCAN listing, TTL and size, and safe printing.

Key names can hold anything, including what an anonymous visitor puts in a
cached view's path: escape sequences, BEL, newlines. :func:`printable` turns
every non-printable character into a visible escape (``\\x1b``), and every
key name leaves this module through :func:`decode_key`, which applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .clients import Target

#: Keys examined per SCAN call: large enough to be quick, small enough not to block Redis.
SCAN_COUNT = 1000


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with control characters, lone surrogates and other non-printable
    characters (bidi overrides, zero-width marks, line separators) written as
    ``\\x1b``, ``\\u202e``...; safe to put on a terminal in one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def decode_key(key: Any) -> str:
    """A key name for display: undecodable bytes as ``\\xff``, the rest through :func:`printable`."""
    text = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)
    return printable(text)


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
    """How many keys match ``match`` (SCAN; no KEYS, no DBSIZE guess)."""
    return sum(1 for _ in scan_keys(target, match, progress=progress))


@dataclass
class KeyInfo:
    """One key of ``flask redis keys``; ``key`` is already escaped for printing."""

    key: str
    ttl: int | None  # seconds; None = no expiry
    size: int | None  # bytes; None = unknown
    size_source: str  # "memory" (MEMORY USAGE), "strlen" or "?"


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
    refused = next((s for s in sizes if isinstance(s, Exception)), None)
    if refused is not None:
        why = printable(str(refused).strip().split("\n")[0])[:80]
        notes.append(f"MEMORY USAGE refused ({why}); showing STRLEN instead")
        pipe = target.client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        sizes = pipe.execute(raise_on_error=False)
        source = "strlen"
    out = []
    for key, ttl, size in zip(keys, ttls, sizes, strict=True):
        ttl_value = ttl if isinstance(ttl, int) and ttl >= 0 else None
        known = isinstance(size, int) and not isinstance(size, bool)
        out.append(KeyInfo(decode_key(key), ttl_value, size if known else None, source if known else "?"))
    return out, notes
