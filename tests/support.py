"""Small test helpers shared by several test modules."""

from __future__ import annotations

from typing import Any


class Recorder:
    """A ``REDIS_ERROR_HANDLER`` (or any keyword-only callback) that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
