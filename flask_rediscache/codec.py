"""The cache entry format: one codec, separate from the store.

Two shapes share the value space of a Redis string:

* **Counters**: an ``int`` (not a ``bool``) that fits Redis' signed 64-bit
  counters, stored without a logical expiry, is plain ASCII decimal, so
  ``INCRBY`` works on it and ``get`` parses it back without unpickling.
* **Signed entries**, everything else::

      0xF1 | flags (1 byte) | [expires_at: float64, if FLAG_EXPIRES]
           | [length (1 byte) | version, if FLAG_VERSION] | mac (16 bytes) | payload

  ``payload`` is a pickle, compressed when ``FLAG_ZLIB``/``FLAG_ZSTD`` is set.
  ``mac`` is a keyed BLAKE2b over the (length-prefixed) Redis key, the header
  and the payload, with a key derived from ``SECRET_KEY``: bytes someone else
  wrote, or an entry moved from another key, fail the check and are a miss,
  never unpickled. ``expires_at`` (wall-clock seconds) is the *logical* expiry
  used by ``race_condition_ttl``: the Redis TTL outlives it so a stale value
  can be served while one caller recomputes. ``version`` (``version=`` of the
  cache API, Rails' recyclable keys) is signed with the rest: a read asking for
  another version is a miss, and the next write replaces the entry in place.
  Entries written before ``FLAG_VERSION`` existed have no version and read as
  before; an older release reading a versioned entry fails its signature
  check, so it is a miss there, never misread.

:meth:`Codec.decode` never raises: anything it cannot trust or read is
:data:`MISS`, counted in :attr:`Codec.undecodable` and logged once per codec,
and the next write of the key replaces it.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.util
import logging
import pickle
import struct
import zlib
from typing import Any, Final

from .errors import UnpicklableError

#: Optional (``pip install flask-rediscache[zstd]``): faster and smaller than
#: zlib. Looked up rather than imported so type-checking doesn't depend on it.
zstandard: Any = (importlib.import_module("zstandard")
                  if importlib.util.find_spec("zstandard") is not None else None)

logger = logging.getLogger("flask_rediscache")


class _Miss:
    """Sentinel for "no usable entry" (``None`` is a value that can be cached)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


MISS: Final = _Miss()

VERSION: Final = 0xF1
FLAG_ZLIB: Final = 0x01
FLAG_EXPIRES: Final = 0x02
FLAG_ZSTD: Final = 0x04
#: The entry carries a version (Rails' recyclable keys): one length byte, then the version.
FLAG_VERSION: Final = 0x08
#: Longest version stored as is (bytes); longer ones are stored as a digest.
MAX_VERSION_BYTES: Final = 200
#: Bytes that always hold an entry's whole header before the MAC (what :meth:`Codec.peek` needs).
PEEK_BYTES: Final = 2 + 8 + 1 + MAX_VERSION_BYTES
MAC_SIZE: Final = 16
_EXPIRES = struct.Struct(">d")
_KEY_LENGTH = struct.Struct(">I")
_HEAD_PLAIN: Final = 2 + MAC_SIZE
_HEAD_EXPIRES: Final = 2 + _EXPIRES.size + MAC_SIZE
_COPY_LIMIT: Final = 64 * 1024
#: Redis counters are signed 64-bit; larger ints are pickled like any value.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def version_bytes(version: Any) -> bytes | None:
    """A cache ``version=`` (``str`` or ``int``; ``None`` = unversioned) as
    stored in the entry; versions longer than :data:`MAX_VERSION_BYTES` are
    stored as their SHA-256 digest."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (str, int)):
        raise TypeError(f"version must be a str or an int, not {type(version).__name__}")
    raw = str(version).encode("utf-8", "surrogatepass")
    if len(raw) > MAX_VERSION_BYTES:
        return b"#" + hashlib.sha256(raw).hexdigest().encode()
    return raw


class Codec:
    """Encodes values for one app: signing key and compression threshold."""

    def __init__(self, secret_key: bytes, compress_threshold: int) -> None:
        derived = hmac.digest(secret_key, b"flask-rediscache cache entry v1", "sha256")
        # A keyed BLAKE2b object copied per call is cheaper than hmac.new().
        self._mac = hashlib.blake2b(key=derived, digest_size=MAC_SIZE)
        self.compress_threshold = compress_threshold
        self.undecodable = 0  # entries rejected, for stats
        self._warned = False

    def _sign(self, key: bytes, head: bytes, payload: bytes | memoryview) -> bytes:
        mac = self._mac.copy()
        # The key's length goes first so (key, body) pairs cannot be re-split:
        # "k" + "\xf1..." and "k\xf1" + "..." sign differently. One joined
        # update is the cheapest form (measured: about 0.4 µs per entry).
        if len(payload) < _COPY_LIMIT:
            mac.update(b"".join((_KEY_LENGTH.pack(len(key)), key, head, payload)))
        else:  # large: don't copy the payload just to hash it
            mac.update(_KEY_LENGTH.pack(len(key)) + key + head)
            mac.update(payload)
        return mac.digest()

    def encode(self, key: bytes, value: Any, expires_at: float | None = None, *,
               counter: bool = True, version: bytes | None = None) -> bytes:
        """Serialise ``value`` for the Redis key ``key``.

        A plain ``int`` is written in the counter form (ASCII decimal, so
        ``INCRBY`` works on it) when ``counter`` is true and it has no
        ``expires_at``; otherwise it is signed like any other value.
        ``expires_at`` (wall-clock seconds) is stored for ``race_condition_ttl``,
        ``version`` (see :func:`version_bytes`) for versioned reads.
        Raises :class:`~flask_rediscache.errors.UnpicklableError` for an unpicklable value.
        """
        if (counter and type(value) is int and expires_at is None and version is None
                and _INT_MIN <= value <= _INT_MAX):
            return b"%d" % value
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # TypeError, PicklingError, AttributeError: pickle's choice
            raise UnpicklableError(f"cannot cache a {type(value).__name__}: {exc}") from exc
        flags = 0
        if self.compress_threshold and len(payload) > self.compress_threshold:
            payload, flags = self._compress(payload)
        if expires_at is None and version is None:
            head = bytes((VERSION, flags))
        else:
            if expires_at is not None:
                flags |= FLAG_EXPIRES
            if version is not None:
                flags |= FLAG_VERSION
            head = bytes((VERSION, flags))
            if expires_at is not None:
                head += _EXPIRES.pack(expires_at)
            if version is not None:
                head += bytes((len(version),)) + version
        return head + self._sign(key, head, payload) + payload

    @staticmethod
    def _compress(payload: bytes) -> tuple[bytes, int]:
        if zstandard is not None:
            packed, flag = zstandard.ZstdCompressor(level=3).compress(payload), FLAG_ZSTD
        else:
            packed, flag = zlib.compress(payload, 6), FLAG_ZLIB
        # Keep compression only when it pays for itself.
        return (packed, flag) if len(packed) < len(payload) else (payload, 0)

    def decode(self, key: bytes, raw: bytes | None, counters: bool = False,
               version: bytes | None = None, trusted: bool = False) -> tuple[Any, float | None]:
        """Return ``(value, expires_at)``, or ``(MISS, None)`` for anything untrusted.

        An unsigned decimal integer (what ``INCRBY`` writes) is accepted only
        with ``counters=True``: the counter API and ``get``. Every other read
        (memoize, cached, fetch) requires a signed entry, so a ``b"1"`` someone
        wrote at a memoized key cannot turn a cached ``False`` into ``1``.

        With ``version``, only an entry stored with that same version is
        returned; any other (unversioned, another version, a counter) is a
        plain miss, not an undecodable entry. Without it, any version is
        accepted (Rails' rule).

        ``trusted=True`` skips the signature check, for bytes whose check
        already passed for this same key (a local copy: ``REDIS_LOCAL_CACHE``
        keeps only entries that decoded).
        """
        if raw is None:
            return MISS, None
        size = len(raw)
        if not size or raw[0] != VERSION:
            if counters and version is None:
                return self._decode_counter(key, raw)
            if version is not None:
                return MISS, None
            return self._reject(key, "not a signed entry")
        if size < _HEAD_PLAIN:
            return self._reject(key, "truncated")
        flags = raw[1]
        if not flags and size < _COPY_LIMIT:
            if version is not None:
                return MISS, None  # an unversioned entry
            # The common case, inlined (a memoize hit runs this): no expiry,
            # not compressed, small enough to slice.
            payload = raw[_HEAD_PLAIN:]
            if not trusted:
                mac = self._mac.copy()
                mac.update(b"".join((_KEY_LENGTH.pack(len(key)), key, raw[:2], payload)))
                if not hmac.compare_digest(raw[2:_HEAD_PLAIN], mac.digest()):
                    return self._reject(key, "bad signature")
            try:
                return pickle.loads(payload), None
            except Exception as exc:  # signed by us but unreadable here (e.g. its class is gone)
                return self._reject(key, f"{type(exc).__name__}: {exc}")
        start = 2 + _EXPIRES.size if flags & FLAG_EXPIRES else 2
        if flags & FLAG_VERSION:
            if size <= start:
                return self._reject(key, "truncated")
            end = start + 1 + raw[start]
            if version is not None and raw[start + 1:end] != version:
                return MISS, None  # another version: a miss (its signature is not even checked)
            start = end
        elif version is not None:
            return MISS, None
        start += MAC_SIZE
        if size < start:
            return self._reject(key, "truncated")
        # Large payloads are not copied (a view); small ones are cheaper to slice.
        body: bytes | memoryview = raw[start:] if size < _COPY_LIMIT else memoryview(raw)[start:]
        if not trusted and not hmac.compare_digest(raw[start - MAC_SIZE:start],
                                                   self._sign(key, raw[:start - MAC_SIZE], body)):
            return self._reject(key, "bad signature")
        try:
            expires_at = _EXPIRES.unpack_from(raw, 2)[0] if flags & FLAG_EXPIRES else None
            if flags & FLAG_ZSTD:
                if zstandard is None:
                    return self._reject(key, "zstd-compressed but zstandard is not installed")
                body = zstandard.ZstdDecompressor().decompress(body)
            elif flags & FLAG_ZLIB:
                body = zlib.decompress(body)
            return pickle.loads(body), expires_at
        except Exception as exc:  # signed by us but unreadable here (e.g. its class is gone)
            return self._reject(key, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def peek(head: bytes) -> tuple[float | None, bytes | None] | None:
        """``(expires_at, version)`` from the first :data:`PEEK_BYTES` of an
        entry, without checking its signature or reading its value (what
        ``has``/``ttl`` need); ``None`` when ``head`` is not an entry of ours
        (a counter, or foreign bytes), which then has neither."""
        if len(head) < 2 or head[0] != VERSION:
            return None
        flags = head[1]
        start = 2
        expires_at = None
        if flags & FLAG_EXPIRES:
            if len(head) < 2 + _EXPIRES.size:
                return None
            expires_at = _EXPIRES.unpack_from(head, 2)[0]
            start += _EXPIRES.size
        version = None
        if flags & FLAG_VERSION:
            if len(head) <= start or len(head) < start + 1 + head[start]:
                return None
            version = head[start + 1:start + 1 + head[start]]
        return expires_at, version

    def _decode_counter(self, key: bytes, raw: bytes) -> tuple[Any, None]:
        # Exactly what INCRBY writes: optional "-", then ASCII digits. int()
        # alone would also accept "1_000", " 12" or "+3".
        digits = raw[1:] if raw[:1] == b"-" else raw
        if digits.isdigit() and len(raw) <= 20:
            return int(raw), None
        return self._reject(key, "not written by flask-rediscache")

    def _reject(self, key: bytes, reason: str) -> tuple[Any, None]:
        self.undecodable += 1
        if not self._warned:
            self._warned = True
            logger.warning("flask-rediscache: ignoring the entry at %r (%s); undecodable entries are "
                           "misses and the next write replaces them (further ones are counted, "
                           "not logged)", key[:120], reason)
        return MISS, None
