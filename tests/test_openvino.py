"""The openvino backend (issue 26, groundwork): FP32 IR from the parity-checked ONNX export and NNCF INT8,
each a cached artifact with parity; the runtime pins and records its inference precision; a tiny teacher
through the real measuring child. Skipped with the reason where openvino (or nncf) is not installed; the
plan's skip is tested everywhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.plan import make_plan
from bench.spec.suite import load_suite

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_NNCF = importlib.util.find_spec("nncf") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install '.[openvino]')")
needs_nncf = pytest.mark.skipif(not (HAS_OPENVINO and HAS_NNCF),
                                reason="openvino and nncf are not installed (pip install '.[openvino]')")

OV_SUITE = TINY_SUITE.replace(
    "  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}",
    "  - {{model: teacher, format: openvino, precision: [fp32, int8-static], device: cpu}}",
) + "quantize: {{calibration_samples: 40}}\n"


def _suite_file(root):
    path = root / "suite.yaml"
    path.write_text(OV_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    return path


def test_the_plan_skips_openvino_with_the_reason_when_it_is_not_installed(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    plan = make_plan(load_suite(_suite_file(tmp_path)))
    assert plan.variants == []
    assert {s.reason for s in plan.skipped} == {
        "openvino: the package is not installed (pip install 'bench-bert[openvino]')"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny trained teacher and its two OpenVINO artifacts, in a cache the end-to-end run reuses."""
    if not (HAS_OPENVINO and HAS_NNCF):
        pytest.skip("openvino and nncf are not installed (pip install '.[openvino]')")
    from bench.backends.openvino import recipes
    from bench.build.compress import Compressor
    from bench.build.pipeline import build_teacher
    from bench.data.load import load_task_data
    from bench.store.artifacts import ArtifactStore

    root = tmp_path_factory.mktemp("openvino")
    suite = load_suite(_suite_file(root))
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    store = ArtifactStore(root / "cache")
    teacher = build_teacher(suite, data, store, suite.seed)
    c = Compressor(suite, data, store)
    return {"root": root, "suite": suite, "data": data, "teacher": teacher, "compressor": c,
            "fp32": recipes.ir(c, teacher, "fp32"), "int8": recipes.ir(c, teacher, "int8-static")}


@needs_openvino
def test_fp32_ir_is_the_onnx_export_converted_with_fp32_weights_and_parity(built):
    import openvino as ov

    art = built["fp32"]
    assert art.kind == "openvino-fp32-teacher"
    assert {"openvino_model.xml", "openvino_model.bin", "tokenizer.json", "config.json"} <= {
        f.name for f in art.path.iterdir()}
    assert art.info["compress_to_fp16"] is False
    # No weight was stored as f16 (save_model's default would have compressed them).
    types = {op.get_output_element_type(0) for op in ov.Core().read_model(str(art.path / "openvino_model.xml"))
             .get_ordered_ops() if op.get_type_name() == "Constant"}
    assert ov.Type.f16 not in types and ov.Type.f32 in types
    # FP32 IR against the FP32 PyTorch source, within the suite's parity_atol (checked at build).
    assert art.info["parity_max_abs_diff"] < 1e-4 and art.info["parity_label_agreement"] == 1.0
    assert art.info["parity_samples"] == 16


@needs_nncf
def test_int8_is_nncf_calibrated_on_the_static_onnx_examples_with_parity(built):
    from bench.backends.onnx.quantize import calibration_hash

    art, c = built["int8"], built["compressor"]
    assert art.kind == "openvino-int8-static-teacher"
    info = art.info
    # The same train examples static ONNX INT8 calibrates on.
    assert info["calibration_samples"] == 40 and info["calibration_hash"] == calibration_hash(c.calibration_texts())
    assert info["int8_matmul_ops"] > 0 and info["nncf_version"]
    # INT8 is not bit-exact; on this tiny model it stays close to the source and agrees on most labels.
    assert info["parity_max_abs_diff"] < 0.25, info["parity_max_abs_diff"]
    assert info["parity_label_agreement"] >= 0.85


@needs_nncf
def test_a_second_build_reuses_both_artifacts_under_the_same_keys(built):
    from bench.backends.openvino import recipes
    from bench.build.compress import Compressor
    from bench.store.artifacts import ArtifactStore

    # A fresh store object on the same folder: what a second `bench run` sees.
    store = ArtifactStore(built["root"] / "cache")
    c = Compressor(built["suite"], built["data"], store)
    for precision, first in (("fp32", built["fp32"]), ("int8-static", built["int8"])):
        again = recipes.ir(c, built["teacher"], precision)
        assert again.reused and (again.kind, again.key, again.path) == (first.kind, first.key, first.path)


@needs_openvino
def test_fp32_runs_at_f32_whatever_the_cpu_would_pick(built):
    import openvino as ov

    from bench.backends.openvino.runtime import OpenVinoRuntime

    xml = built["fp32"].path / "openvino_model.xml"
    runtime = OpenVinoRuntime(xml, threads=1, precision="fp32")
    assert runtime.inference_precision == "f32" and runtime.compile_config["inference_num_threads"] == 1
    assert runtime.compile_config["performance_hint"] == "LATENCY"
    # Why the hint is set: with no hint, a CPU with bf16 compiles the "fp32" model to bf16.
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        default = ov.Core().compile_model(str(xml), "CPU")
        assert default.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
    enc = {k: np.array([[2, 5, 9, 3]], dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    enc["attention_mask"][:] = 1
    enc["token_type_ids"][:] = 0
    first = runtime.logits(runtime.run(runtime.prepare(enc)))
    second = runtime.logits(runtime.run(runtime.prepare(enc)))
    assert first.dtype == np.float32 and first.shape == (1, 2) and np.array_equal(first, second)
    assert runtime.params > 0


@needs_nncf
def test_tiny_teacher_end_to_end_through_the_measuring_child(built):
    from bench.run.suite_run import run_suite
    from bench.store.results import read_rows

    root = built["root"]
    run = run_suite(root / "suite.yaml", root / "results", run_id="r", cache_dir=root / "cache")
    rows = {r["precision"]: r for r in read_rows(run) if r["format"] == "openvino"}
    assert set(rows) == {"fp32", "int8-static"}
    for row in rows.values():
        assert row["status"] == "ok", row.get("error")
        assert row["inference_precision"] == "f32"  # the compiled model's own value, read back in the child
        assert row["latency_p50_ms"] > 0 and row["size_mb"] > 0 and row["params"] > 0
        assert row["parity_max_abs_diff"] is not None and 0 <= row["score"] <= 1
    assert rows["int8-static"]["calibration_samples"] == 40
    assert rows["fp32"]["artifact"] == built["fp32"].path.name  # the cached IR, not a rebuild


@needs_nncf
def test_bench_plan_bills_the_openvino_steps_as_cached_once_built(built):
    from bench.plan import format_plan
    from bench.run.bill import make_bill

    suite, root = built["suite"], built["root"]
    plan = make_plan(suite, str(root / "suite.yaml"))
    text = format_plan(plan, suite, make_bill(suite, plan, built["data"], root / "cache", root / "results"))
    assert "cached  convert  teacher -> openvino-fp32 " in text
    assert "cached  quantize teacher -> openvino-int8-static " in text and "to build: nothing" in text


@needs_nncf
def test_nncf_telemetry_is_off_in_bench():
    """NNCF consents to its own telemetry when no consent file exists; bench withdraws it for its process."""
    import nncf.telemetry.wrapper as wrapper

    from bench.backends.openvino.recipes import _nncf_without_telemetry

    _nncf_without_telemetry()
    assert wrapper.telemetry._impl.consent is False
