"""The package's layers: every ``sslinv`` import (at module level or inside a function)
goes to the importer's own layer or one below, and the packages import each other in no
loop. Read from the source with ``ast``: nothing is imported, torch included.

The layer map is the one in docs/architecture.md. A new module or sub-package must be
placed in it (the test says so), which is the point: where it goes is a decision.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sslinv"

#: Layers from the bottom; a unit is a top-level module or sub-package of ``sslinv``
#: ("" is ``sslinv/__init__.py``).
LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"", "runtime", "paths", "cache", "errors", "registry", "reporting", "distributed", "results",
              "numerics", "launch", "cpus"}),
    ("components", {"data", "transforms", "models", "probes", "fetch"}),
    ("evaluations", {"evaluate"}),
    ("pretraining", {"pretrain"}),
    ("studies and reports", {"report", "demo"}),
    ("command line", {"cli", "__main__"}),
]
RANK = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}

EVALUATIONS = ("sslinv.evaluate",)



def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    """Every ``sslinv`` module ``path`` imports (``from sslinv import x`` counts as ``sslinv.x``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name == "sslinv" or a.name.startswith("sslinv."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sslinv":
                out.update(f"sslinv.{a.name}" if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                           else "sslinv" for a in node.names)
            elif node.module.startswith("sslinv."):
                out.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (from sslinv... import)")
    return out


GRAPH: dict[str, set[str]] = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def edges():
    for src, targets in GRAPH.items():
        for dst in targets:
            yield src, dst


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m in GRAPH} | {unit(d) for _, d in edges()}
    missing = sorted(u for u in units if u not in RANK)
    assert not missing, f"place these in LAYERS (tests/test_layers.py and docs/architecture.md): {missing}"


def test_no_import_goes_to_a_higher_layer() -> None:
    bad = [
        f"{src} ({LAYERS[RANK[unit(src)]][0]}) imports {dst} ({LAYERS[RANK[unit(dst)]][0]})"
        for src, dst in edges()
        if RANK.get(unit(dst), 0) > RANK.get(unit(src), 0)
    ]
    assert not bad, "\n".join(bad)


def test_packages_import_each_other_in_no_loop() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges():
        if unit(src) != unit(dst):
            graph[unit(src)].add(unit(dst))

    def loop_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return path + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    loops = [loop for u in sorted(graph) if (loop := loop_from(u))]
    assert not loops, f"import loop: {' -> '.join(loops[0])}"


def test_fetch_never_imports_models() -> None:
    bad = [(s, d) for s, d in edges() if unit(s) == "fetch" and unit(d) == "models"]
    assert not bad, "models call sslinv.fetch.verified.fetch_file; fetch must not call back: " + repr(bad)


def test_report_never_imports_cli() -> None:
    bad = [(s, d) for s, d in edges() if unit(s) == "report" and unit(d) == "cli"]
    assert not bad, "report reads result files and registries, never the command line: " + repr(bad)


def test_pretrain_never_imports_an_evaluation() -> None:
    bad = [(s, d) for s, d in edges() if unit(s) == "pretrain" and d.startswith(EVALUATIONS)]
    assert not bad, "training must not depend on evaluation code: " + repr(bad)


def test_the_layer_test_sees_real_imports() -> None:
    """The walk finds imports inside functions (the loops it must catch are lazy ones)."""
    assert "sslinv.fetch.verified" in GRAPH["sslinv.models.load"]
    assert "sslinv.models.zoo" in GRAPH["sslinv.cli.fetch_data"]
    assert {unit(m) for m in GRAPH} >= {"", "fetch", "models", "data", "cli", "report", "pretrain"}
