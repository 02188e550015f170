"""Broadcasts on :class:`~flask_rediscache.RedisCache`: ``broadcast``, ``stream``, ``broadcasts``.

Part of ``RedisCache``: each method hands its call to the current app's
:class:`~flask_rediscache.cable.Cable`, which ``init_app`` builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from .cable import Cable
    from .state import AppState


class Broadcasts:
    """The broadcast methods of :class:`~flask_rediscache.RedisCache`."""

    if TYPE_CHECKING:
        def state(self, app: Flask | None = None) -> AppState: ...

    def _cable(self) -> Cable:
        cable: Cable = self.state().extras["cable"]
        return cable

    def broadcast(self, channel: str, data: Any, *, event: str | None = None) -> str | None:
        """Send ``data`` (JSON-encoded) to every open :meth:`stream` of ``channel``, in
        every process; returns the message id, or ``None`` when Redis failed (fail-open).

        Kept for replay: the last ``REDIS_CABLE_HISTORY`` messages of a channel.
        ``event`` names the server-sent event (``addEventListener(event, ...)``);
        without it the browser's ``onmessage`` gets it.
        """
        return self._cable().broadcast(channel, data, event=event)

    def stream(self, channel: str, *, last_event_id: str | None = None, heartbeat: float | None = None,
               max_seconds: float | None = None, retry_ms: int | None = None) -> Any:
        """A ``text/event-stream`` response with ``channel``'s messages: return it from a view.

        Replays what the client missed after its ``Last-Event-ID``, sends a
        heartbeat comment every ``heartbeat`` seconds (default 15) and ends after
        ``max_seconds`` (default ``REDIS_CABLE_MAX_STREAM_SECONDS``); the browser
        then reconnects and replays. Authorisation is the view's job.
        """
        return self._cable().stream(channel, last_event_id=last_event_id, heartbeat=heartbeat,
                                    max_seconds=max_seconds, retry_ms=retry_ms)

    def broadcasts(self, channel: str) -> list[Any]:
        """In testing (``app.testing``): the data broadcast to ``channel`` by this process, in order."""
        return self._cable().broadcasts(channel)
