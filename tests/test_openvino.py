"""The openvino backend (issue 26, groundwork): FP32 IR from the parity-checked ONNX export and NNCF INT8,
each a cached artifact with parity; the runtime pins and records its inference precision; a tiny teacher
through the real measuring child. Skipped with the reason where openvino (or nncf) is not installed; the
plan's skip is tested everywhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.backends.openvino.format import cpu_capabilities, ir
from bench.plan import make_plan
from bench.spec.suite import load_suite

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_NNCF = importlib.util.find_spec("nncf") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install '.[openvino]')")
needs_nncf = pytest.mark.skipif(not (HAS_OPENVINO and HAS_NNCF),
                                reason="openvino and nncf are not installed (pip install '.[openvino]')")

OV_SUITE = TINY_SUITE.replace(
    # Trained until it fits its train rows: the held-out train examples accuracy control validates on are
    # then ones it gets right, and quantization can cost some (an untrained model predicts one class).
    "finetune: {{epochs: 1, lr: 1.0e-3,", "finetune: {{epochs: 12, lr: 3.0e-3,").replace(
    "  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}",
    "  - {{model: teacher, format: openvino, precision: [fp32, bf16, int8-static], quant: [default, accuracy-control], "
    "device: cpu}}",
) + "quantize: {{calibration_samples: 40, accuracy_control: {{validation_samples: 60}}}}\n"


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


def test_accuracy_control_is_an_openvino_recipe_each_format_ignoring_the_others_names(tmp_path):
    from bench.common.errors import BenchError

    onnx_only = OV_SUITE.replace("format: openvino,", "format: onnx,")
    (tmp_path / "a.yaml").write_text(onnx_only.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    with pytest.raises(BenchError, match=r"variants\[0\]\.quant: 'accuracy-control' is an OpenVINO recipe"):
        load_suite(tmp_path / "a.yaml")
    both = OV_SUITE.replace("format: openvino, precision: [fp32, bf16, int8-static], quant: [default, accuracy-control]",
                            "format: [onnx, openvino], precision: int8-static, quant: [default, per-channel, "
                            "accuracy-control]")
    (tmp_path / "b.yaml").write_text(both.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48))
    ids = {v.id for v in make_plan(load_suite(tmp_path / "b.yaml")).variants}
    assert ids == {"teacher-onnx-int8-static-minmax-cpu-t1", "teacher-onnx-int8-static-minmax+per-channel-cpu-t1",
                   "teacher-openvino-int8-static-cpu-t1", "teacher-openvino-int8-static+accuracy-control-cpu-t1"}


def test_half_precision_is_skipped_with_the_reason_where_the_cpu_lacks_it(tmp_path, monkeypatch):
    from bench.backends.openvino import format as ov_format

    if not HAS_OPENVINO:
        pytest.skip("openvino is not installed (pip install '.[openvino]')")
    monkeypatch.setattr(ov_format, "cpu_capabilities", lambda: frozenset({"FP32", "INT8"}))
    plan = make_plan(load_suite(_suite_file(tmp_path)))
    [skipped] = plan.skipped
    assert skipped.variant.precision == "bf16" and "lists no BF16 in OPTIMIZATION_CAPABILITIES (FP32, INT8)" in \
        skipped.reason
    assert "teacher-openvino-fp32-cpu-t1" in {v.id for v in plan.variants}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny trained teacher and its two OpenVINO artifacts, in a cache the end-to-end run reuses."""
    if not (HAS_OPENVINO and HAS_NNCF):
        pytest.skip("openvino and nncf are not installed (pip install '.[openvino]')")
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
            "fp32": ir(c, teacher, "fp32"), "int8": ir(c, teacher, "int8-static"),
            "ac": ir(c, teacher, "int8-static", "accuracy-control")}


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
    from bench.backends.onnx.quantize import calibration_hash, cpu_has_vnni

    art, c = built["int8"], built["compressor"]
    assert art.kind == "openvino-int8-static-teacher"
    info = art.info
    # The same train examples static ONNX INT8 calibrates on.
    assert info["calibration_samples"] == 40 and info["calibration_hash"] == calibration_hash(c.calibration_texts())
    assert info["int8_matmul_ops"] > 0 and info["nncf_version"]
    # INT8 is not bit-exact; on this tiny model it stays close to the source and agrees on most labels. Without
    # VNNI the INT8 kernels' 16-bit sums saturate (VPMADDUBSW): 0.68 was seen on an AVX2-only EPYC, 0.1 with VNNI.
    bound = 0.25 if cpu_has_vnni() else 1.0
    assert info["parity_max_abs_diff"] < bound, info["parity_max_abs_diff"]
    assert info["parity_label_agreement"] >= 0.85, info["parity_label_agreement"]


@needs_nncf
def test_a_second_build_reuses_the_artifacts_under_the_same_keys(built):
    from bench.build.compress import Compressor
    from bench.store.artifacts import ArtifactStore

    # A fresh store object on the same folder: what a second `bench run` sees.
    store = ArtifactStore(built["root"] / "cache")
    c = Compressor(built["suite"], built["data"], store)
    for precision, quant, first in (("fp32", "", built["fp32"]), ("int8-static", "", built["int8"]),
                                    ("int8-static", "accuracy-control", built["ac"])):
        again = ir(c, built["teacher"], precision, quant)
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
    rows = {r["variant_id"].split("-", 2)[2].rsplit("-cpu", 1)[0]: r for r in read_rows(run)
            if r["format"] == "openvino"}
    has_bf16 = "BF16" in cpu_capabilities()
    assert set(rows) == {"fp32", "int8-static", "int8-static+accuracy-control"} | ({"bf16"} if has_bf16 else set())
    for name, row in rows.items():
        assert row["status"] == "ok", row.get("error")
        # the compiled model's own value, read back in the child: a row that ran bf16 says bf16
        assert row["inference_precision"] == ("bf16" if name == "bf16" else "f32")
        assert row["openvino_config"]["inference_precision"] == row["inference_precision"]
        assert row["openvino_config"]["performance_hint"] == "LATENCY"
        assert row["openvino_config"]["inference_num_threads"] == 1 and row["openvino_config"]["openvino"]
        assert row["openvino_config"]["shapes"] == "dynamic"
        assert row["latency_p50_ms"] > 0 and row["size_mb"] > 0 and row["params"] > 0
        assert row["parity_max_abs_diff"] is not None and 0 <= row["score"] <= 1
    assert rows["int8-static"]["calibration_samples"] == 40
    assert rows["fp32"]["artifact"] == built["fp32"].path.name  # the cached IR, not a rebuild
    ac = rows["int8-static+accuracy-control"]
    assert ac["accuracy_control"] == built["ac"].info["accuracy_control"]
    assert ac["quant_nodes_excluded"] == built["ac"].info["nodes_excluded"]


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

    from bench.backends.openvino.recipes import nncf_without_telemetry

    nncf_without_telemetry()
    assert wrapper.telemetry._impl.consent is False


@needs_nncf
def test_accuracy_control_validates_on_held_out_train_examples_and_records_what_it_saw(built):
    from bench.backends.openvino import recipes
    from bench.backends.openvino.accuracy_control import Validator

    art, c = built["ac"], built["compressor"]
    assert art.kind == "openvino-int8-accuracy-control-teacher"
    facts = art.info["accuracy_control"]
    assert (facts["max_drop_pts"], facts["validation_samples"], facts["metric"]) == (1.0, 60, "accuracy")
    # The validation examples: train examples after the calibration ones, none of them a calibration or
    # eval example.
    held, calibration = c.held_out_texts(60), c.calibration_texts()
    dev = set(built["data"].texts("validation").first)
    assert not (set(held.first) & set(calibration.first)) and not (set(held.first) & dev)
    # The recorded scores are the metric of each IR on those examples at f32, recomputed here.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built["fp32"].path)
    items = list(zip(recipes.encode_each(c, held, tok, ["input_ids", "attention_mask", "token_type_ids"]),
                     c.held_out_labels(60), strict=True))
    v = Validator(built["data"].task)
    xml = recipes.MODEL_XML
    assert facts["fp32_score"] == v.score(built["fp32"].path / xml, items)
    assert facts["int8_score_before"] == v.score(built["int8"].path / xml, items)  # NNCF's PTQ = the plain recipe
    assert facts["int8_score"] == v.score(art.path / xml, items)
    assert facts["drop_pts"] == round(100 * (facts["fp32_score"] - facts["int8_score"]), 3)
    _check_reverted(art, built["int8"])


def _check_reverted(art, plain):
    """NNCF returns ops to float exactly when the plain quantization missed the bar, and then until it fits
    (or none is left); the ops recorded are the plain recipe's quantized ops the result no longer quantizes."""
    from bench.backends.openvino import recipes

    facts = art.info["accuracy_control"]
    plain_ops = recipes.quantized_ops(plain.path / recipes.MODEL_XML)
    now = recipes.quantized_ops(art.path / recipes.MODEL_XML)
    assert art.info["nodes_excluded"] == sorted(plain_ops - now) and now <= plain_ops
    missed = 100 * (facts["fp32_score"] - facts["int8_score_before"]) > facts["max_drop_pts"]
    assert (facts["reverted_ops"] > 0) == missed, facts
    assert facts["drop_pts"] <= facts["max_drop_pts"] or not now, facts


@pytest.mark.slow
@needs_nncf
def test_accuracy_control_returns_ops_to_float_when_int8_misses_the_bar(tmp_path):
    """STS-B (Pearson, continuous: any INT8 noise moves it) with a bar of zero: the plain INT8 misses it, and
    NNCF returns ops to float until the metric is back (or every op is)."""
    from glue_fixtures import write_glue_fixture

    from bench.build.compress import Compressor
    from bench.build.pipeline import build_teacher
    from bench.data.load import load_task_data
    from bench.store.artifacts import ArtifactStore

    write_glue_fixture("stsb", tmp_path / "stsb", n_train=160, n_dev=24)
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(f"""
name: ac-stsb
task: stsb
data: {{path: "{tmp_path / 'stsb'}", max_length: 32}}
teacher:
  source: tiny:layers=1,hidden=32,heads=2,intermediate=64,vocab=300
  finetune: {{epochs: 6, lr: 3.0e-3, batch_size: 16, logging_steps: 50}}
variants:
  - {{model: teacher, format: openvino, precision: int8-static, quant: accuracy-control}}
quantize: {{calibration_samples: 40, accuracy_control: {{max_drop_pts: 0, validation_samples: 100}}}}
measure: {{parity_samples: 8}}
""")
    suite = load_suite(suite_file)
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    store = ArtifactStore(tmp_path / "cache")
    c = Compressor(suite, data, store)
    teacher = build_teacher(suite, data, store, suite.seed)
    art = ir(c, teacher, "int8-static", "accuracy-control")
    facts = art.info["accuracy_control"]
    assert facts["metric"] == "pearson" and facts["validation_samples"] == 100
    _check_reverted(art, ir(c, teacher, "int8-static"))
    assert facts["reverted_ops"] > 0, facts  # Pearson moved under INT8 on this model: the restoring path ran


def _encodings(built, n: int = 12) -> tuple:
    from bench.backends.tokenizer import FastTokenizer  # the measuring child's tokenizer

    tok = FastTokenizer(built["fp32"].path)
    texts = built["data"].texts("validation").head(n)
    return tok, texts


@needs_openvino
def test_offline_runs_in_the_throughput_hint_with_the_latency_paths_outputs(built):
    from bench.backends.openvino.runtime import OpenVinoRuntime
    from bench.scenarios.offline import measure_offline, offline_batches

    runtime = OpenVinoRuntime(built["fp32"].path / "openvino_model.xml", threads=2, precision="fp32")
    tp = runtime.for_throughput()
    assert tp.config["performance_hint"] == "THROUGHPUT" and tp.config["inference_precision"] == "f32"
    assert tp.config["inference_num_threads"] == 2 and tp.config["num_streams"] >= 1 and tp.config["infer_requests"] >= 1
    tok, texts = _encodings(built)
    natives = [runtime.prepare(b) for b in offline_batches(tok, texts, 48, 4, sort_by_length=True)]
    outs = tp.run_all(natives, keep_outputs=True)
    for x, out in zip(natives, outs, strict=True):  # every batch, in order, through the queue
        np.testing.assert_allclose(out, runtime.logits(runtime.run(x)), atol=1e-5)
    [entry] = measure_offline(runtime, tok, texts, 48, {"batch_sizes": [4], "sort_by_length": True, "min_seconds": 0})
    assert entry["runtime_config"] == tp.config and entry["samples"] == 12 and entry["samples_per_s"] > 0


@needs_nncf
def test_the_op_profile_reads_openvinos_performance_counters_by_layer_and_kernel_precision(built):
    from bench.backends.openvino.runtime import OpenVinoRuntime
    from bench.child.op_profile import profile_runtime
    from bench.schema.op_kinds import by_kind

    tok, texts = _encodings(built, 6)
    kinds = {}
    for name, precision in (("fp32", "fp32"), ("int8", "int8-static")):
        runtime = OpenVinoRuntime(built[name].path / "openvino_model.xml", threads=1, precision=precision)
        stream = [runtime.prepare(texts.take([i]).encode(tok)) for i in range(len(texts))]
        out = profile_runtime(runtime, stream, calls=6)
        assert out["op_profile_source"] == "openvino performance counters (CPU)" and out["op_profile_calls"] == 6
        assert out["op_profile_kernel_ms"] > 0 and abs(sum(o["share_pct"] for o in out["op_profile"]) - 100) < 0.1
        kinds[name] = by_kind(out["op_profile"])
    # The FP32 IR's matmuls run float kernels; NNCF's INT8 IR runs its FullyConnected layers on i8 kernels.
    assert kinds["fp32"]["float matmul"] > 0 and kinds["fp32"]["int8 matmul"] == 0
    assert kinds["int8"]["int8 matmul"] > 0


@needs_nncf
def test_params_count_weights_not_nncfs_scales(built):
    from bench.backends.openvino.runtime import OpenVinoRuntime

    fp32 = OpenVinoRuntime(built["fp32"].path / "openvino_model.xml", 1, "fp32").params
    int8 = OpenVinoRuntime(built["int8"].path / "openvino_model.xml", 1, "int8-static").params
    # NNCF stores weights as int8 with per-channel dequantization scales, plus SmoothQuant's activation scales:
    # the scales are not counted, so the INT8 IR has the FP32 one's weights and no more than 2 % besides.
    assert fp32 <= int8 <= 1.02 * fp32, (fp32, int8)


def test_openvino_layers_get_their_kind_from_the_layer_type_and_kernel_precision():
    from bench.schema.op_kinds import kind_of

    assert kind_of("FullyConnected (i8)") == "int8 matmul" and kind_of("FullyConnected (f32)") == "float matmul"
    assert kind_of("FullyConnected (bf16)") == "float matmul" and kind_of("FakeQuantize (f32)") == "quantize/dequantize"
    assert kind_of("Subgraph (i8)") == "fused" and kind_of("MVN (f32)") == "other"
    assert kind_of("MatMul") == "float matmul" and kind_of("QLinearMatMul") == "int8 matmul"  # ORT's unchanged


@pytest.mark.slow  # a tiny-suite tune over two runtimes: ~1 min
@needs_nncf
def test_bench_tune_searches_openvino_candidates_beside_onnx_runtime(tmp_path):
    import json

    from bench.cli import main

    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=48) + """tune:
  space:
    - {model: student, format: [onnx, openvino], precision: [fp32, int8-static], quant: [default, accuracy-control]}
  max_drop_pts: 50
quantize: {calibration_samples: 40, calibrators: [minmax], accuracy_control: {validation_samples: 60}}
""")
    profile = tmp_path / "roomy.yaml"
    profile.write_text("threads: 1\nmax_size_mb: 100\n")
    assert main(["tune", str(suite), "--profile", str(profile), "--results-dir", str(tmp_path / "results"),
                 "--run-id", "t"]) == 0
    run_dir = tmp_path / "results" / "tiny" / "t"
    tune = json.loads((run_dir / "tune.json").read_text())
    ids = [c["variant"] for c in tune["candidates"]]
    assert ids == ["student-onnx-fp32-cpu-t1", "student-openvino-fp32-cpu-t1", "student-onnx-int8-static-minmax-cpu-t1",
                   "student-openvino-int8-static-cpu-t1", "student-openvino-int8-static+accuracy-control-cpu-t1"]
    assert all(c["status"] == "measured" for c in tune["candidates"]), tune["candidates"]
    plan = make_plan(load_suite(run_dir / "chosen-suite.yaml"))
    assert [v.id for v in plan.variants] == [tune["chosen"]]


@needs_nncf
def test_bench_serve_takes_an_openvino_ir_folder_and_answers_as_the_measuring_child_would(built):
    from fastapi.testclient import TestClient

    from bench.backends.runtime import batched_logits
    from bench.serve.app import create_app
    from bench.serve.model import Predictor
    from bench.serve.spec import from_artifact_dir

    spec = from_artifact_dir(built["int8"].path)  # openvino_model.xml: the format from the files
    assert spec.variant.format == "openvino"
    predictor = Predictor(spec)
    assert predictor.runtime.name == "openvino" and predictor.runtime.inference_precision == "f32"
    texts = built["data"].texts("validation").head(8).first
    expected = batched_logits(predictor.runtime, predictor.tokenizer, texts, spec.max_length, 1).argmax(-1).tolist()
    with TestClient(create_app(spec, predictor)) as client:
        answers = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert [a["label"] for a in answers] == expected


@needs_nncf
def test_accuracy_control_with_no_held_out_examples_left_is_one_line_naming_the_field(built):
    from bench.build.compress import Compressor
    from bench.common.errors import BenchError

    suite = built["suite"]
    greedy = suite.model_copy(update={"quantize": suite.quantize.model_copy(update={"calibration_samples": 1000})})
    c = Compressor(greedy, built["data"], built["compressor"].store)
    with pytest.raises(BenchError, match=r"^quantize\.accuracy_control\.validation_samples: 0 held-out train"):
        ir(c, built["teacher"], "int8-static", "accuracy-control")
