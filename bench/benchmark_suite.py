"""The benchmark tests that `pytest --bench-suite SUITE` collects (see bench.pytest_plugin)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.plan import make_plan
from bench.suite import load_suite


def _suite(config):
    path = Path(config.getoption("--bench-suite"))
    suite = load_suite(path)
    return path, suite, make_plan(suite, str(path))


def pytest_generate_tests(metafunc):
    if "bench_variant" in metafunc.fixturenames:
        _, _, plan = _suite(metafunc.config)
        metafunc.parametrize("bench_variant", plan.variants, ids=[v.id for v in plan.variants])


@pytest.fixture(scope="session")
def bench_built(pytestconfig):
    """Build (or reuse from the cache) every artifact the suite needs, once per session."""
    from bench.artifacts import ArtifactStore
    from bench.build import build_all
    from bench.data import load_task_data

    _, suite, plan = _suite(pytestconfig)
    data = load_task_data(suite.data, suite.task, suite.seed)
    store = ArtifactStore(Path(pytestconfig.getoption("--bench-results-dir")) / "artifacts")
    return suite, data, build_all(suite, plan, data, store)


def test_variant(bench_variant, bench_built, benchmark):
    from bench.measure.accuracy import evaluate
    from bench.runtimes import load_runtime
    from bench.runtimes.tokenizer import FastTokenizer

    suite, data, built = bench_built
    v = bench_variant
    artifact = built.artifacts[v.artifact_key]
    path = artifact.weights_dir
    runtime = load_runtime(v.format, path, v.device, v.threads, v.precision, suite.measure.ort_gpu_provider)
    tokenizer = FastTokenizer(path)
    sentences = data.sentences("validation")
    quality = evaluate(runtime, tokenizer, sentences, data.labels("validation"), suite.data.max_length,
                       suite.measure.eval_batch_size)
    # Batch 1 over the real dev sentences, tokenised and converted before timing (as in `bench run`).
    stream = itertools.cycle([runtime.prepare(tokenizer([s], truncation=True, max_length=suite.data.max_length))
                              for s in sentences])
    benchmark.group = suite.name
    benchmark.extra_info.update(variant_id=v.id, **v.as_dict(), accuracy=quality["accuracy"], f1=quality["f1"],
                                latency_input="dev-stream-bs1", tokenization_timed=False, artifact=artifact.path.name)
    benchmark.pedantic(lambda: runtime.run(next(stream)), rounds=suite.measure.min_iterations,
                       warmup_rounds=suite.measure.warmup, iterations=1)
    assert 0.0 <= quality["accuracy"] <= 1.0
