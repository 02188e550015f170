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


# Flask-Caching's signals, with its payloads, sent only when the app sets
# ``CACHE_ENABLE_SIGNALS`` or ``REDIS_ENABLE_SIGNALS``. The sender is the app
# (Flask-Caching sends ``None``); connect without a sender to get either.

#: A ``@cached`` function or view was served from the cache. kwargs: ``cache``
#: (the :class:`~flask_rediscache.RedisCache`), ``cache_key``, ``args``, ``kwargs``.
cache_view_hit = _signals.signal("rediscache.cache-view-hit")
#: A ``@cached`` function or view was not in the cache and is called; kwargs
#: as :data:`cache_view_hit`.
cache_view_miss = _signals.signal("rediscache.cache-view-miss")
#: A memoized function's result came from the cache. kwargs: ``cache``,
#: ``cache_key``, ``f`` (the undecorated function), ``args``, ``kwargs``.
cache_memoize_hit = _signals.signal("rediscache.cache-memoize-hit")
#: A memoized function is called because its result was not cached (or
#: ``forced_update``/``is_stale`` said so); kwargs as :data:`cache_memoize_hit`.
cache_memoize_miss = _signals.signal("rediscache.cache-memoize-miss")

__all__ = ["breaker_state", "cache_error", "cache_hit", "cache_memoize_hit", "cache_memoize_miss",
           "cache_miss", "cache_view_hit", "cache_view_miss", "session_error"]
