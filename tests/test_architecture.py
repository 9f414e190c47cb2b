"""The layers of docs/architecture.md, checked on the source: data flows down, never up.

Every ``import`` in ``src/zhinao`` is read with :mod:`ast` (module level and inside
functions: a lazy import is still an arrow; only ``if TYPE_CHECKING:`` blocks are skipped, they
never run) and each arrow is checked against the layer table below. A new top-level package
must be given a layer here, so nobody adds one without deciding where it sits.

Also checked: the core names no capability (adding one is a new folder and an entry point,
not an edit of platform.py, gateway/app.py, store/, cli/__init__.py or console/pages.py), and
the package has no import cycle.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "zhinao"

#: layer of each top-level part of the package (a module or a sub-package)
LAYER = {
    "": "foundation", "errors": "foundation", "settings": "foundation",
    "store": "store",
    "runtime": "runtime",
    "safety": "safety",
    "maas": "maas",
    "capability": "capability-protocol",
    "knowledge": "capability", "analytics": "capability",
    "agent": "use-case", "alignment": "use-case", "apps": "use-case",
    "platform": "composition", "demo": "composition",
    "gateway": "web", "console": "web",
    "cli": "cli",
}
BELOW_CAPABILITIES = {"foundation", "store", "runtime", "safety", "maas", "capability-protocol"}
#: what each layer may import (besides its own part)
ALLOWED = {
    "foundation": {"foundation"},
    "store": {"foundation"},
    "runtime": {"foundation", "store"},
    "safety": {"foundation"},
    "maas": {"foundation", "store", "runtime", "safety"},
    "capability-protocol": {"foundation", "store", "runtime", "safety", "maas"},
    # a capability is a plug-in: it cannot count on another one being installed
    "capability": BELOW_CAPABILITIES,
    "use-case": BELOW_CAPABILITIES | {"capability", "use-case"},
    "composition": BELOW_CAPABILITIES | {"capability", "use-case", "composition"},
    "web": BELOW_CAPABILITIES | {"capability", "use-case", "composition", "web"},
    "cli": BELOW_CAPABILITIES | {"capability", "use-case", "composition", "web", "cli"},
}
#: files of the core that must name no capability
CORE_FILES = ["platform.py", "gateway/app.py", "store/db.py", "store/migrations/env.py", "cli/__init__.py",
              "console/pages.py"]
CAPABILITY_NAMES = re.compile(r"knowledge|analytics", re.I)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, imported name) of every absolute import that runs, ``from a import b`` as a and a.b."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def part_of(name: str) -> str | None:
    """The top-level part of ``zhinao.x.y`` (``x``); ``""`` for the package itself; None outside."""
    if name == "zhinao":
        return ""
    if not name.startswith("zhinao."):
        return None
    return name.split(".")[1]


def arrows(source: str, mod: str) -> list[tuple[int, str]]:
    return [(line, name) for line, name in imports(ast.parse(source)) if part_of(name) is not None
            and not mod.startswith(name + ".") and name != mod]


def upward(mod: str, source: str) -> list[str]:
    """The arrows of module ``mod`` (given its source) that its layer does not allow."""
    here = part_of(mod)
    layer = LAYER[here]
    bad = []
    for line, name in arrows(source, mod):
        there = part_of(name)
        if there == here or there not in LAYER:
            continue
        if LAYER[there] not in ALLOWED[layer]:
            bad.append(f"{mod}:{line} ({layer}) imports {name} ({LAYER[there]})")
    return bad


def test_every_part_of_the_package_has_a_layer():
    unknown = sorted({part_of(m) for m in modules()} - set(LAYER))
    assert not unknown, f"give these a layer in tests/test_architecture.py LAYER: {unknown}"


def test_no_import_goes_up_a_layer():
    bad = [b for mod, path in sorted(modules().items()) for b in upward(mod, path.read_text(encoding="utf-8"))]
    assert not bad, "upward imports:\n" + "\n".join(bad)


@pytest.mark.parametrize("mod, source", [
    # what store/migrations/env.py did before capabilities brought their own branches
    ("zhinao.store.migrations.env", "import zhinao.analytics.models\n"),
    ("zhinao.runtime.manager", "def f():\n    from zhinao.maas.usage import UsageEvent\n"),  # lazy: still an arrow
    ("zhinao.maas.generation", "from zhinao import knowledge\n"),
    ("zhinao.knowledge.service", "from zhinao.gateway.deps import PlatformDep\n"),
    ("zhinao.analytics.service", "import zhinao.platform\n"),
    ("zhinao.analytics.runs", "from zhinao.knowledge.index import Hit\n"),  # plug-ins do not lean on each other
])
def test_the_checker_sees_an_upward_arrow(mod, source):
    assert upward(mod, source), f"{source!r} in {mod} should be refused"


def test_the_checker_lets_type_only_and_downward_imports_pass():
    src = ("from typing import TYPE_CHECKING\nfrom zhinao.store.db import Database\n"
           "if TYPE_CHECKING:\n    from zhinao.platform import Platform\n")
    assert upward("zhinao.maas.usage", src) == []


@pytest.mark.parametrize("rel", CORE_FILES)
def test_the_core_names_no_capability(rel):
    text = (PKG / rel).read_text(encoding="utf-8")
    found = [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1)
             if CAPABILITY_NAMES.search(line)]
    assert not found, "the core must find capabilities through zhinao.capability, not name them:\n" + "\n".join(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(old)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        for _, name in arrows(path.read_text(encoding="utf-8"), mod):
            if name in mods:
                graph[mod].add(name)
    return graph


def test_no_import_cycles():
    """e.g. analytics/jobs.py <-> runs.py and knowledge/service.py <-> ingestion.py <-> rag.py, once."""
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles (a lazy import inside a function counts):\n" + "\n".join(map(str, cycles))


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
