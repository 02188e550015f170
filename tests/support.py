"""Small test helpers shared by several test modules."""

from __future__ import annotations

from typing import Any


class Recorder:
    """A ``REDIS_ERROR_HANDLER`` (or any keyword-only callback) that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def commands(server: Any) -> dict[str, int]:
    """Commands a :class:`~tests.servers.RedisServer` ran since its last
    ``reset_stats()``, minus the connection handshakes of the clients that
    read the statistics."""
    return server.commands_since_reset()  # type: ignore[no-any-return]
