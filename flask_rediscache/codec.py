"""The cache entry format: one codec, separate from the store.

Two shapes share the value space of a Redis string:

* **Counters**: an ``int`` (not a ``bool``) is stored as plain ASCII decimal,
  so ``INCRBY`` works on it and ``get`` parses it back without unpickling.
* **Signed entries**, everything else::

      0xF1 | flags (1 byte) | [expires_at: float64, if FLAG_EXPIRES] | mac (16 bytes) | payload

  ``payload`` is a pickle, compressed when ``FLAG_ZLIB``/``FLAG_ZSTD`` is set.
  ``mac`` is a keyed BLAKE2b over the Redis key, the header and the payload,
  with a key derived from ``SECRET_KEY``: bytes someone else wrote (or moved
  from another key) fail the check and are a miss, never unpickled.
  ``expires_at`` is the *logical* expiry used by ``race_condition_ttl``.

:meth:`Codec.decode` never raises: anything it cannot trust or read is
:data:`MISS`.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
import zlib
from typing import Any, Final

zstandard: Any
try:  # optional, faster and smaller than zlib when installed
    import zstandard
except ImportError:  # pragma: no cover - depends on the install
    zstandard = None


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
MAC_SIZE: Final = 16
_EXPIRES = struct.Struct(">d")
_DIGITS = frozenset(b"-0123456789")


class Codec:
    """Encodes values for one app: signing key and compression threshold."""

    def __init__(self, secret_key: bytes, compress_threshold: int) -> None:
        derived = hmac.digest(secret_key, b"flask-rediscache cache entry v1", "sha256")
        # A keyed BLAKE2b object copied per call is cheaper than hmac.new().
        self._mac = hashlib.blake2b(key=derived, digest_size=MAC_SIZE)
        self.compress_threshold = compress_threshold
        self.undecodable = 0  # entries rejected, for stats

    def _sign(self, key: bytes, body: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(key)
        mac.update(body)
        return mac.digest()

    def encode(self, key: bytes, value: Any, expires_at: float | None = None) -> bytes:
        """Serialise ``value`` for the Redis key ``key``."""
        if type(value) is int:
            return b"%d" % value
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        flags = 0
        if self.compress_threshold and len(payload) > self.compress_threshold:
            payload, flags = self._compress(payload)
        head = bytes((VERSION, flags | (FLAG_EXPIRES if expires_at is not None else 0)))
        if expires_at is not None:
            head += _EXPIRES.pack(expires_at)
        return head + self._sign(key, head + payload) + payload

    @staticmethod
    def _compress(payload: bytes) -> tuple[bytes, int]:
        if zstandard is not None:
            packed, flag = zstandard.ZstdCompressor(level=3).compress(payload), FLAG_ZSTD
        else:
            packed, flag = zlib.compress(payload, 6), FLAG_ZLIB
        # Keep compression only when it pays for itself.
        return (packed, flag) if len(packed) < len(payload) else (payload, 0)

    def decode(self, key: bytes, raw: bytes | None) -> tuple[Any, float | None]:
        """Return ``(value, expires_at)``, or ``(MISS, None)`` for anything untrusted."""
        if not raw:
            return MISS, None
        if raw[0] != VERSION:
            if raw[0] in _DIGITS:
                try:
                    return int(raw), None
                except ValueError:
                    pass
            self.undecodable += 1
            return MISS, None
        try:
            flags = raw[1]
            start = 2 + (_EXPIRES.size if flags & FLAG_EXPIRES else 0)
            mac, payload = raw[start:start + MAC_SIZE], raw[start + MAC_SIZE:]
            if len(mac) != MAC_SIZE or not hmac.compare_digest(mac, self._sign(key, raw[:start] + payload)):
                self.undecodable += 1
                return MISS, None
            expires_at = _EXPIRES.unpack_from(raw, 2)[0] if flags & FLAG_EXPIRES else None
            if flags & FLAG_ZLIB:
                payload = zlib.decompress(payload)
            elif flags & FLAG_ZSTD:
                if zstandard is None:
                    return MISS, None
                payload = zstandard.ZstdDecompressor().decompress(payload)
            return pickle.loads(payload), expires_at
        except Exception:  # signed by us but unreadable here (e.g. class gone)
            self.undecodable += 1
            return MISS, None
