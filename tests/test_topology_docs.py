"""The Python snippets of docs/topologies/*.rst are valid configuration.

Every ``.. code-block:: python`` is executed (``app`` is a fresh Flask app
unless the snippet makes its own; ``os.environ[...]`` names it reads are set
to placeholder values), and every config it produces (the app's ``REDIS_*``
keys, or a dict of them) goes through :func:`flask_rediscache.config_loader.load_settings`
as ``init_app`` would run it in production. Each page's snippets must also
configure the topology the page is about.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from flask_rediscache.config import DEFAULTS, ConfigError, Settings
from flask_rediscache.config_loader import load_settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "topologies"
PAGES = ["index", "separate-instances", "sentinel", "cluster", "tls", "acl"]
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block:: python[ \t]*$")
_ENV = re.compile(r"""os\.environ\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\]""")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, dedented code)`` of every ``.. code-block:: python``."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            i += 1
            continue
        indent = len(match.group("indent"))
        start = i + 1
        j = start
        body: list[str] = []
        while j < len(lines):
            line = lines[j]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            j += 1
        # Drop directive options (":caption: ...") and the blank line after them.
        while body and (not body[0].strip() or body[0].strip().startswith(":")):
            body.pop(0)
        blocks.append((start + 1, textwrap.dedent("\n".join(body)).strip() + "\n"))
        i = j
    return blocks


def configs_of(code: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Run a snippet; return the REDIS_* configs it made (app config or dicts)."""
    for name in _ENV.findall(code):
        # URLs from the environment get a URL, passwords a placeholder.
        value = f"redis://{name.lower().replace('_', '-')}.example:6379/0" if name.endswith("URL") \
            else f"placeholder-{name.lower()}"
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {"__name__": "docs_snippet", "app": Flask("docs_snippet")}
    exec(compile(code, "<docs snippet>", "exec"), namespace)
    found = []
    for value in namespace.values():
        if isinstance(value, Flask):
            config = {k: v for k, v in value.config.items() if k.startswith("REDIS_")}
        elif isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("REDIS_")
                                                       for k in value):
            config = dict(value)
        else:
            continue
        if config:
            found.append(config)
    return found


def settings_of(config: dict[str, Any]) -> Settings:
    """Validate ``config`` as init_app does in production (debug off; the app
    around the snippet provides SECRET_KEY)."""
    return load_settings({**DEFAULTS, "SECRET_KEY": "s", **config}, debug=False)


#: What each page's snippets must, between them, configure.
ABOUT: dict[str, Callable[[Settings], bool]] = {
    "index": lambda s: s.cache_url.startswith("redis://"),
    "separate-instances": lambda s: s.cache_url != s.session_url,
    "sentinel": lambda s: bool(s.sentinels) and s.sentinel_master is not None,
    "cluster": lambda s: len(s.cluster) >= 2,
    "tls": lambda s: s.cache_url.startswith("rediss://") and s.ssl_cert_reqs == "required",
    "acl": lambda s: all(urlsplit(url).username for url in (s.cache_url, s.session_url)),
}


@pytest.mark.parametrize("page", PAGES)
def test_every_python_snippet_is_a_valid_config(page, monkeypatch):
    text = (DOCS / f"{page}.rst").read_text()
    blocks = python_blocks(text)
    assert blocks, f"{page}.rst has no python snippet"
    all_settings = []
    for line, code in blocks:
        configs = configs_of(code, monkeypatch)
        assert configs, f"{page}.rst:{line}: the snippet configures nothing"
        for config in configs:
            try:
                all_settings.append(settings_of(config))
            except ConfigError as exc:  # pragma: no cover - the failure message is the point
                pytest.fail(f"{page}.rst:{line}: {exc}")
    assert any(ABOUT[page](s) for s in all_settings), f"no snippet of {page}.rst configures its topology"


def test_every_topology_page_is_in_the_toctree():
    index = (DOCS / "index.rst").read_text()
    toctree = index.split(".. toctree::", 1)[1]
    for page in PAGES[1:]:
        assert re.search(rf"^\s+{re.escape(page)}\s*$", toctree, re.M), page
    assert sorted(p.stem for p in DOCS.glob("*.rst")) == sorted(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_config_keys_named_in_the_prose_exist(page):
    """A ``REDIS_*`` key in double backticks is a real key (``REDIS_SSL_*`` a real prefix)."""
    text = (DOCS / f"{page}.rst").read_text()
    for name in set(re.findall(r"``(REDIS_[A-Z_]*\*?)``", text)):
        if name.endswith("*"):
            assert any(key.startswith(name[:-1]) for key in DEFAULTS), name
        else:
            assert name in DEFAULTS, f"{page}.rst names unknown key {name}"


def test_the_checker_catches_a_broken_snippet(monkeypatch):
    """The extraction and validation above can fail: a snippet with Sentinel
    but no service name, in an indented block with options, is rejected."""
    rst = textwrap.dedent("""
        Title
        =====

        * item

          .. code-block:: python
             :caption: broken

             import os

             app.config.update(
                 REDIS_SENTINELS=["s1:26379"],
                 REDIS_PASSWORD_HINT=os.environ["SOME_SECRET"],
             )

        after the block
    """)
    ((_, code),) = python_blocks(rst)
    assert code.startswith("import os") and "after the block" not in code
    (config,) = configs_of(code, monkeypatch)
    assert config["REDIS_PASSWORD_HINT"] == "placeholder-some_secret"
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER"):
        settings_of(config)
