"""``@cache.cached`` and ``delete_cached``: a view's response (or a function's
result) cached by its path and query string.

Only a response that is the same for every user is stored: a 200 without
``Set-Cookie``, ``private`` or ``no-store``, from a view that did not read
the session; it is stored as status, headers and body and replayed as such.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import GeneratorType
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode

from flask import current_app, has_request_context, request, url_for
from werkzeug.wrappers import Response

from . import signals
from .codec import MISS
from .decorators import (
    POSITIONAL,
    CachedResponse,
    F,
    Front,
    SourceDigest,
    check_callable,
    check_timeout,
    emit,
    generate_async,
    join_generator,
    make_bypass,
    make_forcer,
    make_hasher,
    make_stale_check,
)
from .errors import UnpicklableError
from .session_access import session_touched

#: Attribute of a ``@cached`` wrapper (True), so ``delete_cached`` finds it under other decorators.
CACHED_ATTR: Final = "__rediscache_cached__"
_RESPONSE_TAG: Final = "flask-rediscache:response:1"
_VIEW_HIT, _VIEW_MISS = signals.cache_view_hit, signals.cache_view_miss


def _cacheable(response: Response) -> bool:
    """A response that is the same for every user and safe to replay."""
    if response.status_code != 200 or response.is_streamed or response.direct_passthrough:
        return False
    if "Set-Cookie" in response.headers:
        return False
    cache_control = response.cache_control
    if cache_control.no_store or cache_control.private:
        return False
    # A view that read the session may render per-user data.
    return not session_touched()


def _is_view(wrapper: Callable[..., Any]) -> bool:
    """Is ``wrapper`` the view serving this request (possibly under other decorators)?

    Only then is the result turned into a response; a helper decorated with
    ``@cached`` and called from a view caches its own return value, as in
    Flask-Caching.
    """
    func: Any = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    while func is not None:
        if func is wrapper:
            return True
        func = getattr(func, "__wrapped__", None)
    return False


def _pack(response: Response) -> tuple[Any, ...]:
    return (_RESPONSE_TAG, response.status_code, list(response.headers.items()), response.get_data())


def _unpack(value: Any, hit_header: bool) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == _RESPONSE_TAG:
        response = current_app.response_class(value[3], status=value[1], headers=value[2])
    else:  # a value stored with cache.set(): let Flask turn it into a response
        response = current_app.make_response(value)
    if hit_header:
        response.headers["hit_cache"] = "True"
    return response


def _pair_name(pair: tuple[str, str]) -> str:
    return pair[0]
def query_pairs(query_args: str | Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a query string, a mapping (a ``MultiDict``
    gives every value) or an iterable of pairs, as ``delete_cached`` and
    ``make_cache_key(query_args=...)`` accept them."""
    if isinstance(query_args, str):
        return parse_qsl(query_args.lstrip("?"), keep_blank_values=True)
    items: Iterable[tuple[str, Any]]
    if isinstance(query_args, Mapping):
        multi = getattr(query_args, "items", None)
        try:
            items = multi(multi=True) if multi is not None else query_args.items()
        except TypeError:  # a plain mapping
            items = query_args.items()
    else:
        items = query_args
    return [(str(name), str(value)) for name, value in items]


def _positional_names(func: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in POSITIONAL]


def _endpoint_of(view: Callable[..., Any]) -> str:
    """The endpoint ``view`` is registered under in the current app, else its name."""
    for endpoint, registered in current_app.view_functions.items():
        func: Any = registered
        while func is not None:
            if func is view:
                return endpoint
            func = getattr(func, "__wrapped__", None)
    return str(getattr(view, "__name__", view))


def cached(front: Front, timeout: Any = None, key_prefix: str | Callable[[], str] = "view/%s",
           unless: Callable[..., Any] | None = None, forced_update: Callable[..., Any] | None = None,
           response_filter: Callable[[Any], Any] | None = None, query_string: bool = False,
           make_cache_key: Callable[..., str] | None = None,
           response_hit_indication: bool = False, is_stale: Callable[..., Any] | None = None,
           cache_none: bool = True, hash_method: Callable[..., Any] | None = None,
           source_check: bool | None = None) -> Callable[[F], F]:
    """Build the ``@cached`` decorator; see :meth:`flask_rediscache.RedisCache.cached`."""
    check_timeout(timeout)
    bypass = make_bypass(unless)
    force = make_forcer(forced_update)
    stale_check = make_stale_check(is_stale)
    check_callable("response_filter", response_filter)
    check_callable("make_cache_key", make_cache_key)
    hasher = make_hasher(hash_method)

    def decorator(f: F) -> F:
        source = SourceDigest(f, hasher)
        names = _positional_names(f)

        def uses_source() -> bool:
            if source_check is not None:
                return source_check
            return bool(front.source_check_default and front.decorator_defaults().source_check)

        def build_key(path: str | None, pairs: Iterable[tuple[str, str]] | None) -> str:
            if callable(key_prefix):
                key = str(key_prefix())
            elif "%s" in key_prefix and path is not None:
                key = key_prefix % path
            else:
                key = key_prefix
            if pairs is not None:
                # Sorted by name then value, so ?a=1&b=2, ?b=2&a=1 and repeated
                # parameters in any order are one entry.
                key = f"{key}?{urlencode(sorted(pairs))}"
            if uses_source():
                key = f"{key}~{source()}"
            return key

        def default_make_cache_key(*args: Any, **kwargs: Any) -> str:
            """Flask-Caching's ``f.make_cache_key``: in the request (what the
            wrapper calls, with ``use_request=True``) the key of the current
            path and query; otherwise ``make_cache_key(path=..., query_args=...)``
            or, without a path, the path ``url_for`` gives for the view's arguments."""
            if kwargs.pop("use_request", False):
                if not has_request_context():  # a plain function: key_prefix as it is
                    return build_key(None, None)
                return build_key(request.path, request.args.items(multi=True) if query_string else None)
            path = kwargs.pop("path", None)
            query_args = kwargs.pop("query_args", None)
            if path is None and not callable(key_prefix) and "%s" in key_prefix:
                values = dict(zip(names, args, strict=False))
                values.update(kwargs)
                path = url_for(_endpoint_of(wrapper), _external=False, **values)
            pairs: Iterable[tuple[str, str]] | None = None
            if query_string:
                if query_args is not None:
                    pairs = query_pairs(query_args)
                elif has_request_context():
                    pairs = request.args.items(multi=True)
                else:
                    pairs = []
            return build_key(path, pairs)

        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bool, Any] | None:
            """``None`` to bypass the cache, else (key, is a view, cached value or MISS)."""
            in_request = has_request_context()
            if in_request and request.method not in ("GET", "HEAD"):
                return None
            if bypass is not None and bypass(f, args, kwargs):
                return None
            if make_cache_key is not None:
                key = make_cache_key(*args, **kwargs)
            else:
                key = wrapper.make_cache_key(*args, use_request=True, **kwargs)
            view = in_request and _is_view(wrapper)
            if force is not None and force(args, kwargs):
                front.app_cache().record(key, False)
                value = MISS
            else:
                value = front.get(key, MISS, signed=True)
                if (value is None and not cache_none) or (
                        value is not MISS and stale_check is not None
                        and stale_check(_unpack(value, False) if view else value, args, kwargs)):
                    value = MISS
            signal = _VIEW_MISS if value is MISS else _VIEW_HIT
            if signal.receivers:
                emit(front, signal, cache_key=key, args=args, kwargs=kwargs)
            return key, view, value

        def store(key: str, value: Any, seconds: Any) -> None:
            try:
                front.set(key, value, seconds, signed=True)
            except UnpicklableError as exc:
                front.app_cache().unpicklable(value, exc)

        def after(key: str, view: bool, rv: Any) -> Any:
            if isinstance(rv, GeneratorType):
                rv = join_generator(rv)
            keep = response_filter is None or bool(response_filter(rv))
            seconds = wrapper.cache_timeout
            if isinstance(rv, CachedResponse) and rv.timeout:
                seconds = rv.timeout
            if not view:  # a plain function: cache what it returns
                if keep and (cache_none or rv is not None):
                    store(key, rv, seconds)
                return rv
            response = current_app.make_response(rv)
            if keep and _cacheable(response):
                store(key, _pack(response), seconds)
            return response

        def hit(view: bool, value: Any) -> Any:
            return _unpack(value, response_hit_indication) if view else value

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return await f(*args, **kwargs)
                key, view, value = state
                if value is not MISS:
                    return hit(view, value)
                return after(key, view, await generate_async(front, key, f, *args, **kwargs))

            wrapper: Any = async_view
        else:
            @functools.wraps(f)
            def sync_view(*args: Any, **kwargs: Any) -> Any:
                state = before(args, kwargs)
                if state is None:
                    return f(*args, **kwargs)
                key, view, value = state
                if value is not MISS:
                    return hit(view, value)
                return after(key, view, front.app_cache().generate(key, f, *args, **kwargs))

            wrapper = sync_view

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = default_make_cache_key
        setattr(wrapper, CACHED_ATTR, True)
        return cast(F, wrapper)

    return decorator


def cached_view(view_or_endpoint: Callable[..., Any] | str) -> tuple[Callable[..., Any], str | None]:
    """The ``@cached`` wrapper behind a view function or an endpoint name of
    the current app, and the endpoint (``None`` if it is not registered)."""
    endpoint: str | None = None
    func: Any = view_or_endpoint
    if isinstance(view_or_endpoint, str):
        endpoint = view_or_endpoint
        func = current_app.view_functions.get(endpoint)
        if func is None:
            raise ValueError(f"delete_cached(): the app has no endpoint {endpoint!r}")
    start = func
    while func is not None and not getattr(func, CACHED_ATTR, False):
        func = getattr(func, "__wrapped__", None)
    if func is None:
        raise TypeError(f"{start!r} is not decorated with @cache.cached")
    return func, endpoint


def delete_cached(front: Front, view_or_endpoint: Callable[..., Any] | str, path: str | None = None,
                  query_args: Any = None, **view_args: Any) -> bool:
    """See :meth:`flask_rediscache.RedisCache.delete_cached`."""
    view, endpoint = cached_view(view_or_endpoint)
    if path is None and endpoint is not None:
        path = url_for(endpoint, _external=False, **view_args)
        view_args = {}
    maker: Callable[..., str] = getattr(view, "make_cache_key")  # noqa: B009 - set by cached()
    return front.delete(maker(path=path, query_args=query_args, **view_args))
