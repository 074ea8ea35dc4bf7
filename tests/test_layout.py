"""The layout's shape (docs/architecture.md): bench/ holds only the CLI at its top level, and no module
imports itself back through others. Between packages, lint-imports' layers contract already forbids cycles;
this also catches one inside a package (a registry importing the runtime that looks it up, say)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install -e '.[lint]')")


def _stats():
    spec = importlib.util.spec_from_file_location("architecture_stats", REPO / "scripts" / "architecture_stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("bench", include_external_packages=False, exclude_type_checking_imports=True)
    assert _stats().cycles(graph) == []


def test_bench_top_level_is_the_cli_only():
    assert sorted(p.name for p in (REPO / "bench").glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]


def test_a_variant_is_declared_once():
    assert _stats().variant_declarations() == ["bench/schema/variant.py:Variant", "bench/spec/suite.py:VariantSpec"]
