"""Hiding secrets in every message, log line and CLI output.

One function, :func:`mask`, is used by everything that prints. It hides:

* the password of URLs (``scheme://user:password@host``), up to the last
  ``@`` before the path, so a password containing ``@`` is hidden whole;
* ``password=`` values (URL queries, ``key=value`` text, keyword reprs such
  as ``password='x'``), including ``sentinel_password=`` and the like;
* ``'password': 'x'`` items of dict reprs and JSON;
* every literal secret the caller passes (configured passwords), also in
  its percent-encoded form, as it appears inside a URL.

Why regexes and literals both: a message may quote a value the config
parser could not make sense of (so it knows no structure to mask), and a
redis-py error may print a password outside any URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
#: ``://user:`` then everything up to the last ``@`` before a ``/``, space or quote.
_USERINFO = re.compile(r"(://[^:/@\s'\"]*:)[^/\s'\"]*@")
#: ``password=value`` (value quoted or up to a separator); ``\w*`` catches ``sentinel_password=``.
_ASSIGNED = re.compile(r"""(\b\w*password=)(?:'[^']*'|"[^"]*"|[^&;\s#,)'"\]}]*)""", re.IGNORECASE)
#: ``'password': 'value'`` / ``"password": "value"`` in dict reprs and JSON.
_ITEM = re.compile(r"""(['"]\w*password['"]\s*:\s*)(?:b?'[^']*'|b?"[^"]*")""", re.IGNORECASE)


def mask(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords, ``password=`` values and ``secrets`` replaced by ``***``."""
    literals: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= 3:  # shorter ones would mangle ordinary words
            literals.update((secret, quote(secret, safe="")))
    # Literals first: a password with a raw "/" or "@" defeats the URL pattern.
    for secret in sorted(literals, key=len, reverse=True):  # longest first: no partial leftovers
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(r"\1" + MASK + "@", text)
    text = _ASSIGNED.sub(r"\1" + MASK, text)
    return _ITEM.sub(r"\1'" + MASK + "'", text)


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``password=`` query value) masked."""
    return mask(url)
