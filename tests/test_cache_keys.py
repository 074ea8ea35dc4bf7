"""The artifact cache keys survive refactors: a cached main job stays cached after code moves.

The keys below are what `bench plan` computed for suites/smoke.yaml (fixture data, the converter library
versions pinned) before the packages were laid out by stage (commit 50421ef); the same computation
must give them now. A change here means every user's cache is rebuilt: do it on purpose or not at all.
"""

from __future__ import annotations

from pathlib import Path

import bench.backends.onnx.quantize as quantize
import bench.build.compress as compress
from bench.build.pipeline import build_all
from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.spec.suite import load_suite
from bench.store.artifacts import DryRunStore

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"
PINNED = {
    "teacher": "4659941ac3a599b5",
    "teacher-logits": "70d9b12c6afccb18",
    "student": "7cd77c78d7820c32",
    "onnx-teacher": "194b06fb23b5d53d",
    "onnx-student": "4b12214447da8c05",
    "pytorch-int8-dynamic-student": "a702a3705c6a0dfe",
    "onnx-int8-static-minmax-student": "709f5891d6cd7342",
    "onnx-opt-student": "6e90a26a9f848f6a",
}
# Dynamic INT8 of the student: on the plain graph, then on the optimized one.
PINNED_INT8_DYNAMIC = ["997b666ea63a6265", "fe6c0a144b7744cd"]


def test_smoke_suite_artifact_keys_are_unchanged(monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)  # the fixture data, whatever the machine has
    monkeypatch.setattr(compress, "library_versions", lambda names: {n: "pinned" for n in names})
    # Pinned on a VNNI machine: static INT8's `reduce_range: auto` resolves by the CPU (and is keyed).
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: True)
    suite = load_suite(SMOKE)
    plan = make_plan(suite, str(SMOKE))
    store = DryRunStore(Path("/nonexistent-bench-cache"))
    build_all(suite, plan, load_task_data(suite.data, suite.task_def, suite.seed), store, suite.training_seeds[0])
    keys: dict[str, list[str]] = {}
    for p in store.planned:
        keys.setdefault(p.kind, [])
        if p.key not in keys[p.kind]:
            keys[p.kind].append(p.key)
    assert {kind: keys[kind] for kind in PINNED} == {kind: [key] for kind, key in PINNED.items()}
    assert keys["onnx-int8-dynamic-student"] == PINNED_INT8_DYNAMIC


def test_measurement_hashes_are_unchanged():
    """A resumed run skips variants whose rows carry the same measure_key; bench plan's cost model prefers
    histories with the same config_hash. Both as computed at 50421ef, before cold_start and end_to_end."""
    from bench.run.measure_key import measure_config_hash, measure_key

    measure = load_suite(SMOKE).measure
    assert measure_key(measure, "FP") == "f3493057ee6b9b66"
    assert measure_config_hash(measure) == "0cac5b5f9f87"
