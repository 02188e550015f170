"""Building Redis keys: everything the cache writes lives under ``<namespace>:``.

Keys may contain any characters and be of any length; a key whose full form
would exceed :data:`MAX_KEY_BYTES` keeps a readable head and ends in a digest
of the whole, so long keys stay short and distinct.
"""

from __future__ import annotations

import hashlib

MAX_KEY_BYTES = 250
_HEAD_BYTES = 150


def make_key(namespace: str, key: str) -> bytes:
    """``<namespace>:<key>`` as bytes, digested when too long."""
    if not isinstance(key, str):
        raise TypeError(f"cache keys must be str, not {type(key).__name__}: {key!r:.80}")
    full = f"{namespace}:{key}"
    # Fast path: even at 4 bytes per character the key fits.
    if len(full) * 4 <= MAX_KEY_BYTES:
        return full.encode()
    raw = full.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES:
        return raw
    # A readable head (cut on a byte boundary) plus a digest of the whole key.
    head = max(_HEAD_BYTES, len(namespace.encode()) + 1)
    return raw[:head] + b"~" + hashlib.sha256(raw).hexdigest().encode()


def escape_glob(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
