"""Subscribing: the ``text/event-stream`` response of ``Cable.stream``.

Part of :class:`~flask_rediscache.cable.Cable` (its :class:`Streams` base):
registering with the process's :class:`~flask_rediscache.cable_reader.Reader`,
replaying what a reconnecting client missed after its ``Last-Event-ID``, then
the live messages as server-sent events with heartbeat comments in between,
until the stream's lifetime ends or the client goes away.
"""

from __future__ import annotations

import random
import select
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from flask import Response, has_request_context, request

from .cable_subscription import Entry, Subscription, format_id, parse_id

if TYPE_CHECKING:  # pragma: no cover
    from .cable import CableSettings
    from .cable_reader import Reader
    from .failopen import Boundary
    from .retrying import Retrier

#: Seconds between two checks of gunicorn's client socket for a closed connection.
DISCONNECT_CHECK_SECONDS: Final = 1.0
#: Entries fetched per ``XRANGE`` call while replaying.
REPLAY_PAGE: Final = 500

_FAILED: Final = object()


def sse_message(entry: Entry) -> bytes:
    """One server-sent event: ``id:``, ``event:`` (if any) and ``data:`` lines."""
    entry_id, fields = entry
    lines = [b"id: " + entry_id]
    event = fields.get(b"e")
    if event:
        lines.append(b"event: " + event.replace(b"\n", b"").replace(b"\r", b""))
    data = fields.get(b"d", b"null")
    lines.extend(b"data: " + line for line in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    return b"\n".join(lines) + b"\n\n"


def _next_id(value: bytes) -> bytes:
    """The smallest id after ``value`` (an exclusive ``XRANGE`` start that Redis < 6.2 accepts)."""
    ms, seq = parse_id(value)
    return format_id((ms, seq + 1)).encode("ascii")


class _PeerWatch:
    """Tells whether the client closed its connection, from gunicorn's socket (read only, peeked)."""

    def __init__(self, sock: Any) -> None:
        self._socket = sock if isinstance(sock, socket.socket) else None
        self._poll: Any = None
        if self._socket is not None and hasattr(select, "poll"):
            try:
                self._poll = select.poll()
                self._poll.register(self._socket.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            except (OSError, ValueError):
                self._poll = None

    @property
    def available(self) -> bool:
        return self._poll is not None

    def gone(self) -> bool:
        if self._poll is None or self._socket is None:
            return False
        try:
            if not self._poll.poll(0):
                return False
            return self._socket.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):  # reset, or a TLS socket that can't peek
            self._poll = None
            return False


class Streams:
    """The subscribing methods of :class:`~flask_rediscache.cable.Cable`: ``stream`` and ``replay``."""

    if TYPE_CHECKING:
        client: Any
        boundary: Boundary
        settings: CableSettings
        reader: Reader
        _idempotent: Retrier

        def key(self, channel: str, *, check: bool = True) -> bytes: ...

    def replay(self, key: bytes, after: bytes | None) -> tuple[bytes, list[Entry]]:
        """The channel's newest id and, when ``after`` is given, the entries after it (raises)."""
        client = self.client
        newest = self._idempotent(lambda: client.xrevrange(key, count=1))
        tip: bytes = newest[0][0] if newest else b"0-0"
        if after is None:
            return tip, []
        if parse_id(after) >= parse_id(tip):
            # Nothing was missed; an id from the future (another server) must not stall the stream.
            return tip, []
        entries: list[Entry] = []
        start = _next_id(after)
        while True:
            page = self._page(key, start, tip)
            entries.extend(page)
            if len(page) < REPLAY_PAGE or page[-1][0] == tip:
                return tip, entries
            start = _next_id(page[-1][0])

    def _page(self, key: bytes, start: bytes, end: bytes) -> list[Entry]:
        client = self.client
        return self._idempotent(
            lambda: client.xrange(key, min=start, max=end, count=REPLAY_PAGE))

    def stream(self, channel: str, *, last_event_id: str | None = None, heartbeat: float | None = None,
               max_seconds: float | None = None, retry_ms: int | None = None) -> Response:
        """A ``text/event-stream`` response for ``channel`` (return it from a view).

        ``last_event_id`` defaults to the request's ``Last-Event-ID`` header
        (or its ``last_event_id`` query parameter, for a first connection
        that resumes); a malformed one is ignored.
        """
        key = self.key(channel)
        settings = self.settings
        after: bytes | None = None
        peer: Any = None
        if has_request_context():
            if last_event_id is None:
                last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
            peer = request.environ.get("gunicorn.socket")
        if last_event_id:
            try:
                after = format_id(parse_id(last_event_id.strip())).encode("ascii")
            except ValueError:
                after = None
        limit = settings.max_stream_seconds if max_seconds is None else max_seconds
        # Spread the reconnects of streams opened together over the last tenth of their lifetime.
        lifetime = limit * random.uniform(0.9, 1.0)
        body = self._events(channel, key, after, lifetime,
                            settings.heartbeat if heartbeat is None else heartbeat,
                            settings.retry_ms if retry_ms is None else retry_ms, _PeerWatch(peer))
        response = Response(body, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache, no-store"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
        return response

    def _events(self, channel: str, key: bytes, after: bytes | None, lifetime: float, heartbeat: float,
                retry_ms: int, peer: _PeerWatch) -> Iterator[bytes]:
        started = time.monotonic()
        sub = Subscription(channel)
        reader = self.reader
        reader.subscribe(channel, key, sub)
        try:
            # Registered first, then the tip read: whatever comes after the tip reaches
            # the queue. One round trip, then the first bytes (the `retry:` line) go out.
            found: Any = self.boundary.call("stream", _FAILED, self.replay, key, after)
            yield f"retry: {int(retry_ms)}\n\n".encode()
            if found is _FAILED:
                # Redis is unreachable: end now; the browser reconnects after `retry` and replays.
                yield b": redis unavailable, reconnect later\n\n"
                return
            tip, missed = found
            last = parse_id(tip)
            reader.start(channel, tip)
            for entry in missed:
                yield sse_message(entry)
            wait = min(heartbeat, DISCONNECT_CHECK_SECONDS) if peer.available else heartbeat
            quiet_since = time.monotonic()
            while True:
                left = lifetime - (time.monotonic() - started)
                if left <= 0 or sub.ended:
                    return
                entries = sub.get(min(wait, left))
                sent = False
                for entry in entries:
                    entry_id = parse_id(entry[0])
                    if entry_id <= last:
                        continue  # already replayed or delivered
                    last = entry_id
                    sent = True
                    yield sse_message(entry)
                now = time.monotonic()
                if sent:
                    quiet_since = now
                elif peer.gone():
                    return
                elif now - quiet_since >= heartbeat:
                    quiet_since = now
                    yield b": heartbeat\n\n"
        finally:
            reader.unsubscribe(channel, sub)
