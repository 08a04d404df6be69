"""The import graph of the package runs one way: no module or package cycles, and none of the arrows the
architecture forbids (docs/architecture.md, "Layers"). Every import counts, lazy ones inside functions too;
only ``if TYPE_CHECKING:`` blocks (annotations) are left out."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# (from package, to package) pairs that must never appear
FORBIDDEN = [
    ("data", "studies"), ("data", "scorers"), ("data", "config"), ("data", "run"), ("data", "adapt"),
    ("scorers", "data"), ("scorers", "studies"), ("scorers", "run"),
    ("studies", "run"), ("studies", "config"), ("studies", "report"), ("studies", "adapt"), ("studies", "commands"),
    ("lm", "data"), ("lm", "studies"), ("lm", "adapt"), ("lm", "run"), ("lm", "scorers"), ("lm", "config"),
    ("report", "studies"), ("report", "adapt"), ("report", "config"),
    ("stats", "studies"), ("stats", "run"), ("models", "adapt"), ("models", "studies"),
    ("strategies", "studies"), ("strategies", "run"), ("strategies", "config"), ("strategies", "report"),
    ("strategies", "adapt"), ("adapt", "strategies"), ("studies", "strategies"), ("data", "strategies"),
]


def _graph() -> dict[str, set[str]]:
    mods = {}
    for f in (SRC / "lorafair").rglob("*.py"):
        m = ".".join(f.relative_to(SRC).with_suffix("").parts)
        mods[m.removesuffix(".__init__")] = f

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = collections.defaultdict(set)
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        typing_only = {id(x) for n in ast.walk(tree)
                       if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING" for x in ast.walk(n)}
        for n in ast.walk(tree):
            if id(n) in typing_only:
                continue
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("lorafair"):
                targets = [n.module] + [f"{n.module}.{a.name}" for a in n.names]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names if a.name.startswith("lorafair")]
            else:
                continue
            for t in targets:
                r = resolve(t)
                if r and r != m and not m.startswith(r + ".") and r != "lorafair":
                    edges[m].add(r)
    for m in mods:
        edges.setdefault(m, set())
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _package(m: str) -> str:
    parts = m.split(".")
    return parts[1] if len(parts) > 1 else m


def _package_edges(edges):
    pe: dict[str, set[str]] = collections.defaultdict(set)
    for a, bs in edges.items():
        for b in bs:
            if _package(a) != _package(b):
                pe[_package(a)].add(_package(b))
        pe.setdefault(_package(a), set())
    return pe


def test_no_module_cycles():
    assert _cycles(_graph()) == []


def test_no_package_cycles():
    assert _cycles(_package_edges(_graph())) == []


@pytest.mark.parametrize("src,dst", FORBIDDEN, ids=[f"{a}->{b}" for a, b in FORBIDDEN])
def test_forbidden_arrow_absent(src, dst):
    edges = _graph()
    bad = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs if _package(a) == src and _package(b) == dst)
    assert bad == []


def test_the_checker_sees_cycles_and_arrows():
    """The checker itself can fail: a hand-made graph with a cycle and a forbidden arrow is caught."""
    g = {"lorafair.data.a": {"lorafair.studies.b"}, "lorafair.studies.b": {"lorafair.data.a"}}
    assert _cycles(g) == [["lorafair.data.a", "lorafair.studies.b"]]
    assert "studies" in _package_edges(g)["data"]
    assert len(_graph()) > 50  # the real package was read
