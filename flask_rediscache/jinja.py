"""The ``{% cache %}`` template fragment tag (Flask-Caching's ``jinja2ext``).

.. code-block:: jinja

   {% cache 300, "sidebar", current_user.id %} ... {% endcache %}

The arguments are the timeout (seconds, ``None`` for the default, or
``"del"`` to delete the fragment and render it), an optional fragment name
(default: the template's file name and the tag's line) and any number of
values the fragment varies on. The key is Flask-Caching's,
:func:`make_template_fragment_key`, inside the namespace, so
``cache.delete(make_template_fragment_key("sidebar", [user_id]))`` forgets one.

``init_app`` registers the extension on ``app.jinja_env`` and attaches the
:class:`~flask_rediscache.RedisCache` as ``jinja_env.rediscache`` (the first
one initialised on the app). Reads and writes go through its public
``get``/``set``/``delete``, so they fail open: with Redis down the body is
simply rendered. The body itself never runs inside the fail-open boundary, so
its errors propagate as in any template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from .config import timeout_seconds

#: Attribute of the Jinja environment holding the cache the tag uses.
ENV_ATTR = "rediscache"
#: Flask-Caching's fragment key layout.
_FRAGMENT_KEY = "_template_fragment_cache_{}{}"


class FragmentCache(Protocol):
    """What the tag needs from :class:`~flask_rediscache.RedisCache`."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = None) -> bool: ...

    def delete(self, key: str) -> bool: ...


def make_template_fragment_key(fragment_name: str, vary_on: Sequence[Any] | None = None) -> str:
    """The cache key of a ``{% cache %}`` fragment, as Flask-Caching builds it:
    ``_template_fragment_cache_<name>`` plus ``_<vary values joined by "_">``."""
    if not vary_on:
        return _FRAGMENT_KEY.format(fragment_name, "")
    return _FRAGMENT_KEY.format(f"{fragment_name}_", "_".join(str(v) for v in vary_on))


class FragmentCacheExtension(Extension):
    """``{% cache timeout[, name[, vary_on...]] %}...{% endcache %}``."""

    tags = {"cache"}  # noqa: RUF012 - Jinja reads the tag names here

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        args: list[nodes.Expr] = [parser.parse_expression()]
        if parser.stream.skip_if("comma"):
            args.append(parser.parse_expression())
        else:  # unnamed: the template and the line of the tag
            args.append(nodes.Const(f"{parser.filename}{lineno}"))
        vary_on: list[nodes.Expr] = []
        while parser.stream.skip_if("comma"):
            vary_on.append(parser.parse_expression())
        args.append(nodes.List(vary_on))
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", args), [], [], body).set_lineno(lineno)

    def _render(self, timeout: Any, fragment_name: str, vary_on: list[Any], caller: Callable[[], str]) -> str:
        cache: FragmentCache | None = getattr(self.environment, ENV_ATTR, None)
        if cache is None:  # the environment was not set up by init_app
            return caller()
        key = make_template_fragment_key(fragment_name, vary_on)
        if timeout == "del":
            cache.delete(key)
            return caller()
        seconds = None if timeout is None else timeout_seconds(int(timeout) if isinstance(timeout, str)
                                                                else timeout)
        found = cache.get(key)
        if found is not None:
            return found if isinstance(found, str) else str(found)
        rendered = caller()
        cache.set(key, rendered, seconds)
        return rendered
