"""Local copies of cache entries: a bounded LRU of the bytes Redis returned.

Both local-cache modes (``REDIS_LOCAL_CACHE = "request"`` and ``"process"``)
keep what a ``GET`` returned — the signed entry's bytes, or ``None`` for a
key that does not exist — never the decoded value: every hit decodes afresh
(signature check included), so a caller mutating what it got cannot change
what the next caller gets, exactly as with a round trip to Redis.

Each copy has a deadline (``time.monotonic()``): the earliest of
``REDIS_LOCAL_CACHE_TTL`` from now, the key's TTL in Redis (when the read
asked for it) and the entry's logical expiry. A copy past its deadline is
dropped on lookup, so no copy outlives its entry. Entries and bytes are both
bounded; the least recently used copies go first.

Thread safety is the caller's: :class:`~flask_rediscache.tracking.Tracker`
guards one instance shared by a process's threads with its own lock, and a
per-request instance lives in one thread.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Final, NamedTuple


class _Absent(enum.Enum):
    """Sentinel for "no local copy" (``None`` is a copy: the key does not exist);
    an enum member, so type checkers narrow ``raw is ABSENT``."""

    ABSENT = "ABSENT"


ABSENT: Final = _Absent.ABSENT


class Unpacked(NamedTuple):
    """A copy kept as the ``marshal`` form of its decoded value, with what the
    entry's header said: rebuilding builtin values (dicts, lists, strings,
    numbers...) from ``marshal`` is about a third cheaper than from a pickle,
    and it still hands every caller a new object. Values ``marshal`` cannot
    represent exactly (any other class, subclasses of builtins) stay pickles."""

    data: bytes
    expires_at: float | None
    version: bytes | None


#: What a copy holds: the stored entry's bytes, its unpacked form, or None (no such key).
Copy = bytes | Unpacked | None
#: Bytes charged for a copy besides its value (the key, the tuple, the dict slot):
#: rough, but it keeps a cache of many tiny or missing entries bounded too.
OVERHEAD_BYTES: Final = 100


class Copies:
    """A bounded LRU of ``key -> (raw bytes | None, deadline)``."""

    __slots__ = (
        "_data",
        "bytes",
        "evictions",
        "hits",
        "max_bytes",
        "max_entries",
        "misses",
        "ttl",
    )

    def __init__(self, max_entries: int, max_bytes: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._data: OrderedDict[bytes, tuple[Copy, float]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes, now: float) -> Copy | _Absent:
        """The copy of ``key``, or :data:`ABSENT` (counted as a hit or a miss)."""
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return ABSENT
        if item[1] <= now:
            self._drop(key)
            self.misses += 1
            return ABSENT
        self._data.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: bytes, raw: Copy, now: float, expires_in: float | None = None) -> None:
        """Keep ``raw`` for ``key`` until ``min(ttl, expires_in)`` seconds from ``now``.

        A value larger than the whole byte budget is not kept (and any older
        copy of the key goes)."""
        self._drop(key)
        size = OVERHEAD_BYTES + len(key) + _size(raw)
        lifetime = self.ttl if expires_in is None else min(self.ttl, expires_in)
        if size > self.max_bytes or lifetime <= 0:
            return
        self._data[key] = (raw, now + lifetime)
        self.bytes += size
        data = self._data
        while len(data) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(data)))
            self.evictions += 1

    def discard(self, key: bytes) -> None:
        self._drop(key)

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0

    def _drop(self, key: bytes) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self.bytes -= OVERHEAD_BYTES + len(key) + _size(item[0])



def _size(copy: Copy) -> int:
    if copy is None:
        return 0
    return len(copy.data) if isinstance(copy, Unpacked) else len(copy)
