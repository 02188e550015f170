"""The strict store: the only module that sends the cache's commands to redis-py.

Every method raises Redis' own errors; the fail-open decision is made one
level up, by :class:`~flask_rediscache.failopen.Boundary`. Only redis-py's
public client API is used (client methods, non-transactional pipelines and
``scan_iter``).

Retries: commands that are safe to repeat (GET, GETRANGE, SET without NX, MGET,
UNLINK, EXISTS, TTL, PTTL, EXPIRE, PEXPIREAT, PERSIST, SCAN) go through the purpose's
:class:`~flask_rediscache.retrying.Retrier` (``REDIS_RECONNECT_*``); each
retry checks a connection out of the pool again, which is what moves a
Sentinel client to a newly elected master. Commands that are not safe to
repeat once they may have reached the server (``INCRBY``, ``SET NX``, lock
acquisition) are sent once: a lost reply is an error, never a second
increment or a lock we then wait on ourselves.

The entry format is the :class:`~flask_rediscache.codec.Codec`'s; this module
owns the one read path (fetch → verify → decode → judge freshness) and the
Cluster slot grouping. A disabled cache gets
:class:`~flask_rediscache.null_store.NullStore` instead, which sends no
command at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from redis.exceptions import ResponseError

from .codec import MISS, PEEK_BYTES, Codec
from .locks import Lock
from .retrying import RETRIED_ERRORS, Retrier

#: Keys fetched per SCAN call and deleted per UNLINK.
SCAN_BATCH: Final = 1000


class Entry(NamedTuple):
    """What a read found: ``value`` (or :data:`~flask_rediscache.codec.MISS`),
    whether it is past its logical expiry (kept only for ``race_condition_ttl``)
    and whether it came from a local copy."""

    value: Any
    stale: bool
    #: Served from a local copy (``REDIS_LOCAL_CACHE``), not read from Redis.
    local: bool = False


MISSING: Final = Entry(MISS, False)


def make_entry(fields: tuple[Any, bool, bool]) -> Entry:
    """``Entry(*fields)`` without the generated ``__new__``'s argument handling
    (what ``Entry._make`` does); about half a microsecond less per hit."""
    entry: Entry = tuple.__new__(Entry, fields)
    return entry


class Store:
    """Cache-purpose commands for one app: raw Redis keys in, Python values out."""

    def __init__(self, client: Any, retrier: Retrier, codec: Codec, *, is_cluster: bool = False,
                 replica: Any = None) -> None:
        self.client = client
        #: The client cache *reads* go to with ``REDIS_READ_FROM_REPLICAS``
        #: (GET, MGET, GETRANGE, PTTL of the cache API); ``None``: the primary.
        #: Writes, counters, stampede and named locks always use :attr:`client`.
        self.replica = replica
        self._idempotent = retrier
        self.codec = codec
        self.is_cluster = is_cluster
        self._expire_nx = True  # EXPIRE ... NX needs Redis >= 7; cleared on the first refusal

    def local_stats(self) -> dict[str, Any] | None:
        """What the local copies did (:class:`~flask_rediscache.local_store.LocalStore`); None: none kept."""
        return None

    def close(self) -> None:
        """Release what the store holds besides the client's pool (nothing here)."""

    def local_problem(self, timeout: float) -> str | None:
        """Why local copies cannot be served (waiting up to ``timeout`` for
        tracking to start); None when they can or none are kept."""
        return None

    # -- reads -------------------------------------------------------------
    def read(self, rkey: bytes, counters: bool = False, version: bytes | None = None) -> Entry:
        """``GET`` one entry, verified, decoded and judged fresh (the hot path
        of a memoize hit: the retrier's first attempt is inlined)."""
        get = (self.replica or self.client).get
        try:
            raw = get(rkey)
        except RETRIED_ERRORS as error:
            raw = self._idempotent.after(error, lambda: get(rkey))
        if raw is None:
            return MISSING
        value, expires_at = self.codec.decode(rkey, raw, counters, version)
        if value is MISS:
            return MISSING
        if expires_at is None:
            return make_entry((value, False, False))
        return make_entry((value, expires_at <= time.time(), False))

    def read_sized(self, rkey: bytes, counters: bool = False,
                   version: bytes | None = None) -> tuple[Entry, int]:
        """:meth:`read`, plus the bytes transferred (for instrumentation)."""
        get = (self.replica or self.client).get
        raw = self._idempotent(lambda: get(rkey))
        if raw is None:
            return MISSING, 0
        value, expires_at = self.codec.decode(rkey, raw, counters, version)
        if value is MISS:
            return MISSING, len(raw)
        return Entry(value, expires_at is not None and expires_at <= time.time()), len(raw)

    def _mget(self, rkeys: Sequence[bytes]) -> list[bytes | None]:
        client = self.replica or self.client
        if self.is_cluster:
            return self._idempotent(lambda: client.mget_nonatomic(rkeys))
        return self._idempotent(lambda: client.mget(rkeys))

    def read_many(self, rkeys: Sequence[bytes], counters: bool = False,
                  version: bytes | None = None) -> list[Entry]:
        """One ``MGET`` (one per slot on a cluster), in the order of ``rkeys``."""
        return self._decode_many(rkeys, self._mget(rkeys), counters, version)

    def read_many_sized(self, rkeys: Sequence[bytes], counters: bool = False,
                        version: bytes | None = None) -> tuple[list[Entry], int]:
        """:meth:`read_many`, plus the bytes transferred (for instrumentation)."""
        raws = self._mget(rkeys)
        return (self._decode_many(rkeys, raws, counters, version),
                sum(len(raw) for raw in raws if raw is not None))

    def _decode_many(self, rkeys: Sequence[bytes], raws: Sequence[bytes | None], counters: bool,
                     version: bytes | None) -> list[Entry]:
        # The hot loop of get_many: one decode call per entry, one clock read per batch.
        decode = self.codec.decode
        now = time.time()
        out: list[Entry] = []
        append = out.append
        for rkey, raw in zip(rkeys, raws, strict=True):
            if raw is None:
                append(MISSING)
                continue
            value, expires_at = decode(rkey, raw, counters, version)
            if value is MISS:
                append(MISSING)
            else:
                append(Entry(value, expires_at is not None and expires_at <= now))
        return out

    def exists(self, rkey: bytes) -> bool:
        client = self.replica or self.client
        return bool(self._idempotent(lambda: client.exists(rkey)))

    def peek(self, rkey: bytes) -> bytes:
        """``GETRANGE`` of the entry's header (at most :data:`~flask_rediscache.codec.PEEK_BYTES`):
        ``b""`` when the key is missing; the value itself is not transferred."""
        client = self.replica or self.client
        return bytes(self._idempotent(lambda: client.getrange(rkey, 0, PEEK_BYTES - 1)))

    def ttl(self, rkey: bytes) -> int:
        """Redis' ``TTL``: seconds, -1 without expiry, -2 missing."""
        client = self.client
        return int(self._idempotent(lambda: client.ttl(rkey)))

    def pttl_peek(self, rkey: bytes) -> tuple[int, bytes]:
        """``PTTL`` and :meth:`peek` in one round trip (a non-transactional pipeline)."""
        client = self.replica or self.client

        def run() -> tuple[int, bytes]:
            pipe = client.pipeline(transaction=False)
            pipe.pttl(rkey)
            pipe.getrange(rkey, 0, PEEK_BYTES - 1)
            pttl, head = pipe.execute()
            return int(pttl), bytes(head)

        return self._idempotent(run)

    # -- expiry -------------------------------------------------------------
    def expire(self, rkey: bytes, seconds: int) -> bool:
        """``EXPIRE``: True if the key exists. ``seconds=0`` sends ``PERSIST``
        instead (no expiry), which is True only if a TTL was removed."""
        client = self.client
        if not seconds:
            return bool(self._idempotent(lambda: client.persist(rkey)))
        return bool(self._idempotent(lambda: client.expire(rkey, seconds)))

    def expire_at_ms(self, rkey: bytes, when_ms: int) -> bool:
        """``PEXPIREAT``; True if the key exists."""
        client = self.client
        return bool(self._idempotent(lambda: client.pexpireat(rkey, when_ms)))

    def persist(self, rkey: bytes) -> bool:
        """``PERSIST``: True if a TTL was removed."""
        client = self.client
        return bool(self._idempotent(lambda: client.persist(rkey)))

    # -- writes --------------------------------------------------------------
    def encode(self, rkey: bytes, value: Any, *, signed: bool = False,
               expires_at: float | None = None, version: bytes | None = None) -> bytes:
        """The stored bytes of ``value`` (raises what pickle raises)."""
        # Decorators and fetch read signed entries only: never the plain counter form there.
        return self.codec.encode(rkey, value, expires_at, counter=not signed, version=version)

    def write(self, rkey: bytes, data: bytes, ttl: int, extra_ttl: float = 0) -> bool:
        """``SET key data EX ttl`` (no expiry when ``ttl`` is 0); safe to repeat."""
        ex = ttl + math.ceil(extra_ttl) if ttl else None
        client = self.client
        return bool(self._idempotent(lambda: client.set(rkey, data, ex=ex)))

    def add(self, rkey: bytes, data: bytes, ttl: int) -> bool:
        """``SET NX``: sent once, never retried (a lost reply must not turn into
        "someone else stored it")."""
        return bool(self.client.set(rkey, data, ex=ttl or None, nx=True))

    def write_many(self, items: Sequence[tuple[bytes, bytes]], ttl: int, extra_ttl: float = 0) -> list[bool]:
        """Every ``SET`` in one non-transactional pipeline (one per node on a cluster)."""
        client = self.client
        ex = ttl + math.ceil(extra_ttl) if ttl else None

        def run() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for rkey, data in items:
                pipe.set(rkey, data, ex=ex)
            return pipe.execute()  # type: ignore[no-any-return]

        return [bool(ok) for ok in self._idempotent(run)]

    def unlink(self, rkeys: Sequence[bytes]) -> int:
        """``UNLINK`` (per key on a cluster, where keys of different slots can't
        share a command); returns how many existed."""
        client = self.client
        if not self.is_cluster:
            return int(self._idempotent(lambda: client.unlink(*rkeys)))

        def run() -> int:
            pipe = client.pipeline(transaction=False)
            for rkey in rkeys:
                pipe.unlink(rkey)
            return sum(pipe.execute())

        return self._idempotent(run)

    def incr(self, rkey: bytes, delta: int, ttl: int) -> int:
        """``INCRBY`` plus ``EXPIRE NX`` in one round trip; sent once, never retried.

        ``ttl`` is set only when the key has none, so a rate-limit window is not
        extended by each hit.
        """
        client = self.client
        if not ttl:
            return int(client.incrby(rkey, delta))
        pipe = client.pipeline(transaction=False)
        pipe.incrby(rkey, delta)
        if self._expire_nx:
            pipe.expire(rkey, ttl, nx=True)
        else:
            pipe.ttl(rkey)
        value, second = pipe.execute(raise_on_error=False)
        if isinstance(value, Exception):
            raise value
        if isinstance(second, ResponseError):
            # Redis < 7 has no EXPIRE NX: read the TTL instead (one more round
            # trip, and a tiny window where two callers both set it: harmless).
            self._expire_nx = False
            second = self.ttl(rkey)
        if not self._expire_nx and second == -1:
            client.expire(rkey, ttl)  # idempotent, but the INCRBY must not be repeated with it
        return int(value)

    def delete_version(self, rkey: bytes, version: bytes) -> bool:
        """Delete ``rkey`` only if it holds an entry of ``version``: ``GET``,
        check, ``UNLINK``. Not atomic (no script, so a ``+@read +@write`` user
        can do it): a write of another version landing between the two
        commands is deleted too, which for a cache is one extra miss."""
        client = self.client
        raw = self._idempotent(lambda: client.get(rkey))
        if raw is None:
            return False
        value, _ = self.codec.decode(rkey, raw, False, version)
        if value is MISS:
            return False
        return bool(self._idempotent(lambda: client.unlink(rkey)))

    # -- stampede locks ----------------------------------------------------------
    def acquire(self, lock: bytes, token: bytes, ms: int) -> bool:
        """``SET lock token NX PX ms``: sent once (see the module docstring)."""
        return bool(self.client.set(lock, token, nx=True, px=ms))

    def release(self, lock: bytes, token: bytes) -> None:
        """Delete ``lock`` if it still holds ``token``. GET + UNLINK rather than
        a script, so a ``+@read +@write`` ACL user can do it; the race window
        is one round trip on a lock that has already expired."""
        client = self.client
        if self._idempotent(lambda: client.get(lock)) == token:
            self._idempotent(lambda: client.unlink(lock))

    def acquire_many(self, locks: Sequence[bytes], token: bytes, ms: int) -> list[bool]:
        """``SET lock token NX PX ms`` for every lock in one pipeline, sent once."""
        pipe = self.client.pipeline(transaction=False)
        for lock in locks:
            pipe.set(lock, token, nx=True, px=ms)
        return [bool(ok) for ok in pipe.execute()]

    def release_many(self, locks: Sequence[bytes], token: bytes) -> None:
        """Delete the locks that still hold ``token``: one pipeline of ``GET``,
        then one of ``UNLINK`` (the race window of :meth:`release`)."""
        client = self.client

        def held() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for lock in locks:
                pipe.get(lock)
            return pipe.execute()  # type: ignore[no-any-return]

        ours = [lock for lock, value in zip(locks, self._idempotent(held), strict=True) if value == token]
        if ours:
            self.unlink(ours)

    # -- named locks (cache.lock) ---------------------------------------------------
    def lock(self, name: bytes, timeout: float | None, sleep: float, blocking: bool,
             blocking_timeout: float | None, thread_local: bool) -> Lock:
        """A redis-py ``Lock`` on the primary; it raises, never fails open."""
        lock_name: Any = name  # redis-py types it str; any key type works
        return Lock(self.client, lock_name, timeout=timeout, sleep=sleep, blocking=blocking,
                    blocking_timeout=blocking_timeout, thread_local=thread_local)

    # -- the namespace -----------------------------------------------------------
    def scan(self, match: bytes, count: int = SCAN_BATCH) -> Iterator[bytes]:
        """Every key matching the glob ``match`` (every primary of a cluster)."""
        if self.is_cluster:
            from redis.cluster import RedisCluster

            keys: Iterable[bytes] = self.client.scan_iter(match=match, count=count,
                                                          target_nodes=RedisCluster.PRIMARIES)
        else:
            keys = self.client.scan_iter(match=match, count=count)
        yield from keys

    def delete_matching(self, match: bytes, progress: Callable[[int], None] | None = None) -> int:
        """``SCAN`` + ``UNLINK`` in batches, never ``KEYS``; returns how many were deleted.

        If Redis fails midway the error propagates; what was deleted so far stays deleted.
        """
        deleted = 0
        batch: list[bytes] = []
        for rkey in self.scan(match):
            batch.append(rkey)
            if len(batch) >= SCAN_BATCH:
                deleted += self.unlink(batch)
                batch = []
                if progress is not None:
                    progress(deleted)
        if batch:
            deleted += self.unlink(batch)
            if progress is not None:
                progress(deleted)
        return deleted
