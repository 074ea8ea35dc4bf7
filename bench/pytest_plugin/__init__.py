"""pytest plugin: `pytest --bench-suite SUITE [--benchmark-json out.json]` turns every variant of a
suite into a pytest-benchmark test, so teams already gating on `--benchmark-compare-fail` get bench's
variants in the same place. The benchmarks run in the pytest process (pytest-benchmark's model),
not in bench's isolated children; `bench run` + `bench compare` remain the isolated gate."""

from __future__ import annotations

from pathlib import Path


def pytest_addoption(parser):
    group = parser.getgroup("bench", "bench suite benchmarks")
    group.addoption("--bench-suite", metavar="SUITE", help="benchmark every variant of this bench suite file")
    group.addoption("--bench-results-dir", default="results", metavar="DIR",
                    help="results root holding the artifact cache (default: results)")


def pytest_configure(config):
    if config.getoption("--bench-suite", default=None):
        # Collect only the generated benchmarks, not the project's own tests.
        config.args[:] = [str(Path(__file__).with_name("benchmarks.py"))]
