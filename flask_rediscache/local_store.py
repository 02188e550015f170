"""The store with local copies in front (``REDIS_LOCAL_CACHE``).

:class:`LocalStore` is a :class:`~flask_rediscache.store.Store` whose entry
reads (``get``, ``get_many``, ``memoize``, ``cached``, ``fetch``: everything
that goes through :meth:`~flask_rediscache.store.Store.read` and
:meth:`~flask_rediscache.store.Store.read_many`) first look for a local copy,
and whose writes keep those copies right. Where the copies live, and what
a write does to them, is the :class:`~flask_rediscache.local_sources.Source`'s
business (per app context, or per process).

Only signed entries and known-missing keys are kept: counters (``inc``/``dec``
values), foreign bytes, locks and sessions never are. Every local hit decodes
the copy afresh, signature check included, so it returns a new object and
judges logical expiry exactly as a read from Redis would.
"""

from __future__ import annotations

import marshal
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from .breaker import CLOSED, CircuitBreaker
from .clients import Target
from .codec import MISS, PEEK_BYTES, VERSION, Codec
from .config import Settings
from .local_cache import ABSENT, Copies, Copy, Unpacked, _Absent
from .local_sources import ProcessSource, RequestSource, Source
from .retrying import Retrier
from .store import Entry, Store, make_entry
from .tracking import Tracker

LOCAL_MISSING: Final = Entry(MISS, False, True)



_SIGNED: Final = bytes((VERSION,))


def _keepable(raw: bytes | None, pttl: int | None) -> bytes | _Absent | None:
    """What to keep of a read: signed entries and missing keys, never counters or
    foreign bytes; :data:`ABSENT` too when the ``PTTL`` read with it disagrees
    (the key appeared or expired between the two commands)."""
    if raw is None:
        return None if pttl is None or pttl == -2 else ABSENT
    return raw if raw[:1] == _SIGNED and pttl != -2 else ABSENT


def _unpacked(raw: bytes, value: Any) -> bytes | Unpacked:
    """The copy to keep of the entry ``raw`` that decoded to ``value``: its
    :class:`~flask_rediscache.local_cache.Unpacked` form when ``marshal``
    represents the value exactly (it refuses other classes and subclasses)."""
    try:
        data = marshal.dumps(value)
    except ValueError:
        return raw
    meta = Codec.peek(raw[:PEEK_BYTES])
    if meta is None:
        return raw
    return Unpacked(data, meta[0], meta[1])


def _expires_in(raw: bytes | None, pttl: int | None) -> float | None:
    """Seconds until the copy of ``raw`` must go: the key's TTL, the entry's logical expiry."""
    limit = pttl / 1000 if pttl is not None and pttl >= 0 else None
    if raw is not None:
        peeked = Codec.peek(raw[:PEEK_BYTES])
        if peeked is not None and peeked[0] is not None:
            logical = peeked[0] - time.time()
            limit = logical if limit is None else min(limit, logical)
    return limit


class LocalStore(Store):
    """A :class:`~flask_rediscache.store.Store` serving entry reads from local copies."""

    def __init__(self, client: Any, retrier: Retrier, codec: Codec, source: Source, *,
                 breaker: CircuitBreaker | None = None, is_cluster: bool = False,
                 replica: Any = None) -> None:
        # Process-mode copies are filled from the primary, which sends the invalidations:
        # a lagging replica could hand back a value older than one already invalidated.
        super().__init__(client, retrier, codec, is_cluster=is_cluster,
                         replica=None if source.mode == "process" else replica)
        self.source = source
        self._with_ttl = source.mode == "process"
        # While the purpose's circuit breaker has seen failures, copies are not
        # served: a local hit says nothing about Redis, and counting it as a
        # success (the boundary's rule for a call that returns) would keep a
        # frozen server's breaker from ever opening.
        self._breaker = breaker

    def _serving(self) -> bool:
        breaker = self._breaker
        return breaker is None or (breaker.state is CLOSED and not breaker.failures)

    def local_stats(self) -> dict[str, Any] | None:
        return self.source.stats()

    def close(self) -> None:
        self.source.close()

    def local_problem(self, timeout: float) -> str | None:
        return self.source.problem(timeout)

    # -- reads ---------------------------------------------------------------------
    def read(self, rkey: bytes, counters: bool = False, version: bytes | None = None) -> Entry:
        if self._serving():
            raw = self.source.lookup(rkey)
            if raw is not ABSENT:
                return self._local(rkey, raw, counters, version)
        return self._fill([rkey], counters, version)[0][0]

    def read_sized(self, rkey: bytes, counters: bool = False,
                   version: bytes | None = None) -> tuple[Entry, int]:
        raw = self.source.lookup(rkey) if self._serving() else ABSENT
        if raw is not ABSENT:
            return self._local(rkey, raw, counters, version), 0
        entries, raws = self._fill([rkey], counters, version)
        return entries[0], len(raws[0] or b"")

    def read_many(self, rkeys: Sequence[bytes], counters: bool = False,
                  version: bytes | None = None) -> list[Entry]:
        return self.read_many_sized(rkeys, counters, version)[0]

    def read_many_sized(self, rkeys: Sequence[bytes], counters: bool = False,
                        version: bytes | None = None) -> tuple[list[Entry], int]:
        out: list[Entry | None] = []
        missing: list[bytes] = []
        lookup = self.source.lookup if self._serving() else _no_copy
        for rkey in rkeys:
            raw = lookup(rkey)
            if raw is ABSENT:
                out.append(None)
                missing.append(rkey)
            else:
                out.append(self._local(rkey, raw, counters, version))
        if not missing:
            return out, 0  # type: ignore[return-value]
        distinct = list(dict.fromkeys(missing))
        entries, raws = self._fill(distinct, counters, version)
        fetched = dict(zip(distinct, entries, strict=True))
        size = dict(zip(distinct, (len(raw) if raw is not None else 0 for raw in raws), strict=True))
        merged = [entry if entry is not None else fetched[rkey]
                  for entry, rkey in zip(out, rkeys, strict=True)]
        return merged, sum(size[rkey] for rkey in missing)

    def _local(self, rkey: bytes, raw: Copy, counters: bool, version: bytes | None) -> Entry:
        if raw is None:
            return LOCAL_MISSING
        if isinstance(raw, Unpacked):
            if version is not None and raw.version != version:
                return LOCAL_MISSING
            value, expires_at = marshal.loads(raw.data), raw.expires_at
        else:  # only entries that decoded (signature checked for this key) are kept
            value, expires_at = self.codec.decode(rkey, raw, counters, version, trusted=True)
            if value is MISS:
                return LOCAL_MISSING
        if expires_at is None:
            return make_entry((value, False, True))
        return make_entry((value, expires_at <= time.time(), True))

    def _fill(self, rkeys: list[bytes], counters: bool, version: bytes | None
              ) -> tuple[list[Entry], list[bytes | None]]:
        """Fetch and decode distinct ``rkeys`` (with their TTLs in process mode) and
        keep what may be kept: missing keys, and entries that decoded."""
        source = self.source
        tokens = [source.begin(rkey) for rkey in rkeys]
        try:
            if self._with_ttl and any(token is not None for token in tokens):
                raws, pttls = self._fetch_with_ttl(rkeys)
            elif len(rkeys) == 1:  # a memoize hit stays one GET
                get = (self.replica or self.client).get
                raws, pttls = [self._idempotent(lambda: get(rkeys[0]))], [None]
            else:
                raws, pttls = self._mget(rkeys), [None] * len(rkeys)
        except BaseException:
            for rkey, token in zip(rkeys, tokens, strict=True):
                if token is not None:
                    source.finish(rkey, token, ABSENT, None)
            raise
        entries = self._decode_many(rkeys, raws, counters, version)
        for rkey, token, raw, pttl, entry in zip(rkeys, tokens, raws, pttls, entries, strict=True):
            if token is not None:
                keep: Copy | _Absent = (_keepable(raw, pttl) if raw is None or entry.value is not MISS
                                        else ABSENT)
                if isinstance(keep, bytes):
                    keep = _unpacked(keep, entry.value)
                source.finish(rkey, token, keep, _expires_in(raw, pttl))
        return entries, raws

    def _fetch_with_ttl(self, rkeys: list[bytes]) -> tuple[list[bytes | None], list[int | None]]:
        """``GET`` (or ``MGET``) and a ``PTTL`` per key in one round trip."""
        client = self.client

        def run() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            if len(rkeys) == 1:
                pipe.get(rkeys[0])
            else:
                pipe.mget(rkeys)
            for rkey in rkeys:
                pipe.pttl(rkey)
            return pipe.execute()  # type: ignore[no-any-return]

        replies = self._idempotent(run)
        raws = [replies[0]] if len(rkeys) == 1 else list(replies[0])
        return raws, [int(pttl) for pttl in replies[1:]]

    # -- writes keep the copies right ---------------------------------------------------
    def write(self, rkey: bytes, data: bytes, ttl: int, extra_ttl: float = 0) -> bool:
        try:
            ok = super().write(rkey, data, ttl, extra_ttl)
        except BaseException:
            self.source.forget((rkey,))
            raise
        self._wrote(rkey, data, ok)
        return ok

    def add(self, rkey: bytes, data: bytes, ttl: int) -> bool:
        try:
            ok = super().add(rkey, data, ttl)
        except BaseException:
            self.source.forget((rkey,))
            raise
        self._wrote(rkey, data, ok)
        return ok

    def write_many(self, items: Sequence[tuple[bytes, bytes]], ttl: int,
                   extra_ttl: float = 0) -> list[bool]:
        try:
            results = super().write_many(items, ttl, extra_ttl)
        except BaseException:
            self.source.forget(rkey for rkey, _ in items)
            raise
        for (rkey, data), ok in zip(items, results, strict=True):
            self._wrote(rkey, data, ok)
        return results

    def unlink(self, rkeys: Sequence[bytes]) -> int:
        try:
            count = super().unlink(rkeys)
        except BaseException:
            self.source.forget(rkeys)
            raise
        for rkey in rkeys:
            self.source.wrote(rkey, None)
        return count

    def _wrote(self, rkey: bytes, data: bytes, ok: bool) -> None:
        if ok and data[:1] == _SIGNED:
            self.source.wrote(rkey, data)
        else:  # a counter (never kept), or SET NX lost to another writer (what is there is unknown)
            self.source.forget((rkey,))

    def _changed(self, rkeys: Iterable[bytes], run: Callable[[], Any]) -> Any:
        try:
            return run()
        finally:
            self.source.forget(rkeys)

    def incr(self, rkey: bytes, delta: int, ttl: int) -> int:
        return int(self._changed((rkey,), lambda: super(LocalStore, self).incr(rkey, delta, ttl)))

    def delete_version(self, rkey: bytes, version: bytes) -> bool:
        return bool(self._changed((rkey,), lambda: super(LocalStore, self).delete_version(rkey, version)))

    def expire(self, rkey: bytes, seconds: int) -> bool:
        return bool(self._changed((rkey,), lambda: super(LocalStore, self).expire(rkey, seconds)))

    def expire_at_ms(self, rkey: bytes, when_ms: int) -> bool:
        return bool(self._changed((rkey,), lambda: super(LocalStore, self).expire_at_ms(rkey, when_ms)))

    def persist(self, rkey: bytes) -> bool:
        return bool(self._changed((rkey,), lambda: super(LocalStore, self).persist(rkey)))

    def delete_matching(self, match: bytes, progress: Callable[[int], None] | None = None) -> int:
        try:
            return super().delete_matching(match, progress)
        finally:
            self.source.clear()


def _no_copy(key: bytes) -> _Absent:
    return ABSENT


def build_local_store(settings: Settings, target: Target, retrier: Retrier, codec: Codec,
                      replica: Any, breaker: CircuitBreaker) -> LocalStore:
    """The cache store for ``REDIS_LOCAL_CACHE`` = ``"request"`` or ``"process"``."""
    if settings.local_cache == "request":
        source: Source = RequestSource(settings.local_cache_size, settings.local_cache_max_bytes,
                                       settings.local_cache_ttl)
    else:
        pool = target.client.connection_pool
        # The pool's own connection class and arguments (TLS, ACL user, Sentinel
        # discovery included), but RESP2 — see flask_rediscache.tracking.
        # redis-py 7+ adds "maintenance notification" handling to pooled connections,
        # which refuses RESP2 without hiredis; a tracking connection has no use for it.
        kwargs = {key: value for key, value in pool.connection_kwargs.items()
                  if not key.startswith("maint_notifications")}
        kwargs.update(protocol=2, health_check_interval=0, decode_responses=False)
        connection_class = pool.connection_class
        primary = pool.get_master_address if target.kind == "sentinel" else None
        copies = Copies(settings.local_cache_size, settings.local_cache_max_bytes,
                        settings.local_cache_ttl)
        source = ProcessSource(Tracker(lambda: connection_class(**kwargs),
                                       f"{settings.namespace}:".encode("utf-8", "surrogatepass"),
                                       copies, where=target.name, secrets=settings.secrets(),
                                       primary=primary))
    return LocalStore(target.client, retrier, codec, source, breaker=breaker,
                      is_cluster=target.is_cluster, replica=replica)
