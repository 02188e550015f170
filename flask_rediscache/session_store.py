"""The strict session store: the only module that sends the session purpose's commands.

Like :mod:`flask_rediscache.store` for the cache, every method raises Redis'
own errors; :class:`~flask_rediscache.sessions.RedisSessionInterface` runs
each call through the session purpose's fail-open
:class:`~flask_rediscache.failopen.Boundary`. Only redis-py's public client
API is used: client methods, a non-transactional pipeline for the read,
:meth:`~redis.Redis.register_script` for the save, and
:meth:`~redis.Redis.transaction` (``WATCH``/``MULTI``/``EXEC``) where Lua is
not available (``memory://``: fakeredis runs Lua only with ``lupa``).

A session is a hash ``<prefix>:<sha256(id)>``, one field per top-level key.

* :meth:`SessionStore.load` is one round trip: ``HGETALL``, pipelined with the
  sliding ``EXPIRE`` when one is due. The read stands on its own: a refused
  ``EXPIRE`` (``READONLY`` on a replica) is returned beside the data, never
  instead of it, and a value of another type at the key (``WRONGTYPE``) reads
  as a missing session.
* :meth:`SessionStore.save` is one round trip: one ``EVALSHA`` of
  :data:`SAVE_SCRIPT`, which applies the whole change or nothing (the script
  carries a ``#!lua`` shebang, so Redis 7 refuses it *before* it runs when the
  server is out of memory, instead of per write command), and which only
  updates a session that still exists: a session deleted (log-out) or moved
  (``regenerate()``) by another request since this one loaded it is not
  re-created. ``regenerate()`` is :meth:`SessionStore.move`: the new key is
  written, then the old one deleted (two steps; see there why).

Every command here is safe to repeat, so each call goes through the
purpose's retry policy (:attr:`Target.retry <flask_rediscache.clients.Target.retry>`,
``REDIS_RECONNECT_*``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from redis.exceptions import ResponseError
from redis.retry import Retry

T = TypeVar("T")

#: The save, atomically. KEYS[1]: the session's key. ARGV: mode ("create",
#: "update" or "replace"), TTL in seconds, the number of fields to set, the
#: field/value pairs, then the fields to delete. Returns 1 when applied, 0
#: when the session no longer exists (and then nothing was written).
SAVE_SCRIPT: Final = """#!lua
local key, mode, ttl, nset = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
if mode ~= "create" and redis.call("EXISTS", key) == 0 then
  return 0 -- logged out, regenerated or expired meanwhile: never re-create it
end
if mode == "replace" then
  redis.call("DEL", key)
end
if nset > 0 then
  redis.call("HSET", key, unpack(ARGV, 4, 3 + 2 * nset))
end
if #ARGV > 3 + 2 * nset then
  redis.call("HDEL", key, unpack(ARGV, 4 + 2 * nset, #ARGV))
end
redis.call("EXPIRE", key, ttl)
return 1
"""

#: The field where :class:`flask.sessions.SessionMixin` keeps ``session.permanent``.
PERMANENT_FIELD: Final = "_permanent"

#: The save modes.
CREATE: Final = "create"  # a new session under a fresh random id
UPDATE: Final = "update"  # set and delete fields of an existing session
REPLACE: Final = "replace"  # the whole content of an existing session (it was cleared)


@dataclass
class Loaded:
    """What :meth:`SessionStore.load` found."""

    #: The stored fields; None when there is no session (missing, expired, or
    #: a value of another type at the key).
    fields: dict[bytes, bytes] | None
    #: The sliding ``EXPIRE`` was applied (the key existed and the server accepted it).
    refreshed: bool = False
    #: Why the sliding ``EXPIRE`` was refused, if it was (the data above still stands).
    refresh_error: Exception | None = None


@dataclass
class Refreshed:
    """What :meth:`SessionStore.refresh` found."""

    #: The key existed and its TTL was reset.
    alive: bool
    #: The stored ``_permanent`` field (tagged JSON), if any.
    permanent: bytes | None


@dataclass
class SavePlan:
    """One atomic save: what :meth:`SessionStore.save` applies."""

    mode: str
    key: str
    ttl: int
    sets: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)


class SessionStore:
    """Session-purpose commands for one app (keys in, raw fields out; raises)."""

    def __init__(self, client: Any, retry: Retry, *, kind: str) -> None:
        self.client = client
        self.retry = retry
        self.kind = kind
        # fakeredis runs Lua only with the optional lupa package: memory://
        # saves use WATCH/MULTI/EXEC instead (in-process, so the extra round
        # trips cost nothing).
        self._script = None if kind == "memory" else client.register_script(SAVE_SCRIPT)

    def _idempotent(self, do: Callable[[], T]) -> T:
        """``do()``, retried on connection errors (every session command may be repeated)."""
        return self.retry.call_with_retry(do, _nothing)

    # -- reads -------------------------------------------------------------
    def load(self, key: str, ttl: int | None) -> Loaded:
        """``HGETALL key``, pipelined with ``EXPIRE key ttl`` when ``ttl`` is given.

        Without a refresh (most requests) it is a plain ``HGETALL``: redis-py's
        Pipeline object costs about 10 µs more than the command itself.
        """
        client = self.client

        def run() -> list[Any]:
            if ttl is None:
                try:
                    return [client.hgetall(key)]
                except ResponseError as exc:
                    if type(exc) is not ResponseError:
                        raise
                    return [exc]
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(key)
            pipe.expire(key, ttl)
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        replies = self._idempotent(run)
        data = replies[0]
        if isinstance(data, Exception):
            # WRONGTYPE has no class of its own in redis-py: a plain ResponseError
            # here is a value of another type, i.e. no session of ours. Refusals
            # with a class (NOPERM, ...) are errors.
            if type(data) is ResponseError:
                data = None
            else:
                raise data
        fields = dict(data) if data else None
        if ttl is None:
            return Loaded(fields)
        expired = replies[1]
        if isinstance(expired, Exception):
            return Loaded(fields, False, expired)
        return Loaded(fields, bool(expired) and fields is not None)

    # -- writes --------------------------------------------------------------
    def save(self, plan: SavePlan) -> bool:
        """Apply ``plan`` entirely or not at all; False if the session no longer exists."""
        if self._script is None:
            return self._idempotent(lambda: self._save_transaction(plan))
        args: list[Any] = [plan.mode, plan.ttl, len(plan.sets)]
        for name, value in plan.sets.items():
            args += (name, value)
        args += plan.deletes
        script = self._script
        keys = [plan.key]
        return bool(self._idempotent(lambda: script(keys=keys, args=args)))

    def move(self, old_key: str, plan: SavePlan) -> bool:
        """``regenerate()``: the whole session (``plan``, a ``create``) under its
        new key, then the old key deleted; False, with nothing left behind, if
        the old key was already gone (a log-out or another regenerate() since
        this request loaded it).

        Two steps, so that a save whose reply is lost (a timeout) never
        destroys the only copy: until the old key is deleted, the client's old
        cookie still works. (They are also in different cluster slots, where
        no script could span both.)
        """
        self.save(plan)
        if self.delete(old_key):
            return True
        self.delete(plan.key)
        return False

    def _save_transaction(self, plan: SavePlan) -> bool:
        """:data:`SAVE_SCRIPT` as ``WATCH``/``MULTI``/``EXEC`` (memory://)."""
        def run(pipe: Any) -> bool:
            if plan.mode != CREATE and not pipe.exists(plan.key):
                return False
            pipe.multi()
            if plan.mode == REPLACE:
                pipe.delete(plan.key)
            if plan.sets:
                pipe.hset(plan.key, mapping=plan.sets)
            if plan.deletes:
                pipe.hdel(plan.key, *plan.deletes)
            pipe.expire(plan.key, plan.ttl)
            return True

        return bool(self.client.transaction(run, plan.key, value_from_callable=True))

    def refresh(self, key: str, ttl: int) -> Refreshed:
        """Slide the TTL of a session nobody read in this request: ``EXPIRE``,
        pipelined with ``HGET key _permanent`` (the new cookie's ``Expires``
        depends on it) instead of reading the whole hash."""
        client = self.client

        def run() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.hget(key, PERMANENT_FIELD)
            pipe.expire(key, ttl)
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        permanent, expired = self._idempotent(run)
        if isinstance(expired, Exception):
            raise expired
        if isinstance(permanent, Exception):  # a value of another type: no session
            return Refreshed(False, None)
        return Refreshed(bool(expired), permanent)

    def delete(self, key: str) -> bool:
        """``DEL key`` (a log-out); True if it existed."""
        client = self.client
        return bool(self._idempotent(lambda: client.delete(key)))

    def delete_fields(self, key: str, names: Sequence[bytes]) -> int:
        """``HDEL key names...`` (the last fields were popped)."""
        client = self.client
        return int(self._idempotent(lambda: client.hdel(key, *names)))


def _nothing(*_args: Any) -> None:
    """Retry's failure callback: redis-py has already dropped the broken connection."""
