"""How ``@memoize`` names an entry: one key per function and arguments.

A memoize hit is exactly one ``GET``: the key is built from the function and
its arguments alone (no per-function "version" key to read first, as
Flask-Caching does), and everything that can be worked out once per function
(the signature binding, the key prefix) is done at decoration time. The
common prefix of a function's keys is what ``delete_memoized(f)`` deletes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final

from .decorators import POSITIONAL, DecoratorDefaults, Front, SourceDigest, default_digest

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
#: A parameter without a default; for ``delete_memoized``, no instance given.
REQUIRED: Final = object()
#: Longest memoize key (characters, without the namespace) kept readable;
#: longer argument parts are replaced by a digest so the prefix survives.
_MAX_MEMO_KEY = 200
#: Longest function name and instance segment kept readable in memoize keys.
_MAX_NAME, _MAX_INSTANCE = 100, 40


class _Binder:
    """Maps ``(args, kwargs)`` of a call to one tuple of argument values in
    signature order, defaults applied, so ``f(1)``, ``f(1, 2)`` and
    ``f(a=1, b=2)`` give the same tuple when ``b`` defaults to 2.

    :meth:`inspect.Signature.bind` costs several microseconds, so signatures
    without ``*args``/``**kwargs`` use a precomputed fast path; the others
    (and calls the fast path cannot settle) fall back to it.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.kinds = {p.name: p.kind for p in params}
        self.simple = not any(p.kind in _VARIADIC for p in params)
        self.count = len(params)
        self.positional = sum(1 for p in params if p.kind in POSITIONAL)
        self.all_positional = self.positional == self.count
        self.index = {p.name: i for i, p in enumerate(params)
                      if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        self.defaults = tuple(REQUIRED if p.default is p.empty else p.default for p in params)
        # tails[n]: the defaults of the parameters after the n-th, when all have one.
        self.tails: list[tuple[Any, ...] | None] = [
            None if any(d is REQUIRED for d in self.defaults[n:]) else self.defaults[n:]
            for n in range(self.count + 1)
        ]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """The bound values, or ``None`` if the call does not fit the signature."""
        if self.simple:
            n = len(args)
            if not kwargs:
                if n == self.count and self.all_positional:
                    return args
                if n <= self.positional:
                    tail = self.tails[n]
                    if tail is not None:
                        return args + tail
            elif n <= self.positional:
                values = list(args)
                values.extend(self.defaults[n:])
                index = self.index
                for name, value in kwargs.items():
                    i = index.get(name)
                    if i is None or i < n:
                        return self._slow(args, kwargs)
                    values[i] = value
                for value in values:
                    if value is REQUIRED:
                        return None
                return tuple(values)
        return self._slow(args, kwargs)

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        out = []
        for name, value in bound.arguments.items():
            if self.kinds[name] is inspect.Parameter.VAR_KEYWORD:
                value = tuple(sorted(value.items()))
            out.append(value)
        return tuple(out)


def _instance_key(obj: Any) -> Any:
    """What identifies ``self``/``cls`` in a method's cache key: ``__cache_key__()``,
    else Flask-Caching's ``__caching_id__()``, else ``repr``."""
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    for name in ("__cache_key__", "__caching_id__"):
        method = getattr(obj, name, None)
        if method is not None:
            return method()
    return repr(obj)


class _NoFront:
    """Stands in for the front of a :class:`Memoized` built without one."""

    source_check_default = False

    def decorator_defaults(self) -> DecoratorDefaults:
        return DecoratorDefaults()


_NO_FRONT: Any = _NoFront()


class Memoized:
    """What ``@memoize`` knows about one function: its name, binder and key layout.

    Keys are ``memoize:<module.qualname>:<repr of the bound arguments>`` inside
    the namespace (the arguments digested when long). For methods (first
    parameter named ``self`` or ``cls``) the instance gets its own segment,
    ``memoize:<qualname>:<instance key>:<arguments>``, so one instance's
    entries can be deleted together. With ``source_check`` a digest of the
    function's source follows the name (``memoize:<qualname>:~<digest>:...``),
    so changed code misses.
    """

    def __init__(self, func: Callable[..., Any], make_name: Callable[[str], str] | None = None,
                 args_to_ignore: tuple[str, ...] | list[str] | None = None, name: str | None = None,
                 *, front: Front | None = None, hasher: Callable[[str], str] = default_digest,
                 source_check: bool | None = False) -> None:
        self.func = func
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"memoize(name={name!r}): expected a non-empty string")
        # module.qualname depends on how the module was loaded ("__main__.f"
        # under `python app.py`, "app.f" under flask/gunicorn): `name` pins it.
        self.name = name if name is not None else f"{func.__module__}.{func.__qualname__}"
        self.make_name = make_name
        self.front: Front = front if front is not None else _NO_FRONT
        self.hasher = hasher
        self.source_check = source_check
        self.source = SourceDigest(func, hasher)
        self.binder = _Binder(func)
        names = list(self.binder.signature.parameters)
        self.first = names[0] if names else None
        ignore = set()
        for name in args_to_ignore or ():
            if name not in names:
                raise ValueError(f"args_to_ignore: {self.name} has no parameter {name!r}")
            ignore.add(names.index(name))
        self.ignore = frozenset(ignore)
        # args_to_ignore=["self"] shares the entries between instances.
        self.method = self.first in ("self", "cls") and 0 not in self.ignore
        self._prefix = self._make_prefix(self.name, source_check is True)
        #: No make_name and no source_check of its own: the fixed prefix, unless
        #: an app of the front turned source checks on by default.
        self.plain = make_name is None and source_check is None

    def _make_prefix(self, name: str, with_source: bool) -> str:
        if len(name) > _MAX_NAME:
            name = name[:70] + "~" + default_digest(name)[:24]
        if with_source:
            return f"memoize:{name}:~{self.source()}:"
        return f"memoize:{name}:"

    def uses_source(self) -> bool:
        """``source_check``, or the app's default when it is ``None``."""
        if self.source_check is not None:
            return self.source_check
        front = self.front
        return bool(front.source_check_default and front.decorator_defaults().source_check)

    def prefix(self) -> str:
        """The key prefix shared by every entry of the function."""
        name = self.name if self.make_name is None else self.make_name(self.name)
        return self._make_prefix(name, self.uses_source())

    def instance_segment(self, obj: Any) -> str:
        """``repr(instance key) + ":"``; digested when long, so the arguments keep room."""
        text = repr(_instance_key(obj))
        if len(text) > _MAX_INSTANCE:
            text = "#" + self.hasher(text)[:32]
        return text + ":"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The cache key of the call, or ``None`` if the arguments don't fit the signature."""
        values = self.binder.bind(args, kwargs)
        if values is None:
            return None
        if (self.plain and not self.front.source_check_default) or (
                self.make_name is None and self.source_check is not None):
            prefix = self._prefix
        else:  # depends on the app's default or, with make_name, on the request
            prefix = self.prefix()
        if self.ignore:
            ignore = self.ignore
            values = tuple(v for i, v in enumerate(values) if i not in ignore)
        if self.method:  # self is never in ignore here, so still first
            prefix += self.instance_segment(values[0])
            values = values[1:]
        rest = repr(values)
        if len(prefix) + len(rest) <= _MAX_MEMO_KEY and rest.isascii():
            return prefix + rest
        return prefix + "#" + self.hasher(rest)
