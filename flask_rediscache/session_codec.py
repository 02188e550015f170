"""How session fields are stored: names as UTF-8, values as Flask's tagged JSON.

:class:`SessionFields` is the part of
:class:`~flask_rediscache.sessions.RedisSessionInterface` that decodes a
loaded hash and finds which fields a save must write or delete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from markupsafe import Markup

from . import signals

if TYPE_CHECKING:  # pragma: no cover
    from .session_object import RedisSession

logger = logging.getLogger("flask_rediscache")

#: Types whose loaded values cannot be changed in place; any other loaded value
#: (dict, list, tuple, custom tags) is re-serialised at save to catch mutation.
_IMMUTABLE = frozenset({str, bytes, int, float, bool, type(None), datetime, UUID, Markup})
#: Field names are stored as UTF-8, lone surrogates included (a JSON request
#: body can carry ``"\\ud800"``), so every ``str`` key round-trips.
_NAMES = "surrogatepass"


def encode_name(name: str) -> bytes:
    """A session key as a hash field name (lossless for any ``str``)."""
    return name.encode("utf-8", _NAMES)


def decode_name(raw: bytes) -> str:
    """The inverse of :func:`encode_name` (raises ``UnicodeDecodeError`` for other bytes)."""
    return raw.decode("utf-8", _NAMES)


class SessionSerializer(TaggedJSONSerializer):
    """Flask's tagged JSON through a pre-built stdlib encoder.

    The tags, and so the stored format, are exactly Flask's; only the JSON step
    skips ``current_app.json`` (a provider lookup and a new encoder per call),
    so each field costs one C-level encode or decode. Keys are sorted, so a
    value always serialises to the same bytes (change detection compares
    them); types without a tag (``date``, ``Decimal``, dataclasses) go through
    Flask's default conversion, as in cookie sessions. Output is ASCII (lone
    surrogates become ``\\ud800`` escapes), so every ``str`` value round-trips.
    """

    def __init__(self) -> None:
        super().__init__()
        self._encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True,
                                         default=DefaultJSONProvider.default)
        self._decoder = json.JSONDecoder(object_hook=self.untag)

    def dumps(self, value: Any) -> str:
        # tag() walks every element through every tag; plain JSON needs none.
        return self._encoder.encode(value if self._plain(value) else self.tag(value))

    def _plain(self, value: Any) -> bool:
        """Is ``value`` made only of JSON types that ``tag()`` would leave as they are?"""
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return True
        if kind is list:
            return all(self._plain(item) for item in value)
        if kind is dict:
            if len(value) == 1 and next(iter(value)) in self.tags:
                return False  # looks like a tag: TagDict escapes it
            return all(type(k) is str and self._plain(v) for k, v in value.items())
        return False

    def loads(self, value: str | bytes) -> Any:
        return self._decoder.decode(value.decode() if isinstance(value, bytes) else value)


class SessionFields:
    """Decoding and diffing a session's fields (a base of
    :class:`~flask_rediscache.sessions.RedisSessionInterface`)."""

    #: Tagged JSON, as Flask's cookie sessions: never pickle.
    serializer: SessionSerializer = SessionSerializer()

    def _decode(self, app: Flask, session: RedisSession, fields: Mapping[bytes, bytes]) -> None:
        data: dict[str, Any] = {}
        loaded: dict[str, bytes] = {}
        volatile: list[str] = []
        loads = self.serializer.loads
        for raw_name, raw in fields.items():
            try:
                name = decode_name(raw_name)
                value = loads(raw)
            except Exception as exc:  # anything stored may be garbage
                # Not in `loaded`, so the save leaves the stored field alone
                # (a newer deploy may be able to read it).
                logger.warning("flask-rediscache: dropped undecodable session field %r: %s: %s",
                               raw_name[:80], type(exc).__name__, str(exc)[:200])
                if signals.session_error.receivers:
                    signals.session_error.send(app, operation="decode", exception=exc)
                continue
            data[name] = value
            loaded[name] = raw
            if type(value) not in _IMMUTABLE:
                volatile.append(name)
        session.data.update(data)
        session.loaded = loaded
        session.volatile = tuple(volatile)


    def _encode(self, value: Any) -> bytes:
        return self.serializer.dumps(value).encode()

    def _changes(self, session: RedisSession, whole: bool) -> tuple[dict[str, bytes], list[str]]:
        """``(fields to set, fields to delete)`` compared with what was loaded."""
        encode = self._encode
        items = session.data.items()
        if whole:
            return {str(k): encode(v) for k, v in items}, []
        loaded = session.loaded
        if session.modified:
            current = {str(k): encode(v) for k, v in items}
            changed = {f: b for f, b in current.items() if self._differs(loaded.get(f), b)}
            return changed, [f for f in loaded if f not in current]
        if session.volatile:
            # Values mutated in place don't set `modified`; their bytes tell.
            changed = {}
            for name in session.volatile:
                encoded = encode(session.data.get(name))
                if self._differs(loaded[name], encoded):
                    changed[name] = encoded
            return changed, []
        return {}, []

    def _differs(self, stored: bytes | None, encoded: bytes) -> bool:
        """Did the value change? Stored bytes we would not have written that way
        (other JSON spacing, a lossy tag) are compared by their value, so an
        untouched field is never rewritten with a stale copy."""
        if stored is None:
            return True
        if stored == encoded:
            return False
        return self._encode(self.serializer.loads(stored)) != encoded


__all__ = ["SessionSerializer"]
