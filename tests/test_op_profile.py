"""Where the time goes: op kinds, ONNX Runtime's profiler on hand-built float and INT8 graphs, torch.profiler
on a tiny BERT, the report's step sentences, and `bench profile`'s errors."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import write_tiny_onnx_artifact
from test_rounds import _spec

from bench.child.op_profile import profile_runtime
from bench.cli import main
from bench.measure.stream import load_stream
from bench.report.ops import step_sentences
from bench.schema.op_kinds import KINDS, by_kind, kind_of


def test_every_op_gets_the_kind_that_explains_a_compression_step():
    assert [kind_of(op) for op in ("QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "quantized::linear_dynamic",
                                   "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Attention",
                                   "SkipLayerNormalization", "FastGelu", "aten::_scaled_dot_product_flash_attention_for_cpu",
                                   "MatMul", "Gemm", "aten::addmm", "Softmax", "aten::gelu")] == [
        "int8 matmul"] * 4 + ["quantize/dequantize"] * 3 + ["fused"] * 4 + ["float matmul"] * 3 + ["other"] * 2


def _profile(artifact, calls=40):
    runtime, _, _, stream, _ = load_stream(_spec(artifact))
    return profile_runtime(runtime, stream, calls)


def test_onnx_profile_of_a_float_graph_and_of_its_int8_quantization(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = write_tiny_onnx_artifact(tmp_path / "fp32", hidden=256, layers=4)
    int8 = write_tiny_onnx_artifact(tmp_path / "int8", hidden=256, layers=4)
    quantize_dynamic(fp32 / "model.onnx", int8 / "model.onnx", weight_type=QuantType.QInt8)

    p = _profile(fp32)
    assert p["op_profile_source"].startswith("onnxruntime profiler") and p["op_profile_calls"] == 40
    ops = {o["op"]: o for o in p["op_profile"]}
    assert ops["MatMul"]["kind"] == "float matmul" and ops["MatMul"]["nodes_per_inference"] == 5  # 4 layers + head
    assert sum(o["share_pct"] for o in p["op_profile"]) == pytest.approx(100, abs=0.1)
    assert sum(o["ms_per_inference"] for o in p["op_profile"]) == pytest.approx(p["op_profile_kernel_ms"], rel=1e-3)
    assert [o["ms_per_inference"] for o in p["op_profile"]] == sorted((o["ms_per_inference"] for o in p["op_profile"]),
                                                                     reverse=True)
    q = by_kind(_profile(int8)["op_profile"])
    f = by_kind(p["op_profile"])
    assert q["int8 matmul"] > 0 and f["int8 matmul"] == 0  # the quantized MatMuls run as integer kernels
    assert q["float matmul"] < f["float matmul"]
    assert set(q) == set(KINDS)


def test_pytorch_profile_of_a_tiny_bert(tmp_path):
    from conftest import FIXTURE_DATA

    from bench.data.load import load_task_data
    from bench.spec.suite import DataConfig
    from bench.tasks.sources import load_for_classification, parse_source

    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2"), "sst2", seed=0)
    model, tok = load_for_classification(parse_source("tiny:layers=2,hidden=64,heads=2,intermediate=128,vocab=300"),
                                         2, corpus=data.sentences("train"))
    model.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    spec = _spec(tmp_path / "bert").model_dump()
    spec["variant"]["format"] = "pytorch"
    runtime, _, _, stream, _ = load_stream(type(_spec(tmp_path)).model_validate(spec))
    p = profile_runtime(runtime, stream, 20)
    assert p["op_profile_source"] == "torch.profiler (CPU self time)" and p["op_profile_calls"] == 20
    ops = {o["op"]: o for o in p["op_profile"]}
    # 2 layers x (q, k, v, attention output, intermediate, output) + pooler + classifier = 14 Linear calls
    assert ops["aten::addmm"]["kind"] == "float matmul" and ops["aten::addmm"]["nodes_per_inference"] == 14
    assert by_kind(p["op_profile"])["int8 matmul"] == 0


def test_step_sentences_compare_each_variant_with_what_it_was_made_from():
    base = {"model": "student", "device": "cpu", "threads": 1, "calibration": "", "top_op": ""}
    rows = [dict(base, label="student pytorch fp32", format="pytorch", precision="fp32", graph="plain", p50_ms=2.0,
                 op_ms=1.6, **dict.fromkeys(KINDS, 0.0) | {"float matmul": 1.0, "other": 0.6}),
            dict(base, label="student onnx fp32", format="onnx", precision="fp32", graph="plain", p50_ms=1.0,
                 op_ms=0.9, **dict.fromkeys(KINDS, 0.0) | {"float matmul": 0.6, "other": 0.3}),
            dict(base, label="student onnx int8-static", format="onnx", precision="int8-static", graph="plain",
                 p50_ms=1.3, op_ms=1.2, **dict.fromkeys(KINDS, 0.0) | {"int8 matmul": 0.2, "float matmul": 0.3,
                                                                       "quantize/dequantize": 0.4, "other": 0.3})]
    sentences = step_sentences(pd.DataFrame(rows))
    assert sentences == [
        "student onnx fp32 vs student pytorch fp32: op time 1.6 → 0.9 ms (-44%), p50 2 → 1 ms; "
        "float matmul -400 µs, other -300 µs.",
        "student onnx int8-static vs student onnx fp32: op time 0.9 → 1.2 ms (+33%), p50 1 → 1.3 ms; "
        "quantize/dequantize +400 µs, float matmul -300 µs, int8 matmul +200 µs."]


def test_bench_profile_names_the_suites_variants_for_an_unknown_one(tiny_suite, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["profile", str(tiny_suite()), "student-onnx-int8-cpu-t9", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: variant 'student-onnx-int8-cpu-t9' is not measured by suite tiny (its "
                          "variants: ") and "student-onnx-fp32-cpu-t1" in err and "\n" not in err
    assert not results.exists()  # nothing built or written


@pytest.mark.parametrize("flag, value, message", [("--batch", "0", "--batch: Input should be greater than 0"),
                                                  ("--seq-len", "4", "--seq-len: Input should be greater than or "
                                                                     "equal to 8")])
def test_bench_profile_refuses_a_bad_shape_before_building(tiny_suite, tmp_path, capsys, flag, value, message):
    results = tmp_path / "results"
    assert main(["profile", str(tiny_suite()), "student-onnx-fp32-cpu-t1", flag, value,
                 "--results-dir", str(results)]) == 2
    assert capsys.readouterr().err.strip() == f"bench: error: {message}"
    assert not results.exists()
