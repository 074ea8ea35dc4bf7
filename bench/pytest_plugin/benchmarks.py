"""The benchmark tests that `pytest --bench-suite SUITE` collects (see bench.pytest_plugin)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from bench.plan import make_plan
from bench.spec.suite import load_suite


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
    from bench.build.pipeline import build_all
    from bench.data.load import load_task_data
    from bench.store.artifacts import ArtifactStore

    _, suite, plan = _suite(pytestconfig)
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    store = ArtifactStore(Path(pytestconfig.getoption("--bench-results-dir")) / "artifacts")
    return suite, data, build_all(suite, plan, data, store)


def test_variant(bench_variant, bench_built, benchmark):
    from bench.backends.runtime import load_runtime
    from bench.backends.tokenizer import FastTokenizer
    from bench.data.splits import eval_splits
    from bench.measure.accuracy import evaluate

    suite, data, built = bench_built
    v = bench_variant
    artifact = built.artifacts[v.artifact_key]
    path = artifact.weights_dir
    runtime = load_runtime(v.format, path, v.device, v.threads, v.precision, suite.measure.ort_gpu_provider)
    tokenizer = FastTokenizer(path)
    task = data.task
    splits = eval_splits(data)  # the primary split first
    quality = evaluate(runtime, tokenizer, task, splits, suite.data.max_length, suite.measure.eval_batch_size)
    # Batch 1 over the primary split's real examples (a pair as one sequence), tokenised and converted
    # before timing (as in `bench run`).
    texts, max_length = splits[0].texts, suite.data.max_length
    stream = itertools.cycle([runtime.prepare(texts.take([i]).encode(tokenizer, truncation=True, max_length=max_length))
                              for i in range(len(texts))])
    benchmark.group = suite.name
    benchmark.extra_info.update(variant_id=v.id, **v.as_dict(), metric=quality["metric"], score=quality["score"],
                                metrics=quality["metrics"], accuracy=quality.get("accuracy"), f1=quality.get("f1"),
                                latency_input="dev-stream-bs1", tokenization_timed=False, artifact=artifact.path.name)
    benchmark.pedantic(lambda: runtime.run(next(stream)), rounds=suite.measure.min_iterations,
                       warmup_rounds=suite.measure.warmup, iterations=1)
    assert all(math.isfinite(x) for x in quality["metrics"].values())
    if quality.get("accuracy") is not None:
        assert 0.0 <= quality["accuracy"] <= 1.0
