"""The layout's numbers that issue 32 tracks (docs/architecture.md quotes them):

    python scripts/architecture_stats.py

modules at bench/ top level, import cycles between modules (strongly connected groups of the module
import graph, lazy imports included), functions with >= 8 parameters, and the places a variant's
fields (model, format, precision, device, threads, graph, calibration, quant) are declared.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
VARIANT_FIELDS = {"model", "format", "precision", "device", "threads", "graph", "calibration", "quant"}


def cycles(graph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        group.add(m)
                        if m == node:
                            break
                    if len(group) > 1:
                        out.append(group)
    return out


def wide_functions(limit: int = 8) -> list[str]:
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) >= limit:
                    found.append(f"{path.relative_to(REPO)}:{node.name} ({len(names)})")
    return found


def variant_declarations() -> list[str]:
    """Classes that declare at least six of the variant's eight fields as annotated attributes (the suite's
    `variants:` line, VariantSpec, declares lists of them: it is the product a plan expands, not a variant)."""
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                # A field whose declaration is taken from elsewhere (`= field_of("model")`) is not a new one.
                fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                          and isinstance(s.target, ast.Name)
                          and not (isinstance(s.value, ast.Call) and getattr(s.value.func, "id", "") == "field_of")}
                if len(fields & VARIANT_FIELDS) >= 6:
                    found.append(f"{path.relative_to(REPO)}:{node.name}")
    return found


def main() -> None:
    top = sorted(p.name for p in (REPO / "bench").glob("*.py"))
    graph = grimp.build_graph("bench", include_external_packages=False, exclude_type_checking_imports=True)
    groups = cycles(graph)
    wide = wide_functions()
    variants = variant_declarations()
    print(f"modules at bench/ top level: {len(top)} ({', '.join(top)})")
    print(f"import cycles between modules: {len(groups)}" + "".join(
        f"\n  {len(g)} modules: {', '.join(sorted(g))}" for g in groups))
    print(f"functions with >= 8 parameters: {len(wide)}" + "".join(f"\n  {w}" for w in wide))
    print(f"classes declaring a variant's fields: {len(variants)}" + "".join(f"\n  {v}" for v in variants))


if __name__ == "__main__":
    main()
