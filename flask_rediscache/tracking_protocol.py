"""Redis' side of the process near-cache: starting BCAST tracking and reading its messages.

:func:`start_tracking` runs, on one dedicated connection::

    CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <namespace>:
    SUBSCRIBE __redis__:invalidate

From then on Redis sends the name of every key under the namespace that
anyone modifies (or that expires or is evicted) to that connection, and a
null message on ``FLUSHDB``/``FLUSHALL``. This works on Redis 6 and newer
over RESP2, which is why the connection is forced to ``protocol=2``: under
RESP3 the messages would arrive as push replies redis-py's connection does
not hand back here. redis-py's ``PubSub`` is not used: it cannot send
``CLIENT ID``/``CLIENT TRACKING`` on its connection before subscribing, and
it silently reconnects and resubscribes, which would lose the tracking
without telling anyone. The connection is driven through redis-py's public
``Connection`` methods and never reused after an error.
"""

from __future__ import annotations

from typing import Any, Final

CHANNEL: Final = b"__redis__:invalidate"
#: What :func:`parse` makes of a message: keys to drop, drop everything, or a PING's answer.
KEYS: Final = "keys"
FLUSH: Final = "flush"
PONG: Final = "pong"


def start_tracking(conn: Any, prefix: bytes) -> None:
    """Connect ``conn`` (a new redis-py ``Connection`` speaking RESP2) and subscribe
    it to the invalidations of every key under ``prefix``; raises what Redis
    refuses (an ACL without ``CLIENT``/``SUBSCRIBE`` rights, say)."""
    conn.connect()
    conn.send_command("CLIENT", "ID")
    client_id = int(conn.read_response())
    conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix)
    conn.read_response()
    conn.send_command("SUBSCRIBE", CHANNEL)
    reply = conn.read_response()
    if not (isinstance(reply, list) and reply[:2] == [b"subscribe", CHANNEL]):
        raise RuntimeError(f"unexpected reply to SUBSCRIBE: {reply!r:.80}")


def parse(message: Any) -> tuple[str, list[bytes]] | None:
    """``(KEYS, keys)``, ``(FLUSH, [])`` or ``(PONG, [])`` for a message read
    from a tracking connection; None for anything else."""
    if not isinstance(message, list) or not message:
        return None
    kind = message[0]
    if kind == b"message" and len(message) == 3 and message[1] == CHANNEL:
        keys = message[2]
        return (FLUSH, []) if keys is None else (KEYS, list(keys))
    if kind == b"pong":
        return PONG, []
    return None
