"""The package's shape: no import cycles, public APIs of Flask and redis-py only."""

from __future__ import annotations

import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "flask_rediscache"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: pathlib.Path) -> set[str]:
    """Package modules imported by ``path``, function-level imports included,
    ``if TYPE_CHECKING:`` blocks excluded."""
    tree = ast.parse(path.read_text())
    module = path.stem if path.name != "__init__.py" else "__init__"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("flask_rediscache"):
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flask_rediscache."):
                    found.add(alias.name.split(".")[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(node):], node])
        visiting.append(node)
        for dep in sorted(graph[node]):
            walk(dep)
        visiting.pop()
        done.add(node)

    for name in sorted(graph):
        walk(name)


def test_only_extension_imports_the_features():
    graph = _graph()
    for feature in ("sessions", "cli", "extension"):
        importers = sorted(name for name, deps in graph.items() if feature in deps)
        assert importers in ([], ["extension"]), f"{feature} is imported by {importers}"
    # Features reach per-app state through state.py, never through extension.py.
    assert not [name for name, deps in graph.items() if "extension" in deps]


def test_no_private_flask_or_redis_py_internals():
    pattern = re.compile(r"_cv_|\._sock\b|derive_key|No connection available")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_the_store_is_the_only_cache_module_calling_redis_py_commands():
    # cache*.py, the decorators, stampede.py and the disabled cache's store never touch a redis-py client.
    for name in ("cache.py", "cache_base.py", "cache_reads.py", "cache_writes.py", "decorators.py",
                 "memoize.py", "memoize_keys.py", "cached_view.py", "stampede.py", "failopen.py",
                 "null_store.py"):
        text = (PACKAGE / name).read_text()
        assert ".client." not in text and "pipeline(" not in text, name


def test_api_docs_do_not_render_signal_objects():
    """Signals are documented by name, not as ``<NamedSignal object at 0x...>``."""
    text = (PACKAGE.parent / "docs" / "api.rst").read_text()
    from flask_rediscache import signals

    for name in signals.__all__:
        block = text.split(f".. autodata:: flask_rediscache.signals.{name}", 1)
        assert len(block) == 2 and block[1].lstrip().startswith(":no-value:"), name
