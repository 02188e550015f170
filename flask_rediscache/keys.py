"""Building Redis keys: everything the cache writes lives under ``<namespace>:``.

Keys may contain any characters and be of any length. A key whose full form
would exceed :data:`MAX_KEY_BYTES` keeps a readable head and ends in a digest
of the whole, so long keys stay short and distinct. Redis itself accepts keys
up to 512 MB, but long keys cost memory and bandwidth on every command, and
``flask redis keys`` should stay readable.

The layout of everything the cache writes (``ns`` is ``REDIS_NAMESPACE``)::

    ns:<key>                       cache.set/get/..., and @cached views ("view//path")
    ns:memoize:<function>:<args>   @memoize entries; "ns:memoize:<function>:*" is one function
    ns:lock:<rest of the key>      short stampede locks of fetch/memoize(race_condition_ttl=...)
"""

from __future__ import annotations

import hashlib

#: Longest key (in bytes) stored as is; longer ones end in a SHA-256 digest.
MAX_KEY_BYTES = 250
_HEAD_BYTES = 160


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).hexdigest().encode()


def make_key(namespace: str, key: str) -> bytes:
    """``<namespace>:<key>`` as bytes, digested when too long.

    Only ``str`` keys are accepted (as in Flask-Caching): silently turning
    ``1`` and ``"1"`` into the same key would hide bugs.
    """
    if not isinstance(key, str):
        raise TypeError(f"cache keys must be str, not {type(key).__name__}: {key!r:.80}")
    full = f"{namespace}:{key}"
    # Fast path: even at 4 bytes per character the key fits.
    if len(full) * 4 <= MAX_KEY_BYTES:
        return full.encode("utf-8", "surrogatepass")
    raw = full.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES:
        return raw
    # A readable head plus a digest of the whole key. The head keeps the
    # namespace and the first _HEAD_BYTES of the key, so a prefix glob (all
    # entries of one memoized function: see memoize_keys.Memoized) still matches.
    head = len(namespace.encode("utf-8", "surrogatepass")) + 1 + _HEAD_BYTES
    return raw[:head] + b"~" + _digest(raw)


def join_key(prefix: bytes, rest: bytes) -> bytes:
    """``prefix + rest``, with ``rest`` replaced by ``#<digest>`` when too long.

    Unlike :func:`make_key` the prefix always survives intact (used for the
    stampede locks, whose ``<namespace>:lock:`` prefix must stay readable).
    """
    if len(prefix) + len(rest) <= MAX_KEY_BYTES:
        return prefix + rest
    return prefix + b"#" + _digest(rest)


def lock_key(namespace: str, rkey: bytes) -> bytes:
    """The stampede lock guarding the entry ``rkey``: ``<namespace>:lock:<rest>``.

    It stays inside the namespace (so ``clear()`` and ACL key patterns cover
    it) and is digested like any other key when long.
    """
    prefix = namespace.encode("utf-8", "surrogatepass") + b":"
    rest = rkey[len(prefix):] if rkey.startswith(prefix) else rkey
    return join_key(prefix + b"lock:", rest)


def escape_glob(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
