"""Every compression path on a tiny trained model: fusion, INT8 dynamic/static, PyTorch INT8,
parity recorded against the FP32 PyTorch source, calibration never touching dev."""

import importlib.util

import numpy as np
import onnx
import pytest

from bench.backends.runtime import load_runtime
from bench.build.compress import Compressor
from bench.build.pipeline import build_teacher
from bench.data.load import load_task_data
from bench.plan import make_plan
from bench.spec.suite import load_suite
from bench.store.artifacts import ArtifactStore


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import FIXTURE_DATA, TINY_SUITE

    tmp = tmp_path_factory.mktemp("compress")
    path = tmp / "suite.yaml"
    path.write_text(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64)
                    + "quantize: {calibrators: [minmax, entropy, percentile], calibration_samples: 40}\n")
    suite = load_suite(path)
    data = load_task_data(suite.data, suite.task, suite.seed)
    store = ArtifactStore(tmp / "artifacts")
    teacher = build_teacher(suite, data, store, suite.seed)
    return suite, data, store, teacher, Compressor(suite, data, store)


def _ops(artifact):
    return [n.op_type for n in onnx.load(str(artifact.path / "model.onnx")).graph.node]


def test_optimized_graph_is_fused_and_exact(setup):
    *_, teacher, comp = setup
    opt = comp.onnx_optimized(teacher)
    assert opt.info["fully_fused"] is True
    assert opt.info["fused_ops"]["Attention"] == 2 and opt.info["fused_ops"]["SkipLayerNormalization"] == 4
    assert "Attention" in _ops(opt) and opt.info["parity_max_abs_diff"] < 1e-4
    assert opt.manifest["parents"] == {"onnx-teacher": comp.onnx_export(teacher).key}


@pytest.mark.parametrize("graph", ["plain", "optimized"])
def test_int8_dynamic(setup, graph):
    *_, teacher, comp = setup
    q = comp.onnx_int8_dynamic(teacher, graph)
    info = q.info
    assert info["reduce_range_reason"].startswith("auto: CPU")
    assert info["int8_matmul_ops"] > 0 and info["parity_label_agreement"] >= 0.9
    assert 0 < info["parity_max_abs_diff"] < 0.5  # quantization moves logits, but not far
    if graph == "optimized":
        assert "QAttention" in _ops(q) and info["int8_matmul_coverage_pct"] == 100.0
    else:
        # Only the two activation x activation matmuls per layer (QK^T, attention x V) stay float.
        assert info["fp_matmul_ops"] == 2 * 2 and "MatMulInteger" in _ops(q)
    fp32 = comp.base_graph(teacher, graph)
    assert (q.path / "model.onnx").stat().st_size < (fp32.path / "model.onnx").stat().st_size


@pytest.mark.parametrize("calibrator", ["minmax", "entropy", "percentile"])
def test_int8_static_qdq(setup, calibrator):
    *_, teacher, comp = setup
    q = comp.onnx_int8_static(teacher, "plain", calibrator)
    assert q.info["calibrator"] == calibrator and q.info["calibration_samples"] == 40
    # Every MatMul (activation x activation included) is QDQ; the pooler and classifier Gemms stay float.
    assert q.info["fp_matmul_ops"] == 2 and q.info["int8_matmul_ops"] == 2 * 8 and "DequantizeLinear" in _ops(q)
    assert q.info["parity_label_agreement"] >= 0.85
    logits = load_runtime("onnx", q.path, "cpu", 1)
    assert logits.params > 0


def _activation_scales(artifact) -> dict[str, float]:
    from onnx import numpy_helper

    graph = onnx.load(str(artifact.path / "model.onnx")).graph
    inits = {t.name: t for t in graph.initializer}
    return {n.input[0]: float(numpy_helper.to_array(inits[n.input[1]]))
            for n in graph.node if n.op_type == "QuantizeLinear" and n.input[1] in inits}


def test_entropy_calibration_is_its_own_not_minmax(setup):
    # Through quantize_static ORT's entropy calibrator has 128 bins and 128 quantized bins: one threshold
    # to choose, the full range, so it wrote minmax's graph. bench runs it with suite.quantize.entropy_bins.
    *_, teacher, comp = setup
    minmax = comp.onnx_int8_static(teacher, "plain", "minmax")
    entropy = comp.onnx_int8_static(teacher, "plain", "entropy")
    assert entropy.info["entropy_bins"] == 512 and entropy.manifest["spec"]["entropy_bins"] == 512
    assert "entropy_bins" not in minmax.info
    mm, en = _activation_scales(minmax), _activation_scales(entropy)
    assert mm.keys() == en.keys() and len(mm) > 0
    # KL thresholds clip: no activation range wider than minmax's, and some narrower (3 of 32 on this tiny
    # model and 40 examples; with ORT's 128 bins, none: the same graph).
    assert all(en[k] <= mm[k] * 1.0001 for k in mm)
    assert sum(en[k] < 0.99 * mm[k] for k in mm) >= 1, (mm, en)


def test_tensorrt_int8_graph_is_symmetric(setup):
    # TensorRT's explicit quantization refuses non-zero zero points; ORT's default QDQ activations have them.
    from bench.backends.onnx.quantize import nonzero_zero_points

    *_, teacher, comp = setup
    default = comp.onnx_int8_static(teacher, "plain", "minmax")
    assert nonzero_zero_points(default.path / "model.onnx"), "expected asymmetric activations by default"
    sym = comp.onnx_int8_static(teacher, "plain", "minmax", symmetric=True)
    assert sym.key != default.key and sym.info["symmetric"] is True and sym.info["reduce_range"] is False
    assert nonzero_zero_points(sym.path / "model.onnx") == []
    assert sym.info["int8_matmul_ops"] == default.info["int8_matmul_ops"]
    assert sym.info["parity_label_agreement"] >= 0.85  # runs on ORT's CPU provider too


@pytest.mark.parametrize("graph", ["plain", "optimized"])
def test_fp16_conversion_is_a_valid_graph_on_cpu(setup, tmp_path, graph):
    from bench.backends.onnx.quantize import convert_fp16

    *_, teacher, comp = setup
    fp32 = comp.base_graph(teacher, graph)  # the optimized one holds ORT's fused ops (Attention, ...)
    convert_fp16(fp32.path / "model.onnx", tmp_path / "model.onnx")
    model = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    weights = [t for t in model.graph.initializer if len(t.dims) == 2]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    # keep_io_types: the graph takes the same int64 inputs and returns float32 logits.
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.INT64] * len(model.graph.input)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    ref = ort.InferenceSession(str(fp32.path / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {i.name: np.ones((2, 8), dtype=np.int64) for i in ref.get_inputs()}
    assert np.abs(sess.run(None, feed)[0] - ref.run(None, feed)[0]).max() < 0.05  # ORT's CPU provider runs it
    if graph == "optimized":
        assert {"Attention", "SkipLayerNormalization"} <= {n.op_type for n in model.graph.node}
        fp16_attention = [n for n in model.graph.node if n.op_type == "Attention"]
        inits = {t.name: t.data_type for t in model.graph.initializer}
        assert all(inits[n.input[1]] == onnx.TensorProto.FLOAT16 for n in fp16_attention)  # fused weights converted


def test_tensorrt_profile_covers_every_shape_the_suite_runs(setup):
    from bench.backends.tensorrt.engine import profile_for

    suite, *_, comp = setup
    assert profile_for(32, 128) == {"min": [1, 1], "opt": [1, 64], "max": [32, 128]}
    assert profile_for(0, 16) == {"min": [1, 1], "opt": [1, 16], "max": [1, 16]}
    profile = comp.tensorrt_profile()
    assert profile["max"] == [256, suite.data.max_length]  # bench serve's largest request is the largest batch
    measure = type(suite.measure).model_validate(suite.measure.model_dump() | {"grid": {
        "batch_sizes": [512], "seq_lens": [256], "min_iterations": 1, "min_seconds": 0}})
    comp.suite = suite.model_copy(update={"measure": measure})
    try:
        assert comp.tensorrt_profile()["max"] == [512, 256]
    finally:
        comp.suite = suite


def test_calibration_set_is_train_only_and_recorded(setup):
    suite, data, *_ , comp = setup
    picked = comp.calibration_sentences()
    assert len(picked) == 40 and not set(picked) & set(data.sentences("validation"))
    assert set(picked) <= set(data.sentences("train"))
    assert picked == comp.calibration_sentences()  # deterministic: same hash, same artifact key
    # A dev sentence that also appears in train is never used for calibration.
    dev0 = data.sentences("validation")[0]
    comp.data.splits["train"] = comp.data.splits["train"].add_item({"text": dev0, "label": 1})
    try:
        assert dev0 not in comp.calibration_sentences()
    finally:
        comp.data.splits["train"] = comp.data.splits["train"].select(range(160))


def test_pytorch_int8_dynamic(setup):
    *_, teacher, comp = setup
    art = comp.pytorch_converted(teacher, "int8-dynamic", "cpu")
    assert art.info["weights_dir"] == str(teacher.path) and art.info["parity_label_agreement"] >= 0.9
    q = load_runtime("pytorch", teacher.path, "cpu", 1, "int8-dynamic")
    fp = load_runtime("pytorch", teacher.path, "cpu", 1)
    assert q.params == fp.params  # same parameters, packed as int8
    assert 0 < q.size_bytes
    import torch

    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.model.modules())


def test_plan_skips_with_reasons(setup, monkeypatch, tmp_path):
    import bench.backends.probes as plan_mod

    suite = setup[0]
    variants = [{"model": ["teacher"], "format": ["onnx"], "precision": ["int8-static", "fp16", "int8-dynamic"],
                 "device": ["cuda"]},
                {"model": ["teacher"], "format": ["tensorrt"], "precision": ["int8"], "device": ["cuda"]},
                {"model": ["teacher"], "format": ["onnx"], "precision": ["int8-static"], "graph": ["optimized"]}]
    suite = suite.model_validate(suite.model_dump() | {"variants": variants})
    monkeypatch.setattr(plan_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(plan_mod, "ort_providers", lambda: ("CUDAExecutionProvider", "CPUExecutionProvider"))
    monkeypatch.setattr(plan_mod, "tensorrt_importable", lambda: False)
    reasons = {s.variant.id: s.reason for s in make_plan(suite).skipped}
    assert "no CUDA kernels" in reasons["teacher-onnx-int8-dynamic-cuda-t1"]
    assert "no CUDA kernels" in reasons["teacher-onnx-int8-static-minmax-cuda-t1"]
    assert reasons["teacher-tensorrt-int8-minmax-cuda-t1"].startswith("tensorrt: the Python package is not importable")
    assert "static QDQ uses the plain graph" in reasons["teacher-onnx-int8-static-minmax-opt-cpu-t1"]
    assert "teacher-onnx-fp16-cuda-t1" not in reasons  # runnable on such a machine


needs_gpu = pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine")
needs_trt = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None, reason="tensorrt not importable (pip install 'bench-bert[gpu]')")
# A GPU with the CPU onnxruntime build (or both builds installed, the CPU one last) cannot run ONNX on CUDA.
needs_ort_cuda = pytest.mark.skipif(
    "CUDAExecutionProvider" not in __import__("bench.backends.probes").backends.probes.ort_providers(),
    reason="onnxruntime has no CUDAExecutionProvider (CPU build; docs/gpu.md installs onnxruntime-gpu)")


@pytest.mark.gpu
@needs_gpu
@needs_ort_cuda
@pytest.mark.parametrize("graph", ["plain", "optimized"])
def test_onnx_fp16_on_cuda(setup, graph):
    *_, teacher, comp = setup
    art = comp.onnx_fp16(teacher, graph)
    assert art.info["parity_label_agreement"] >= 0.95 and art.info["parity_max_abs_diff"] < 0.05


@pytest.mark.tensorrt
@needs_gpu
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engines(setup, precision):
    *_, teacher, comp = setup
    engine = comp.tensorrt_engine(teacher, precision)
    assert (engine.path / "model.engine").stat().st_size > 0
    assert engine.info["parity_label_agreement"] >= 0.9
    assert comp.tensorrt_engine(teacher, precision).reused  # engine cache hit


@pytest.mark.parametrize("vnni, weight_type, reduce_range, expect", [
    (True, "auto", "auto", ("s8", False, "auto: CPU has VNNI: S8 weights, full range")),
    (False, "auto", "auto", ("u8", False, "auto: CPU lacks VNNI: U8 weights (u8u8 kernels do not saturate), full range")),
    (False, "s8", "auto", ("s8", True, "weight_type s8, reduce_range auto in the suite (CPU lacks VNNI)")),
    (True, "u8", True, ("u8", True, "weight_type u8, reduce_range True in the suite (CPU has VNNI)")),
])
def test_dynamic_int8_scheme_follows_the_cpu(monkeypatch, vnni, weight_type, reduce_range, expect):
    from bench.backends.onnx import quantize

    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: vnni)
    assert quantize.resolve_dynamic_scheme(weight_type, reduce_range) == expect


def test_without_vnni_dynamic_int8_has_u8_weights_at_full_range(setup, monkeypatch):
    from onnx import TensorProto

    from bench.backends.onnx import quantize

    *_, teacher, comp = setup
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: True)
    with_vnni = comp.onnx_int8_dynamic(teacher, "plain")
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: False)
    q = comp.onnx_int8_dynamic(teacher, "plain")
    assert q.key != with_vnni.key  # a different graph, cached apart
    assert (q.info["weight_type"], q.info["reduce_range"]) == ("u8", False)
    assert with_vnni.info["weight_type"] == "s8" and q.info["reduce_range_reason"].startswith("auto: CPU lacks VNNI")
    graph = onnx.load(str(q.path / "model.onnx")).graph
    inits = {t.name: t.data_type for t in graph.initializer}
    weights = [inits[n.input[1]] for n in graph.node if n.op_type == "MatMulInteger" and n.input[1] in inits]
    assert weights and set(weights) == {TensorProto.UINT8}
    assert q.info["parity_label_agreement"] >= 0.9


def _ops_as_ort_runs(artifact, tmp_path) -> list[str]:
    """Op types of the graph after ONNX Runtime's load-time optimisations (what the CPU provider runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / f"{artifact.key}.onnx")
    ort.InferenceSession(str(artifact.path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def test_static_int8_with_u8_activations_runs_every_quantized_matmul_as_an_integer_kernel(setup, tmp_path):
    suite, data, store, teacher, comp = setup
    u8 = comp.onnx_int8_static(teacher, "plain", "minmax")  # the default activation_type
    s8 = Compressor(suite.model_copy(update={"quantize": suite.quantize.model_copy(
        update={"activation_type": "s8"})}), data, store).onnx_int8_static(teacher, "plain", "minmax")
    assert (u8.info["activation_type"], s8.info["activation_type"]) == ("u8", "s8") and u8.key != s8.key
    ran_u8, ran_s8 = _ops_as_ort_runs(u8, tmp_path), _ops_as_ort_runs(s8, tmp_path)
    # Every quantized MatMul (2 layers x (6 weight + 2 activation x activation)) becomes QLinearMatMul with
    # U8 activations; with S8 ones ORT leaves some as DequantizeLinear -> float MatMul.
    assert ran_u8.count("QLinearMatMul") == u8.info["int8_matmul_ops"] == 16 and "MatMul" not in ran_u8
    assert ran_s8.count("QLinearMatMul") < 16 and "MatMul" in ran_s8
    assert u8.info["parity_label_agreement"] >= 0.85
