"""Blinker signals sent by flask-rediscache.

All signals are sent with the Flask app as sender. Senders check
``signal.receivers`` first, so a signal nobody listens to costs one attribute
lookup on the hot path.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A cache read found the key. kwargs: ``key`` (the key as the caller gave it),
#: and ``local=True`` when a local copy served it (``REDIS_LOCAL_CACHE``).
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


# Timed instrumentation, after Rails' ``cache_*.active_support`` events. Sent
# (with the app as sender) only when someone listens: nothing is timed
# otherwise. Every one carries ``key`` (as the caller named it, without the
# namespace: the same form for memoize, ``cached`` and the plain API; a list
# of keys for the ``_multi`` events, the glob for ``cache_delete_matched``),
# ``duration`` (seconds, ``time.perf_counter``), ``purpose`` (``"cache"``),
# ``local`` (``True`` when served from a local copy without Redis: ``REDIS_LOCAL_CACHE``),
# ``operation`` (the API method, e.g. ``"get"``, ``"fetch"``) and, when Redis
# failed and the call failed open, ``error`` (the exception). Most also carry
# ``size``: bytes read or written.

#: A read of one key: ``get``, ``fetch``'s read, a memoize or ``cached`` lookup.
#: Extra kwargs: ``hit`` (a fresh entry was found), ``size``.
cache_read = _signals.signal("rediscache.cache-read")
#: A read of several keys in one round trip (``get_many``, ``get_dict``,
#: ``read_multi``, ``fetch_multi``). Extra: ``hits``, ``misses`` (lists of keys), ``size``.
cache_read_multi = _signals.signal("rediscache.cache-read-multi")
#: The computation of a missed value (``fetch``'s function, a memoized
#: function, a ``cached`` view, ``fetch_multi``'s ``compute``). ``key`` is the
#: key (a list for ``fetch_multi``); ``duration`` the user code's time.
cache_generate = _signals.signal("rediscache.cache-generate")
#: A write of one key (``set``, ``add``, what fetch/memoize/cached store). Extra: ``size``.
cache_write = _signals.signal("rediscache.cache-write")
#: A write of several keys in one round trip (``set_many``, ``write_multi``,
#: ``fetch_multi``'s store). Extra: ``size``.
cache_write_multi = _signals.signal("rediscache.cache-write-multi")
#: ``delete`` of one key.
cache_delete = _signals.signal("rediscache.cache-delete")
#: ``delete_many``/``unlink`` of several keys.
cache_delete_multi = _signals.signal("rediscache.cache-delete-multi")
#: ``delete_matched``/``clear``; ``key`` is the glob.
cache_delete_matched = _signals.signal("rediscache.cache-delete-matched")
#: ``inc``. Extra: ``amount``.
cache_increment = _signals.signal("rediscache.cache-increment")
#: ``dec``. Extra: ``amount``.
cache_decrement = _signals.signal("rediscache.cache-decrement")
#: ``has``. Extra: ``exist`` (the answer).
cache_exist = _signals.signal("rediscache.cache-exist")

#: A Redis call of the session interface (load, save, refresh, delete), sent
#: only when someone listens (the debug toolbar panel). kwargs: ``key`` (the
#: Redis key: a digest, never the cookie's id), ``operation`` (the session
#: store's method), ``duration``, ``purpose`` (``"session"``), ``local``,
#: ``size`` (bytes of fields read or written), ``hit`` (for a load: a session
#: was found), ``error`` (True when the call failed open).
session_call = _signals.signal("rediscache.session-call")

#: Every instrumentation signal, for receivers that want them all (the debug toolbar panel).
INSTRUMENTATION = (cache_read, cache_read_multi, cache_generate, cache_write, cache_write_multi,
                   cache_delete, cache_delete_multi, cache_delete_matched, cache_increment,
                   cache_decrement, cache_exist)

__all__ = ["breaker_state", "cache_decrement", "cache_delete", "cache_delete_matched", "cache_delete_multi",
           "cache_error", "cache_exist", "cache_generate", "cache_hit", "cache_increment",
           "cache_memoize_hit", "cache_memoize_miss", "cache_miss", "cache_read", "cache_read_multi",
           "cache_view_hit", "cache_view_miss", "cache_write", "cache_write_multi", "session_call",
           "session_error"]
