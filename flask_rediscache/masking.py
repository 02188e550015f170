"""Hiding secrets in every message, log line and CLI output.

One function, :func:`mask`, is used by everything that prints: it hides the
password of URLs (``scheme://user:password@host``), ``password=`` query
values, and any literal secret the caller passes (configured passwords).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_QUERY_PASSWORD = re.compile(r"((?:^|[?&;\s])password=)[^&;\s#]*", re.IGNORECASE)


def mask(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords, ``password=`` values and ``secrets`` replaced by ``***``."""
    text = _USERINFO.sub(r"\1" + MASK + "@", text)
    text = _QUERY_PASSWORD.sub(r"\1" + MASK, text)
    for secret in secrets:
        if secret and len(secret) >= 3:  # shorter ones would mangle ordinary words
            text = text.replace(secret, MASK)
    return text


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``password=`` query value) masked."""
    return mask(url)
