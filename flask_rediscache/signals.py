"""Blinker signals sent by flask-rediscache.

All signals are sent with the Flask app as sender. Senders check
``signal.receivers`` first, so a signal nobody listens to costs one attribute
lookup on the hot path.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A cache read found the key. kwargs: ``key`` (the key as the caller gave it).
cache_hit = _signals.signal("rediscache.cache-hit")
#: A cache read did not find the key (or found an entry it would not trust).
#: kwargs: ``key``.
cache_miss = _signals.signal("rediscache.cache-miss")
#: A Redis error was swallowed. kwargs: ``method``, ``exception``, ``returning``.
cache_error = _signals.signal("rediscache.cache-error")
#: A circuit breaker changed state. kwargs: ``client`` (masked URL),
#: ``state`` (``"open"``, ``"half-open"`` or ``"closed"``).
breaker_state = _signals.signal("rediscache.breaker-state")
#: A stored session could not be read or written. kwargs: ``operation``,
#: ``exception`` (may be None when the guard already reported it).
session_error = _signals.signal("rediscache.session-error")

__all__ = ["breaker_state", "cache_error", "cache_hit", "cache_miss", "session_error"]
