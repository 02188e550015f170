"""The cache API for one app: Flask-Caching's method names, Rails' ``fetch``.

Each public method is one user-visible operation: it builds keys and encodes
values, then runs its Redis work through the cache purpose's
:class:`~flask_rediscache.failopen.Boundary` (which fails open, or raises when
``REDIS_FAIL_OPEN`` is off) and the strict :class:`~flask_rediscache.store.Store`.
User code (``fetch``'s ``func``) never runs inside the boundary, so its
exceptions propagate untouched.

Only commands of Redis' ``@read`` and ``@write`` ACL categories are used (GET,
GETRANGE, SET, MGET, UNLINK, EXISTS, INCRBY, EXPIRE, PEXPIREAT, PERSIST, TTL,
PTTL, SCAN) and pipelines are never transactional, so the cache runs for a
least-privilege ACL user such as ``~cache:* +@read +@write``. The one
exception is :meth:`Cache.lock`, whose release is a script (``+evalsha``),
and which raises instead of failing open.

Instrumentation: each operation checks its signal's ``receivers`` once;
only when someone listens is it timed (:meth:`Cache._observed`) and sent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from flask import Flask

from . import signals
from .codec import MISS, Codec, version_bytes
from .config import Settings, timeout_seconds
from .errors import CircuitOpenError, UnpicklableError
from .failopen import Boundary, protect
from .keys import escape_glob, lock_key, make_key
from .locks import Lock
from .stampede import Stale, multi_plan, run_multi_plan, run_plan, stampede_plan
from .store import MISSING, Entry, Store

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")

_FAILED: Final = object()
_READ, _READ_MULTI = signals.cache_read, signals.cache_read_multi
_GENERATE, _WRITE, _WRITE_MULTI = signals.cache_generate, signals.cache_write, signals.cache_write_multi
_DELETE, _DELETE_MULTI = signals.cache_delete, signals.cache_delete_multi
_DELETE_MATCHED, _EXIST = signals.cache_delete_matched, signals.cache_exist
_INCREMENT, _DECREMENT = signals.cache_increment, signals.cache_decrement
_peek = Codec.peek


def epoch_seconds(when: Any, name: str = "expires_at") -> float:
    """An aware ``datetime`` or epoch seconds as epoch seconds (a naive
    datetime is refused: its zone would be a guess)."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"{name}={when!r} is a naive datetime: give it a timezone "
                             "(datetime.now(timezone.utc) + ...) or pass epoch seconds")
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        raise ValueError(f"{name}={when!r} is invalid: expected an aware datetime or epoch seconds")
    return float(when)


def race_seconds(value: Any) -> float:
    """Validate a ``race_condition_ttl`` (seconds or ``timedelta``; 0 = off)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86400:
        raise ValueError(f"race_condition_ttl={value!r} is invalid: expected seconds from 0 to 86400 "
                         "or a timedelta (0 turns stampede control off)")
    return float(seconds)


class Cache:
    """Cache operations bound to one app's settings, store and boundary.

    Reached through :class:`~flask_rediscache.RedisCache`, which resolves the
    current app's ``Cache`` on every call.
    """

    def __init__(self, app: Flask, settings: Settings, store: Store, boundary: Boundary) -> None:
        self.app = app
        self.settings = settings
        self.namespace = settings.namespace
        self.store = store
        self.boundary = boundary
        self.hits = 0
        self.misses = 0
        self._unpicklable_logged: set[str] = set()

    @property
    def client(self) -> Any:
        """The redis-py client of the cache purpose."""
        return self.store.client

    # -- helpers ---------------------------------------------------------
    def key(self, key: str) -> bytes:
        """The Redis key for a cache key (namespaced, digested when long)."""
        return make_key(self.namespace, key)

    def expiry(self, timeout: Any) -> int:
        """Seconds to live for ``timeout`` (None = default, 0 = forever)."""
        if timeout is None:
            return self.settings.default_timeout
        return timeout_seconds(timeout)

    def race_ttl(self, race_condition_ttl: Any) -> float:
        """``race_condition_ttl`` in seconds, ``REDIS_RACE_CONDITION_TTL`` when None."""
        if race_condition_ttl is None:
            return self.settings.race_condition_ttl or 0.0
        return race_seconds(race_condition_ttl)

    def record(self, key: str, hit: bool, local: bool = False) -> None:
        """Count a hit or a miss and send :data:`~flask_rediscache.signals.cache_hit`
        (with ``local=True`` when a local copy served it: only then, so receivers
        written for ``key`` alone keep working without ``REDIS_LOCAL_CACHE``)
        or :data:`~flask_rediscache.signals.cache_miss`."""
        if hit:
            self.hits += 1
            if signals.cache_hit.receivers:
                if local:
                    signals.cache_hit.send(self.app, key=key, local=True)
                else:
                    signals.cache_hit.send(self.app, key=key)
        else:
            self.misses += 1
            if signals.cache_miss.receivers:
                signals.cache_miss.send(self.app, key=key)

    def _observed(self, signal: Any, method: str, returning: Any, func: Callable[..., Any],
                  args: tuple[Any, ...], payload: dict[str, Any],
                  outcome: Callable[[Any, dict[str, Any]], Any] | None = None) -> Any:
        """``boundary.call(method, returning, func, *args)``, timed and sent as
        ``signal`` (called only when ``signal`` has receivers). ``outcome(result,
        payload)`` may add fields from the result and returns what the
        operation returns; ``error`` is added when the call failed open."""
        ran: list[Any] = [False, None]

        def run(*call_args: Any) -> Any:
            ran[0] = True
            try:
                return func(*call_args)
            except BaseException as exc:
                ran[1] = exc
                raise

        start = time.perf_counter()
        try:
            result = self.boundary.call(method, returning, run, *args)
        except BaseException as exc:  # REDIS_FAIL_OPEN = False re-raised it, or a bug
            payload["error"] = exc
            self._send(signal, time.perf_counter() - start, method, payload)
            raise
        duration = time.perf_counter() - start
        if not ran[0]:  # the breaker refused to send it
            payload["error"] = CircuitOpenError(f"circuit breaker open for {self.boundary.name}")
        elif ran[1] is not None:  # the store raised and the boundary failed open
            payload["error"] = ran[1]
        if outcome is not None:
            result = outcome(result, payload)
        self._send(signal, duration, method, payload)
        return result

    def _send(self, signal: Any, duration: float, method: str, payload: dict[str, Any]) -> None:
        payload.setdefault("operation", method)
        payload.setdefault("local", False)
        protect(f"{signal.name} receiver", signal.send, self.app, duration=duration, purpose="cache",
                **payload)

    def _op(self, signal: Any, method: str, returning: Any, func: Callable[..., Any], *args: Any,
            **payload: Any) -> Any:
        """One fail-open store call; timed and sent as ``signal`` when someone listens."""
        if signal.receivers:
            return self._observed(signal, method, returning, func, args, payload)
        return self.boundary.call(method, returning, func, *args)

    def generate(self, key: Any, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call user code computing a missed value, sending
        :data:`~flask_rediscache.signals.cache_generate` when someone listens."""
        if not _GENERATE.receivers:
            return func(*args, **kwargs)
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            protect("cache_generate receiver", _GENERATE.send, self.app, key=key,
                    duration=time.perf_counter() - start, purpose="cache", local=False, operation="generate")

    # -- reads -------------------------------------------------------------
    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when it is missing,
        expired or unreadable (pass a sentinel ``default`` to tell a cached
        ``None`` from a miss).

        ``version`` (``str``/``int``, Rails' recyclable keys): only an entry
        written with that version is a hit; any other entry is a miss (and
        the next versioned write replaces it in place). Without ``version``
        any entry is read, versioned or not.

        ``signed=True`` accepts only entries this package signed (memoize,
        cached and fetch read that way; plain counters written by :meth:`inc`
        are then a miss). ``stale=True`` is the stampede-aware read used by
        :meth:`fetch` and the decorators: an entry past its logical expiry
        comes back as :class:`Stale`, and only a fresh hit is recorded (for
        a miss or a stale entry the caller records exactly one outcome).
        """
        return self._read("get", key, default, signed, stale, version)

    def _read(self, method: str, key: str, default: Any, signed: bool, stale: bool,
              version: Any = None) -> Any:
        rkey = make_key(self.namespace, key)
        if _READ.receivers:
            entry: Entry | None = self._observed(
                _READ, method, None, self.store.read_sized, (rkey, not signed, version_bytes(version)),
                {"key": key}, _read_outcome)
        elif version is None:
            entry = self.boundary.call(method, None, self.store.read, rkey, not signed)
        else:
            entry = self.boundary.call(method, None, self.store.read, rkey, not signed,
                                       version_bytes(version))
        if entry is None or entry.value is MISS:
            if not stale:
                self.record(key, False)
            return default
        if entry.stale:
            if stale:
                return Stale(entry.value)
            self.record(key, False)
            return default
        self.record(key, True, entry.local)
        return entry.value

    def _read_entries(self, method: str, keys: Sequence[str], signed: bool,
                      version: Any) -> list[Entry] | None:
        """One MGET of ``keys`` through the boundary (timed when someone listens)."""
        namespace = self.namespace
        rkeys = [make_key(namespace, k) for k in keys]
        vbytes = version_bytes(version)
        if _READ_MULTI.receivers:
            return self._observed(_READ_MULTI, method, None, self.store.read_many_sized,  # type: ignore[no-any-return]
                                  (rkeys, not signed, vbytes), {"key": list(keys)},
                                  _multi_outcome(keys))
        return self.boundary.call(method, None, self.store.read_many, rkeys, not signed, vbytes)

    def get_many(self, *keys: str, signed: bool = False, version: Any = None) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss; one ``MGET``
        (per hash slot on a cluster). Records one hit or miss per key."""
        if not keys:
            return []
        entries = self._read_entries("get_many", keys, signed, version)
        out: list[Any] = []
        if entries is None:
            for key in keys:
                self.record(key, False)
                out.append(None)
            return out
        if signals.cache_hit.receivers or signals.cache_miss.receivers:
            record = self.record
            for key, entry in zip(keys, entries, strict=True):
                hit = entry.value is not MISS and not entry.stale
                record(key, hit, entry.local)
                out.append(entry.value if hit else None)
            return out
        # Nobody listens: count in bulk (a hundred method calls less per batch).
        append = out.append
        hits = 0
        for entry in entries:
            if entry.value is not MISS and not entry.stale:
                hits += 1
                append(entry.value)
            else:
                append(None)
        self.hits += hits
        self.misses += len(entries) - hits
        return out

    def get_dict(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """:meth:`get_many` as a ``{key: value}`` dict (``None`` for misses)."""
        return dict(zip(keys, self.get_many(*keys, version=version), strict=True))

    def read_multi(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """Rails' ``read_multi``: ``{key: value}`` of the keys *found*, in the
        order of ``keys``, in one ``MGET``. Unlike :meth:`get_dict`, a miss is
        left out (so a cached ``None`` is told apart from a miss)."""
        if not keys:
            return {}
        entries = self._read_entries("read_multi", keys, False, version)
        out: dict[str, Any] = {}
        for key, entry in zip(keys, entries or [MISSING] * len(keys), strict=True):
            hit = entry.value is not MISS and not entry.stale
            self.record(key, hit, entry.local)
            if hit:
                out[key] = entry.value
        return out

    def has(self, key: str, *, version: Any = None) -> bool:
        """Whether ``key`` holds a live entry, as Rails' ``exist?``: an entry
        past its logical expiry (kept only for ``race_condition_ttl``) does
        not count, nor (with ``version``) an entry of another version.
        One ``GETRANGE`` of the entry's header: the value is not transferred
        (its signature is not checked either: ``has`` never unpickles)."""
        rkey = self.key(key)
        vbytes = version_bytes(version)
        if _EXIST.receivers:
            def outcome(head: Any, payload: dict[str, Any]) -> bool:
                payload["exist"] = live = _live(head, vbytes, time.time())
                payload["size"] = len(head)
                return live
            return bool(self._observed(_EXIST, "has", b"", self.store.peek, (rkey,), {"key": key}, outcome))
        return _live(self.boundary.call("has", b"", self.store.peek, rkey), vbytes, time.time())

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires (django-redis' meaning, rounded up):
        ``None`` when it has no expiry, ``0`` when it is missing (or Redis
        failed). For an entry written with ``race_condition_ttl`` this is its
        *logical* expiry: inside the stale window ``ttl`` is ``0`` and
        :meth:`has` is ``False``. One round trip (``PTTL`` + ``GETRANGE`` of
        the header)."""
        pttl, head = self.boundary.call("ttl", (-2, b""), self.store.pttl_peek, self.key(key))
        if pttl == -2:
            return 0
        if pttl == -1:
            return None
        seconds = math.ceil(pttl / 1000)
        meta = _peek(head)
        if meta is not None and meta[0] is not None:
            logical = meta[0] - time.time()
            return max(0, min(seconds, math.ceil(logical)))
        return max(0, seconds)

    # -- expiry --------------------------------------------------------------
    def expire(self, key: str, timeout: Any) -> bool:
        """Give ``key`` a new TTL (seconds or ``timedelta``; ``0`` removes the
        expiry): one ``EXPIRE``, the value is not transferred. ``True`` if the
        key exists (for ``0``: if a TTL was removed). An entry written with
        ``race_condition_ttl`` keeps its logical expiry: fetch/memoize still
        recompute it then."""
        if timeout is None:
            raise ValueError("expire(key, timeout): timeout is required (use touch() for the default)")
        return bool(self.boundary.call("expire", False, self.store.expire, self.key(key),
                                       timeout_seconds(timeout)))

    def expire_at(self, key: str, when: Any) -> bool:
        """Expire ``key`` at ``when`` (an aware ``datetime`` or epoch seconds):
        one ``PEXPIREAT``. ``True`` if the key exists; a time in the past deletes it."""
        when_ms = int(epoch_seconds(when, "when") * 1000)
        return bool(self.boundary.call("expire_at", False, self.store.expire_at_ms, self.key(key), when_ms))

    def persist(self, key: str) -> bool:
        """Remove ``key``'s expiry (``PERSIST``); ``True`` if a TTL was removed."""
        return bool(self.boundary.call("persist", False, self.store.persist, self.key(key)))

    def touch(self, key: str, timeout: Any = None) -> bool:
        """Reset ``key``'s TTL to ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``;
        ``0`` = no expiry), Django's ``touch``: one command (``EXPIRE``, or
        ``PERSIST`` for 0), no value transferred. ``True`` if the key exists."""
        return bool(self.boundary.call("touch", False, self.store.expire, self.key(key),
                                       self.expiry(timeout)))

    # -- writes --------------------------------------------------------------
    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool:
        """Store ``value`` (any picklable object) for ``timeout`` seconds or a
        ``timedelta``; ``None`` means ``REDIS_DEFAULT_TIMEOUT``, ``0`` no expiry.
        ``False`` if Redis failed. An unpicklable value raises
        :class:`~flask_rediscache.errors.UnpicklableError` (a ``TypeError``).

        ``version`` is stored inside the entry (see :meth:`get`): the key
        stays the same, so bumping the version replaces the entry in place.
        ``signed=True`` never uses the plain counter form for an ``int``;
        ``race_condition_ttl`` keeps the entry that many seconds past its
        logical expiry (what :meth:`fetch` and ``memoize`` write).
        """
        rkey = self.key(key)
        ttl = self.expiry(timeout)
        store = self.store
        vbytes = version_bytes(version)
        if race_condition_ttl and ttl:
            data = store.encode(rkey, value, signed=True, expires_at=time.time() + ttl, version=vbytes)
            args: tuple[Any, ...] = (rkey, data, ttl, race_condition_ttl)
        else:
            data = store.encode(rkey, value, signed=signed, version=vbytes)
            args = (rkey, data, ttl)
        if _WRITE.receivers:
            return bool(self._observed(_WRITE, "set", False, store.write, args,
                                       {"key": key, "size": len(data)}))
        return bool(self.boundary.call("set", False, store.write, *args))

    def add(self, key: str, value: Any, timeout: Any = None, *, version: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent, atomically (``SET NX``).
        ``True`` if this call stored it; ``False`` if the key existed or Redis
        failed (the command is never retried, so a lost reply is ``False``,
        never a second attempt that reports the opposite). An entry of another
        ``version`` still counts as present."""
        rkey = self.key(key)
        data = self.store.encode(rkey, value, version=version_bytes(version))
        return bool(self._op(_WRITE, "add", False, self.store.add, rkey, data, self.expiry(timeout),
                             key=key, size=len(data)))

    def _encode_many(self, items: Iterable[tuple[str, Any]], version: Any, *,
                     expires_at: float | None = None,
                     skip: bool = False) -> tuple[list[str], list[tuple[bytes, bytes]]]:
        store = self.store
        vbytes = version_bytes(version)
        names: list[str] = []
        encoded: list[tuple[bytes, bytes]] = []
        for key, value in items:
            rkey = self.key(key)
            try:
                data = store.encode(rkey, value, signed=expires_at is not None, expires_at=expires_at,
                                    version=vbytes)
            except UnpicklableError as exc:
                if not skip:
                    raise
                self.unpicklable(value, exc)
                continue
            names.append(key)
            encoded.append((rkey, data))
        return names, encoded

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None, *, version: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip (a non-transactional
        pipeline). Returns the keys that were stored (``[]`` if Redis failed)."""
        return self._write_many("set_many", list(mapping.items()), self.expiry(timeout), 0, version)

    def write_multi(self, mapping: Mapping[str, Any], timeout: Any = None, *,
                    version: Any = None) -> list[str]:
        """Rails' ``write_multi``: :meth:`set_many` (one round trip); returns the keys stored."""
        return self._write_many("write_multi", list(mapping.items()), self.expiry(timeout), 0, version)

    def _write_many(self, method: str, items: list[tuple[str, Any]], ttl: int, race_ttl: float,
                    version: Any, *, skip: bool = False) -> list[str]:
        if not items:
            return []
        expires_at = time.time() + ttl if race_ttl and ttl else None
        names, encoded = self._encode_many(items, version, expires_at=expires_at, skip=skip)
        if not encoded:
            return []
        extra = race_ttl if expires_at is not None else 0
        if _WRITE_MULTI.receivers:
            results = self._observed(_WRITE_MULTI, method, None, self.store.write_many, (encoded, ttl, extra),
                                     {"key": names, "size": sum(len(data) for _, data in encoded)})
        else:
            results = self.boundary.call(method, None, self.store.write_many, encoded, ttl, extra)
        if results is None:
            return []
        return [key for key, ok in zip(names, results, strict=True) if ok]

    def delete(self, key: str, *, version: Any = None) -> bool:
        """Delete ``key`` (``UNLINK``: the memory is freed in the background);
        ``True`` if it existed. With ``version``, only an entry of that
        version is deleted (``GET`` then ``UNLINK``)."""
        if version is None:
            return bool(self._op(_DELETE, "delete", 0, self.store.unlink, [self.key(key)], key=key))
        return bool(self._op(_DELETE, "delete", False, self.store.delete_version, self.key(key),
                             version_bytes(version), key=key))

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed."""
        if not keys:
            return 0
        return int(self._op(_DELETE_MULTI, "delete_many", 0, self.store.unlink, [self.key(k) for k in keys],
                            key=list(keys)))

    def unlink(self, *keys: str) -> int:
        """Flask-Caching's ``unlink``: delete ``keys`` in one round trip with
        ``UNLINK`` (the memory is freed in the background); returns how many
        existed. :meth:`delete` and :meth:`delete_many` use ``UNLINK`` too."""
        if not keys:
            return 0
        return int(self._op(_DELETE_MULTI, "unlink", 0, self.store.unlink, [self.key(k) for k in keys],
                            key=list(keys)))

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta`` (``INCRBY``) and return the new value; a
        missing key counts from 0. ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``,
        ``0`` = none) sets a TTL only when the key has none, so a rate-limit
        window is not extended by each hit; INCRBY and ``EXPIRE NX`` share one
        round trip. ``None`` if Redis failed (the command is never retried: a
        lost reply must not count twice) or the key holds a non-counter."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self._incr("inc", _INCREMENT, key, delta, delta, timeout)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """:meth:`inc` by ``-delta``."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self._incr("dec", _DECREMENT, key, -delta, delta, timeout)

    def _incr(self, method: str, signal: Any, key: str, delta: int, amount: int, timeout: Any) -> int | None:
        result: int | None = self._op(signal, method, None, self.store.incr, self.key(key), delta,
                                      self.expiry(timeout), key=key, amount=amount)
        return result

    def delete_matched(self, pattern: str) -> int:
        """Delete every key of the namespace matching the Redis glob ``pattern``
        (``"user:*"`` deletes ``<namespace>:user:*``) with ``SCAN`` in batches and
        ``UNLINK``, never ``KEYS``, so Redis is not blocked; on a cluster every
        primary is scanned. Returns how many keys were deleted (0 if Redis
        failed). Keys longer than 250 bytes are stored as a head and a
        digest, so match them by their start."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
        match = (escape_glob(self.namespace) + ":" + pattern).encode("utf-8", "surrogatepass")
        return int(self._op(_DELETE_MATCHED, "delete_matched", 0, self.store.delete_matching, match,
                            key=pattern))

    def clear(self) -> int:
        """Delete every key of the namespace (``delete_matched("*")``); never
        ``FLUSHDB``/``FLUSHALL``, so other data in the same Redis survives."""
        return self.delete_matched("*")

    # -- fetch and its stampede lock -----------------------------------------
    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False, *,
              skip_nil: bool = False, expires_at: Any = None, version: Any = None) -> T:
        """The cached value of ``key``, or ``func()`` computed, stored and returned.

        With ``race_condition_ttl`` (default ``REDIS_RACE_CONDITION_TTL``; ``0``
        turns it off) the entry stays in Redis that many seconds past its
        logical expiry. Once it has expired, one caller takes a short lock and
        recomputes while the others get the stale value at once; on a cold
        key the others poll briefly for the winner's value instead of all
        computing. ``force=True`` recomputes and stores without reading. A
        Redis failure just means ``func()`` is called; exceptions from
        ``func`` propagate and nothing is stored.

        ``skip_nil=True`` does not store a ``None`` result (Rails'
        ``skip_nil``). ``expires_at`` (an aware ``datetime`` or epoch seconds)
        replaces ``timeout``; a time already past computes without storing.
        ``version`` as in :meth:`get`/:meth:`set`.
        """
        race_ttl = self.race_ttl(race_condition_ttl)  # a bad value raises even on a hit
        should_store: Callable[[Any], bool] | None = (lambda value: value is not None) if skip_nil else None
        if expires_at is not None:
            if timeout is not None:
                raise ValueError("fetch(): give timeout or expires_at, not both")
            remaining = epoch_seconds(expires_at) - time.time()
            ttl = math.ceil(remaining) if remaining > 0 else 0
            if not ttl:
                should_store = _never
        else:
            ttl = self.expiry(timeout)
        found = MISS if force else self._read("fetch", key, MISS, True, True, version)
        if found is not MISS and not isinstance(found, Stale):
            return found  # type: ignore[return-value]
        plan = stampede_plan(self, key, ttl, race_ttl, found, force=force, should_store=should_store,
                             version=version)
        value: T = run_plan(plan, self.generate, key, func)
        return value

    def fetch_multi(self, keys: Iterable[str], compute: Callable[[list[str]], Mapping[str, Any]], *,
                    timeout: Any = None, race_condition_ttl: float | None = None, skip_nil: bool = False,
                    version: Any = None) -> dict[str, Any]:
        """Rails' ``fetch_multi``: ``{key: value}`` for every key, in the order of ``keys``.

        One read round trip for all keys (``MGET``; one per slot group on a
        cluster); then ``compute(missing)`` is called **once** with the list
        of keys that missed and returns a mapping with a value for each; those
        are stored in one round trip (a pipeline) and returned with the hits.
        With ``race_condition_ttl`` the missing keys get what :meth:`fetch`
        gives one key: expired entries are served stale to everyone but the
        caller that takes their lock (one pipeline of ``SET NX PX``), and keys
        another caller is computing are waited for. ``skip_nil`` and
        ``version`` as in :meth:`fetch`. A mapping that lacks a missing key
        raises ``KeyError`` (nothing is stored); exceptions from ``compute``
        propagate.
        """
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            if not isinstance(key, str):
                raise TypeError(f"cache keys must be str, not {type(key).__name__}: {key!r:.80}")
        race_ttl = self.race_ttl(race_condition_ttl)
        ttl = self.expiry(timeout)
        if not wanted:
            return {}
        entries = self._read_entries("fetch_multi", wanted, True, version) or [MISSING] * len(wanted)
        result: dict[str, Any] = {}
        found: dict[str, Any] = {}
        for key, entry in zip(wanted, entries, strict=True):
            if entry.value is MISS:
                found[key] = MISS
            elif entry.stale:
                found[key] = Stale(entry.value)
            else:
                result[key] = entry.value
                self.record(key, True)
        if found:
            plan = multi_plan(self, found, ttl, race_ttl, version=version, skip_nil=skip_nil)
            result.update(run_multi_plan(plan, lambda missing: self._compute_many(compute, missing)))
        return {key: result[key] for key in wanted}

    def _compute_many(self, compute: Callable[[list[str]], Mapping[str, Any]],
                      missing: list[str]) -> Mapping[str, Any]:
        values = self.generate(list(missing), compute, list(missing))
        if not isinstance(values, Mapping):
            raise TypeError(f"fetch_multi: compute() must return a mapping of key to value, "
                            f"not {type(values).__name__}")
        absent = [key for key in missing if key not in values]
        if absent:
            raise KeyError(f"fetch_multi: compute() returned no value for {absent[:5]!r}"
                           f"{' and more' if len(absent) > 5 else ''}")
        return values

    def store_many(self, values: Mapping[str, Any], ttl: int, race_ttl: float, version: Any,
                   skip_nil: bool) -> None:
        """Store what ``fetch_multi`` computed, in one round trip (unpicklable values are skipped)."""
        items = [(k, v) for k, v in values.items() if not (skip_nil and v is None)]
        self._write_many("fetch_multi", items, ttl, race_ttl, version, skip=True)

    def read_fresh(self, keys: Sequence[str], version: Any) -> dict[str, Any]:
        """The fresh hits among ``keys`` (one MGET), each recorded as a hit."""
        entries = self._read_entries("fetch_multi", keys, True, version) or []
        out: dict[str, Any] = {}
        for key, entry in zip(keys, entries, strict=False):
            if entry.value is not MISS and not entry.stale:
                out[key] = entry.value
                self.record(key, True)
        return out

    def try_lock(self, key: str, token: bytes, seconds: float) -> bool | None:
        """Take the stampede lock of ``key``: ``True`` if taken, ``False`` if
        someone holds it, ``None`` if Redis failed (then compute without it)."""
        ms = max(1, int(seconds * 1000))
        got = self.boundary.call("lock", _FAILED, self.store.acquire, lock_key(self.namespace, self.key(key)),
                                 token, ms)
        return None if got is _FAILED else bool(got)

    def try_locks(self, keys: Sequence[str], token: bytes, seconds: float) -> list[bool] | None:
        """:meth:`try_lock` for several keys in one round trip; ``None`` if Redis failed."""
        ms = max(1, int(seconds * 1000))
        locks = [lock_key(self.namespace, self.key(k)) for k in keys]
        got = self.boundary.call("lock", None, self.store.acquire_many, locks, token, ms)
        return None if got is None else list(got)

    def unlock(self, key: str, token: bytes) -> None:
        """Release the stampede lock of ``key`` if it still holds ``token``."""
        self.boundary.call("unlock", None, self.store.release, lock_key(self.namespace, self.key(key)), token)

    def unlock_many(self, keys: Sequence[str], token: bytes) -> None:
        """:meth:`unlock` for several keys (two round trips in all)."""
        locks = [lock_key(self.namespace, self.key(k)) for k in keys]
        self.boundary.call("unlock", None, self.store.release_many, locks, token)

    def unpicklable(self, value: Any, exc: BaseException) -> None:
        """A computed value could not be pickled: it is served uncached; say so once per type."""
        kind = type(value).__name__
        if kind not in self._unpicklable_logged:
            self._unpicklable_logged.add(kind)
            logger.warning("flask-rediscache: a %s result was not cached, it cannot be "
                           "pickled: %s: %s", kind, type(exc).__name__, exc)

    # -- named locks --------------------------------------------------------
    def lock(self, name: str, timeout: float | None = 10, blocking_timeout: float | None = 5, *,
             blocking: bool = True, sleep: float = 0.1, thread_local: bool = True) -> Lock:
        """A distributed lock named ``name`` (``<namespace>:locks:<name>``), built
        on redis-py's ``Lock``: ``with cache.lock("nightly-report"): ...``.

        ``timeout`` (seconds; ``None`` = until released) bounds how long a
        holder that died keeps it; ``blocking_timeout`` how long ``with``
        waits for it (``blocking=False``: not at all). The release checks the
        token, so only the holder releases it; ``extend()``/``reacquire()``
        renew it. Never fails open: an unreachable or refusing Redis, or a
        lock not free in time, raises :class:`~flask_rediscache.errors.LockError`.
        """
        if not isinstance(name, str):
            raise TypeError(f"lock names must be str, not {type(name).__name__}")
        return self.store.lock(make_key(self.namespace, "locks:" + name), timeout, sleep, blocking,
                               blocking_timeout, thread_local)


def _never(value: Any) -> bool:
    return False


def _read_outcome(result: Any, payload: dict[str, Any]) -> Entry | None:
    """Split ``read_sized``'s ``(entry, size)`` for the ``cache_read`` payload."""
    if result is None:
        payload["hit"] = False
        payload["size"] = 0
        return None
    entry, size = result
    payload["hit"] = entry.value is not MISS and not entry.stale
    payload["size"] = size
    payload["local"] = entry.local
    return entry  # type: ignore[no-any-return]


def _multi_outcome(keys: Sequence[str]) -> Callable[[Any, dict[str, Any]], list[Entry] | None]:
    def outcome(result: Any, payload: dict[str, Any]) -> list[Entry] | None:
        if result is None:
            payload.update(hits=[], misses=list(keys), size=0)
            return None
        entries, size = result
        hits = [k for k, e in zip(keys, entries, strict=True) if e.value is not MISS and not e.stale]
        found = set(hits)
        payload.update(hits=hits, misses=[k for k in keys if k not in found], size=size,
                       local=bool(entries) and all(e.local for e in entries))
        return entries  # type: ignore[no-any-return]
    return outcome


def _live(head: bytes, version: bytes | None, now: float) -> bool:
    """Does the header ``head`` (from ``GETRANGE``) belong to a live entry of ``version``?"""
    if not head:
        return False
    meta = _peek(head)
    if meta is None:  # a counter or foreign bytes: present, unversioned
        return version is None
    expires_at, stored = meta
    if version is not None and stored != version:
        return False
    return expires_at is None or expires_at > now
