"""The store of a disabled cache: :class:`NullStore` sends no command at all.

``REDIS_CACHE_ENABLED = False`` (or ``CACHE_TYPE = "NullCache"``) gives the
cache this store instead of :class:`~flask_rediscache.store.Store`; the cache
API above it does not change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .codec import Codec
from .errors import LockError
from .locks import Lock
from .retrying import Retrier
from .store import MISSING, Entry, Store


class NullStore(Store):
    """The store of a disabled cache (``REDIS_CACHE_ENABLED = False``, ``CACHE_TYPE = "NullCache"``):
    no client, no command. Reads miss; writes and deletes report success, as
    Flask-Caching's ``NullCache`` does (``set``/``add`` -> True, ``delete_many``
    -> every key), so decorators and ``fetch`` simply call through."""

    def __init__(self, retrier: Retrier, codec: Codec) -> None:
        super().__init__(None, retrier, codec)

    def read(self, rkey: bytes, counters: bool = False, version: bytes | None = None) -> Entry:
        return MISSING

    def read_many(self, rkeys: Sequence[bytes], counters: bool = False,
                  version: bytes | None = None) -> list[Entry]:
        return [MISSING] * len(rkeys)

    def read_sized(self, rkey: bytes, counters: bool = False,
                   version: bytes | None = None) -> tuple[Entry, int]:
        return MISSING, 0

    def read_many_sized(self, rkeys: Sequence[bytes], counters: bool = False,
                        version: bytes | None = None) -> tuple[list[Entry], int]:
        return [MISSING] * len(rkeys), 0

    def exists(self, rkey: bytes) -> bool:
        return False

    def peek(self, rkey: bytes) -> bytes:
        return b""

    def ttl(self, rkey: bytes) -> int:
        return -2

    def pttl_peek(self, rkey: bytes) -> tuple[int, bytes]:
        return -2, b""

    def expire(self, rkey: bytes, seconds: int) -> bool:
        return False

    def expire_at_ms(self, rkey: bytes, when_ms: int) -> bool:
        return False

    def persist(self, rkey: bytes) -> bool:
        return False

    def delete_version(self, rkey: bytes, version: bytes) -> bool:
        return False

    def acquire_many(self, locks: Sequence[bytes], token: bytes, ms: int) -> list[bool]:
        return [True] * len(locks)

    def release_many(self, locks: Sequence[bytes], token: bytes) -> None:
        return None

    def write(self, rkey: bytes, data: bytes, ttl: int, extra_ttl: float = 0) -> bool:
        return True

    def add(self, rkey: bytes, data: bytes, ttl: int) -> bool:
        return True

    def write_many(self, items: Sequence[tuple[bytes, bytes]], ttl: int, extra_ttl: float = 0) -> list[bool]:
        return [True] * len(items)

    def unlink(self, rkeys: Sequence[bytes]) -> int:
        return len(rkeys)

    def incr(self, rkey: bytes, delta: int, ttl: int) -> int:
        return delta

    def acquire(self, lock: bytes, token: bytes, ms: int) -> bool:
        return True

    def release(self, lock: bytes, token: bytes) -> None:
        return None

    def scan(self, match: bytes, count: int = 0) -> Iterator[bytes]:
        return iter(())

    def lock(self, name: bytes, timeout: float | None, sleep: float, blocking: bool,
             blocking_timeout: float | None, thread_local: bool) -> Lock:
        raise LockError("the cache is disabled (REDIS_CACHE_ENABLED = False): there is no Redis "
                        "to hold a lock, and a lock cannot fail open")
