"""The documentation is executable: every ``.. code-block:: python`` runs.

Each page's Python blocks run in order in one namespace (a page reads as one
program), against a real redis-server: the ``redis://127.0.0.1:6379/<db>``
URLs in the text are pointed at the test server's port, and ``REDIS_URL`` /
``SECRET_KEY`` (and Flask's ``FLASK_``-prefixed forms) are set in the
environment for the snippets that read it. Code is compiled with the .rst file
as its file name and the block's real line numbers, so a failing snippet's
traceback points into the page.

The other tests keep the prose honest: the configuration table against
``DEFAULTS``, the README's commands against dev.sh, and what the migration
guides say about Flask-Caching and Flask-Session against those libraries.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_rediscache.config import DEFAULTS

from .servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages whose Python blocks must all run (the others' pages are theirs to test).
NOT_OURS = {"cli.rst", "performance.rst"}
PAGES = ["README.rst", *sorted(
    str(p.relative_to(ROOT)) for p in DOCS.glob("*.rst") if p.name not in NOT_OURS
)]
LOCAL_URL = re.compile(r"redis://(?:127\.0\.0\.1|localhost):6379/(\d+)")
DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: python\s*$")


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, dedented code)`` of every python code-block."""
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        outer = len(match.group(1))
        while i < len(lines) and re.match(r"^\s+:\w[\w-]*:", lines[i]):  # directive options
            i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > outer):
            body.append((i + 1, lines[i]))
            i += 1
        while body and not body[-1][1].strip():
            body.pop()
        while body and not body[0][1].strip():
            body.pop(0)
        assert body, f"{path}:{i}: empty code-block"
        indent = min(len(text) - len(text.lstrip()) for _, text in body if text.strip())
        blocks.append((body[0][0], "\n".join(text[indent:] for _, text in body)))
    return blocks


def run_page(path: Path, server_url: str) -> dict[str, Any]:
    port = server_url.rsplit(":", 1)[1].split("/")[0]
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    blocks = python_blocks(path)
    assert blocks, f"{path} has no python code-block"
    for first_line, code in blocks:
        code = LOCAL_URL.sub(lambda m: f"redis://127.0.0.1:{port}/{m.group(1)}", code)
        assert not re.search(r"(127\.0\.0\.1|localhost):6379\b", code), "snippet would use port 6379"
        # Pad so line numbers in tracebacks are the page's own.
        compiled = compile("\n" * (first_line - 1) + code, str(path), "exec")
        exec(compiled, namespace)
    return namespace


@pytest.fixture
def docs_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> RedisServer:
    for prefix in ("", "FLASK_"):
        monkeypatch.setenv(prefix + "REDIS_URL", redis_server.url)
        monkeypatch.setenv(prefix + "SECRET_KEY", "docs-test-secret")
    return redis_server


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(ROOT / p)])
def test_python_blocks_run(page: str, docs_env: RedisServer) -> None:
    run_page(ROOT / page, docs_env.url)


def test_the_pages_that_must_have_runnable_examples_have_them() -> None:
    required = ["README.rst", "docs/quickstart.rst", "docs/configuration.rst", "docs/caching.rst",
                "docs/sessions.rst", "docs/migrating-flask-caching.rst", "docs/migrating-flask-session.rst"]
    for page in required:
        assert page in PAGES
        assert python_blocks(ROOT / page), page


def test_block_extraction_handles_options_and_nesting(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n   :caption: x\n\n   a = 1\n\n   if a:\n"
        "       b = 2\nafter\n\n* item\n\n  .. code-block:: python\n\n     c = 3\n\n  text\n"
        ".. code-block:: console\n\n   $ not python\n"
    )
    assert python_blocks(page) == [(7, "a = 1\n\nif a:\n    b = 2"), (17, "c = 3")]


def test_a_failing_snippet_points_at_its_line(tmp_path: Path, redis_server: RedisServer) -> None:
    page = tmp_path / "bad.rst"
    page.write_text("x\n\n.. code-block:: python\n\n   ok = True\n   assert not ok\n")
    with pytest.raises(AssertionError) as info:
        run_page(page, redis_server.url)
    assert info.traceback[-1].lineno + 1 == 6


# -- configuration.rst's table is DEFAULTS ---------------------------------------

def test_configuration_table_lists_every_key_with_its_default() -> None:
    text = (DOCS / "configuration.rst").read_text()
    rows = re.findall(r"^   \* - ``(REDIS_[A-Z_]+)``\n     - ``(.+?)``$", text, re.M)
    documented = dict(rows)
    assert len(rows) == len(documented), "a key is documented twice"
    assert set(documented) == set(DEFAULTS)
    for key, literal in documented.items():
        assert ast.literal_eval(literal) == DEFAULTS[key], key
        assert type(ast.literal_eval(literal)) is type(DEFAULTS[key]), key


# -- the README ------------------------------------------------------------------

def test_readme_commands_are_the_ones_dev_sh_has() -> None:
    readme = (ROOT / "README.rst").read_text()
    dev = (ROOT / "dev.sh").read_text()
    commands = set(re.findall(r"\./dev\.sh (\w+)", readme))
    assert {"example", "test"} <= commands
    for command in commands:
        assert re.search(rf"^\s+{command}\)$", dev, re.M), command


def test_readme_links_into_the_docs_exist() -> None:
    readme = (ROOT / "README.rst").read_text()
    targets = re.findall(r"<((?:docs|examples)/[^>]+)>`_", readme)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), target


def test_readme_quotes_only_numbers_from_the_performance_page() -> None:
    readme = (ROOT / "README.rst").read_text()
    quoted = re.findall(r"\d+(?:\.\d+)?\s?(?:×|x|%|µs|us|ms)", readme)
    if not quoted:
        return
    performance = (DOCS / "performance.rst").read_text()
    for number in quoted:
        assert number in performance, number


# -- what the migration guides say about the other libraries -----------------------

def test_flask_caching_facts(redis_server: RedisServer) -> None:
    import redis
    from flask_caching import Cache

    app = Flask("flask-caching-facts")
    app.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="fc_")
    cache = Cache(app)

    @cache.memoize(timeout=60)
    def lookup(x: int) -> int | None:
        calls.append(x)
        return None if x < 0 else x

    calls: list[int] = []
    with app.app_context():
        lookup(1)
        redis_server.reset_stats()
        assert lookup(1) == 1
        # "reads the function's version key and then the value (MGET + GET)"
        assert redis_server.commands_since_reset() == {"mget": 1, "get": 1}
        # "does not cache None results by default": computed on every call
        lookup(-1)
        lookup(-1)
        assert calls == [1, -1, -1]
        cache.set("k", 1)
        redis_server.reset_stats()
        cache.clear()
        assert "keys" in redis_server.commands_since_reset()  # "clear() runs KEYS <prefix>*"
    dead = Flask("flask-caching-dead")
    dead.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL="unix:///tmp/no-redis-listens-here.sock")
    dead_cache = Cache(dead)
    with dead.app_context(), pytest.raises(redis.ConnectionError):
        dead_cache.get("k")  # "a direct cache.get raises ConnectionError"


def test_flask_session_facts(redis_factory: Any) -> None:
    import redis
    from flask import session
    from flask_session import Session

    server = redis_factory()
    app = Flask("flask-session-facts")
    app.config.update(SECRET_KEY="s", SESSION_TYPE="redis", SESSION_REDIS=redis.from_url(server.url))
    Session(app)

    @app.post("/set")
    def set_value() -> str:
        session["a"] = 1
        return "ok"

    @app.get("/get")
    def get_value() -> str:
        return str(session.get("a"))

    client = app.test_client()
    client.post("/set")
    cookie = client.get_cookie("session").value
    # "stores a session under session:<the cookie's id>", the cookie unsigned
    assert server.client().keys("*") == [f"session:{cookie}".encode()]
    server.reset_stats()
    assert client.get("/get").text == "1"
    # "a GET and a SET for a page that only reads it"
    calls = server.commands_since_reset()
    assert calls == {"get": 1, "set": 1}
    server.kill()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(redis.ConnectionError):  # "fails with redis-py's ConnectionError"
        client.get("/get")
