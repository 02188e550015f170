"""The decorators on :class:`~flask_rediscache.RedisCache`: ``memoize``, ``cached`` and their deletes.

Part of ``RedisCache``: the user documentation of the decorators' options
lives here; :mod:`~flask_rediscache.memoize` and
:mod:`~flask_rediscache.cached_view` do the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import cached_view
from . import memoize as memoize_module

if TYPE_CHECKING:  # the decorators get RedisCache itself, which is a Front
    from .decorators import Front as _Front
else:
    _Front = object

F = TypeVar("F", bound=Callable[..., Any])


class Decorators(_Front):
    """The decorator methods of :class:`~flask_rediscache.RedisCache`."""

    def memoize(self, timeout: Any = None, unless: Callable[..., Any] | None = None,
                race_condition_ttl: float | None = None, make_name: Callable[[str], str] | None = None,
                forced_update: Callable[..., Any] | None = None,
                response_filter: Callable[[Any], Any] | None = None,
                args_to_ignore: list[str] | tuple[str, ...] | None = None,
                cache_none: bool = True, name: str | None = None, *,
                is_stale: Callable[..., Any] | None = None, hash_method: Callable[..., Any] | None = None,
                source_check: bool | None = None, version: Any = None) -> Callable[[F], F]:
        """Cache a function's results per arguments; a hit is one Redis round trip.

        The key is the function's ``module.qualname`` plus its arguments bound
        to the signature with defaults applied, so ``f(1)``, ``f(1, 2)`` and
        ``f(a=1, b=2)`` share one entry when ``b`` defaults to 2 (arguments
        are keyed by ``repr``, so give argument types a stable ``repr``).
        Methods (first parameter ``self``/``cls``) key on the instance's
        ``__cache_key__()`` or ``__caching_id__()`` if it has one, else
        ``repr(self)``. ``async def`` functions work (the Redis calls
        themselves are synchronous). ``None`` results are cached. A generator
        function's items are joined (``str``/``bytes``) or listed, and that is
        cached and returned, as in Flask-Caching.

        The wrapper carries Flask-Caching's attributes: ``f.uncached`` (the
        undecorated function), ``f.cache_timeout`` and ``f.make_cache_key``
        (``make_cache_key(f.uncached, *args, **kwargs) -> key``; both writable,
        read on every call) and ``f.delete_memoized()`` (every entry of ``f``).

        :param timeout: seconds or ``timedelta``; ``None`` = ``REDIS_DEFAULT_TIMEOUT``, ``0`` = forever.
        :param unless: callable; truthy skips the cache. Called with no arguments,
            or with ``(f, *args, **kwargs)`` if it accepts any (as in Flask-Caching).
        :param race_condition_ttl: stampede control as in :meth:`fetch`; default
            ``REDIS_RACE_CONDITION_TTL``, ``0`` turns it off.
        :param make_name: ``make_name("module.qualname") -> str`` replaces the
            function's name in keys (called per call, so it may depend on the request).
        :param forced_update: callable; truthy recomputes and stores without reading.
            Called with no arguments, or with the call's ``(*args, **kwargs)`` if it accepts any.
        :param response_filter: ``response_filter(result)``; falsy means "don't store".
        :param args_to_ignore: parameter names left out of the key (``["self"]``
            shares entries between instances).
        :param cache_none: ``False`` leaves ``None`` results uncached (Flask-Caching's default).
        :param name: replaces ``module.qualname`` in keys. The module part depends on how
            the code was loaded (``__main__.f`` under ``python app.py``, ``app.f`` under
            ``flask run`` or gunicorn), so a warm-up script and the server only share
            entries when the name is pinned.
        :param is_stale: ``is_stale(value)``, or ``is_stale(value, *args, **kwargs)``
            if it takes more arguments, called on a hit; truthy recomputes and stores.
        :param hash_method: the hashlib constructor digesting long keys and the
            source (default ``hashlib.sha256``).
        :param source_check: key on the function's source too, so changed code
            misses; ``None`` = ``CACHE_SOURCE_CHECK`` of the app.
        :param version: a ``str``/``int`` (or a callable returning one, called per
            call) stored inside each entry, Rails' recyclable keys: an entry of
            another version is a miss and is replaced in place, so bumping it
            invalidates every entry of ``f`` without growing the key count.

        The options after ``name`` are keyword-only (Flask-Caching orders its
        arguments differently: pass everything but ``timeout`` by name).
        On Redis errors the function is simply called.
        """
        return memoize_module.memoize(self, timeout=timeout, unless=unless,
                                  race_condition_ttl=race_condition_ttl, make_name=make_name,
                                  forced_update=forced_update, response_filter=response_filter,
                                  args_to_ignore=args_to_ignore, cache_none=cache_none, name=name,
                                  is_stale=is_stale, hash_method=hash_method, source_check=source_check,
                                  version=version)

    def cached(self, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
               unless: Callable[..., Any] | None = None, forced_update: Callable[..., Any] | None = None,
               response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
               make_cache_key: Callable[..., str] | None = None,
               response_hit_indication: bool = False, *, is_stale: Callable[..., Any] | None = None,
               cache_none: bool = True, hash_method: Callable[..., Any] | None = None,
               source_check: bool | None = None) -> Callable[[F], F]:
        """Cache a view's response, or a function's value (Flask-Caching's ``@cache.cached``).

        Only GET and HEAD requests use the cache (they share entries), and only
        a 200 response is stored, and only if it is the same for everyone: no
        ``Set-Cookie``, no ``Cache-Control: private``/``no-store``, and the view
        did not touch the session. The key is
        ``key_prefix % request.path`` (default ``"view/%s"``, so
        ``cache.delete("view//about")`` drops ``/about``); the query string
        is ignored unless ``query_string=True``, which adds its parameters
        sorted by name, so their order does not matter. A hit replays status, headers
        and body; ``after_request`` hooks still run. A function that is not the
        request's view (a helper called from one, or any function outside a
        request) caches its return value under ``key_prefix``. A view may return
        a :class:`~flask_rediscache.CachedResponse` to choose its own timeout;
        a generator's items are joined first.

        The wrapper carries ``f.uncached``, ``f.cache_timeout`` and
        ``f.make_cache_key`` (both writable, read on every call);
        ``f.make_cache_key(path=..., query_args=...)`` or, for a registered
        view, ``f.make_cache_key(**view_args)`` gives the key outside a
        request, and :meth:`delete_cached` deletes it.

        :param timeout: as in :meth:`set`.
        :param key_prefix: a string (``%s`` = the path) or a callable returning the key.
        :param unless: callable; truthy skips the cache. Called with no arguments,
            or with ``(f, *args, **kwargs)`` if it accepts any.
        :param forced_update: callable; truthy renders and stores without reading.
            Called with no arguments, or with the call's ``(*args, **kwargs)`` if it accepts any.
        :param response_filter: ``response_filter(rv)`` with what the function
            returned (as Flask-Caching passes it); falsy means "don't store".
        :param make_cache_key: ``make_cache_key(*view_args, **view_kwargs) -> key``, replaces the above.
        :param response_hit_indication: add a ``hit_cache: True`` header to hits.
        :param is_stale: ``is_stale(value[, *args, **kwargs])`` on a hit (for a
            view, the replayed response); truthy recomputes and stores.
        :param cache_none: ``False``: a function returning ``None`` is not cached.
        :param hash_method: the hashlib constructor of the source digest.
        :param source_check: add a digest of the function's source to the key;
            ``None`` = ``CACHE_SOURCE_CHECK`` of the app.

        On Redis errors the view is simply called.
        """
        return cached_view.cached(self, timeout=timeout, key_prefix=key_prefix, unless=unless,
                                 forced_update=forced_update, response_filter=response_filter,
                                 query_string=query_string, make_cache_key=make_cache_key,
                                 response_hit_indication=response_hit_indication, is_stale=is_stale,
                                 cache_none=cache_none, hash_method=hash_method, source_check=source_check)

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Forget memoized results of ``f``: with arguments, that call's entry;
        without, every entry of ``f`` (for a bound method ``obj.f``, every entry
        of ``obj``). Returns the number of entries deleted.

        As in Flask-Caching, ``delete_memoized(obj.method, x)`` and
        ``delete_memoized(obj.method, obj, x)`` name the same entry (so does
        ``delete_memoized(Cls.method, obj, x)``), and a classmethod takes its
        class explicitly, ``delete_memoized(Cls.method, Cls, a)``: without it
        :class:`ValueError` is raised.
        """
        return memoize_module.delete_memoized(self, f, *args, **kwargs)

    def delete_cached(self, view_or_endpoint: Callable[..., Any] | str, path: str | None = None,
                      query_args: Any = None, *, query_string: Any = None, **view_args: Any) -> bool:
        """Delete what ``@cached`` stored for a view (Flask-Caching's ``delete_cached``).

        ``view_or_endpoint`` is the decorated function or the endpoint name of
        a view. Give the ``path`` the response was cached for, or the view's
        arguments (``url_for`` builds the path from them); for
        ``query_string=True`` views also the query, as ``query_args`` (or its
        alias ``query_string``): a string such as ``"a=1&b=2"``, a mapping or
        ``(name, value)`` pairs, in any order. True if an entry was deleted.
        """
        if query_args is None:
            query_args = query_string
        return cached_view.delete_cached(self, view_or_endpoint, path, query_args, **view_args)
