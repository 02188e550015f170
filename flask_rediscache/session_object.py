"""The session of one request, :class:`RedisSession`: a mapping loaded on first use.

Installed as ``session_class`` by
:class:`~flask_rediscache.sessions.RedisSessionInterface`, which loads,
diffs and saves it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

from flask.sessions import SessionMixin

from .session_store import PERMANENT_FIELD

#: Bytes of entropy in a session id (``secrets.token_urlsafe``: 43 characters).
SID_BYTES = 32


def new_sid() -> str:
    """A fresh random session id (256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(SID_BYTES)


class RedisSession(SessionMixin):
    """The session of one request; its data is loaded on first use.

    A mutable mapping (Flask's :class:`~flask.sessions.SessionMixin`) over a
    plain dict, :attr:`data`. Every method loads the stored data first and
    sets :attr:`touched`; :meth:`clear` needs no load, since the result is
    empty whatever was stored. Not a ``dict`` subclass on purpose: C code that
    reads a dict directly (``json.dumps``) would see an empty one before the
    first load; ``dict(session)`` gives a plain copy.
    """

    #: Set by any change through the mapping interface (Flask's meaning).
    modified = False
    #: Flask's meaning (Vary: Cookie); Flask 3.0's SessionMixin defaults it to True.
    accessed = False
    #: True once the data was read or changed through any mapping method (or
    #: ``permanent``). ``@cached`` stores a view's response only if its
    #: session stayed untouched.
    touched = False

    def __init__(self, sid: str | None = None,
                 loader: Callable[[RedisSession], None] | None = None) -> None:
        #: The session's data (once loaded); use the mapping methods instead.
        self.data: dict[str, Any] = {}
        #: The id from the cookie; None for a new session, or once loading
        #: found nothing stored under it. (:attr:`sid` is the id to show.)
        self.stored_sid = sid
        self.new = sid is None
        #: The id a new session will be stored under, made when first asked for.
        self.fresh_sid: str | None = None
        #: Makes a session id (the interface's, which honours ``SESSION_ID_LENGTH``).
        self.make_sid: Callable[[], str] = new_sid
        #: ``SESSION_PERMANENT``: whether a new session is permanent unless told otherwise.
        self.default_permanent = False
        self._loader = loader
        #: The serialised value of every field as loaded, to diff against at save.
        self.loaded: dict[str, bytes] = {}
        #: Loaded fields whose values may be mutated in place.
        self.volatile: tuple[str, ...] = ()
        #: Redis could not be read: this request must not write the session back.
        self.unavailable = False
        #: ``clear()`` was called: the save replaces the whole hash.
        self.cleared = False
        #: Set by :meth:`RedisSessionInterface.regenerate`: the id to move to.
        self.new_sid: str | None = None
        #: The load also slid the key's TTL (the cookie is re-signed at save).
        self.refreshed = False
        #: Seconds since the cookie was signed (0 for a new session).
        self.cookie_age = 0.0
        #: The cookie was signed with a ``SECRET_KEY_FALLBACKS`` key.
        self.resign = False

    @property
    def sid(self) -> str:
        """The session's id, a string as in Flask-Session: the id it is stored
        under, the one :meth:`RedisSessionInterface.regenerate` moves it to,
        or, for a new session, the one it will be stored under."""
        if self.new_sid is not None:
            return self.new_sid
        if self.stored_sid is not None:
            return self.stored_sid
        if self.fresh_sid is None:
            self.fresh_sid = self.make_sid()
        return self.fresh_sid

    @property
    def permanent(self) -> bool:
        """Flask's ``session.permanent``; a new session starts as ``SESSION_PERMANENT``."""
        default = self.default_permanent and self.stored_sid is None
        return bool(self._touch().get(PERMANENT_FIELD, default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self[PERMANENT_FIELD] = bool(value)

    # -- loading -------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """The stored data was not loaded (and need not be: nobody used it)."""
        return self._loader is not None

    def _touch(self) -> dict[str, Any]:
        self.touched = True
        self.accessed = True
        loader = self._loader
        if loader is not None:
            self._loader = None
            loader(self)
        return self.data

    def _changed(self) -> None:
        self.modified = True

    # -- reads -----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._touch()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._touch().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._touch()

    def __iter__(self) -> Iterator[str]:
        return iter(self._touch())

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._touch())

    def __len__(self) -> int:
        return len(self._touch())

    def keys(self) -> Any:
        return self._touch().keys()

    def values(self) -> Any:
        return self._touch().values()

    def items(self) -> Any:
        return self._touch().items()

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the data."""
        return dict(self._touch())

    def __eq__(self, other: object) -> bool:
        data = self._touch()
        if isinstance(other, RedisSession):
            return data == other._touch()
        return data == other

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Any) -> Any:
        return self._touch() | other

    def __ror__(self, other: Any) -> Any:
        return other | self._touch()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._touch()!r}>"

    # -- changes -------------------------------------------------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        self._touch()[key] = value
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self._touch()[key]
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        data = self._touch()
        if key in data:
            return data[key]
        data[key] = default
        self._changed()
        return default

    def pop(self, key: str, *default: Any) -> Any:
        data = self._touch()
        present = key in data
        value = data.pop(key, *default)
        if present:
            self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = self._touch().popitem()
        self._changed()
        return item

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._touch().update(*args, **kwargs)
        self._changed()

    def __ior__(self, other: Any) -> RedisSession:
        self.update(other)
        return self

    def clear(self) -> None:
        """Empty the session; at save its Redis data and its cookie are deleted.

        No load: whatever was stored, the session is now empty.
        """
        self._loader = None
        self.touched = True
        self.accessed = True
        self.cleared = True
        self.data.clear()
        self._changed()


__all__ = ["RedisSession", "new_sid"]
