"""What CPU can check of the GPU paths (issue 25): the TensorRT profile covers every scenario and bench serve,
an out-of-profile batch is one line naming its shape, the INT8 engine's source graph is FP16 around its Q/DQ
nodes, the engine inspector's layer types are counted for TensorRT 10 and 11, install mismatches are named
on GPU machines and silent on CPU ones, and the CUDA libraries are preloaded only where torch is absent."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import onnx
import pytest

import bench.backends.probes as probes
from bench.backends.tensorrt.runtime import set_input_shapes


# ---------------------------------------------------------------- the profile and its check
class FakeContext:
    """TensorRT's IExecutionContext as far as set_input_shapes uses it: False outside [low, high]."""

    def __init__(self, low, high):
        self.low, self.high, self.shapes = low, high, {}

    def set_input_shape(self, name, shape):
        if not all(lo <= s <= hi for lo, s, hi in zip(self.low, shape, self.high, strict=True)):
            return False
        self.shapes[name] = shape
        return True


def test_an_out_of_profile_batch_is_one_line_naming_its_shape():
    limits = {"input_ids": ((1, 1), (256, 128)), "attention_mask": ((1, 1), (256, 128))}
    ctx = FakeContext((1, 1), (256, 128))
    set_input_shapes(ctx, {"input_ids": (256, 128), "attention_mask": (256, 128)}, limits)
    assert ctx.shapes == {"input_ids": (256, 128), "attention_mask": (256, 128)}
    with pytest.raises(ValueError) as err:
        set_input_shapes(ctx, {"input_ids": (300, 48)}, limits)
    message = str(err.value)
    assert message == ("tensorrt: input input_ids of shape 300x48 is outside the engine's optimisation profile "
                       "(1x1 .. 256x128)")
    assert "\n" not in message


def test_serve_limit_is_bench_serves():
    from bench.serve.spec import Limits
    from bench.spec.measure import SERVE_MAX_TEXTS

    assert SERVE_MAX_TEXTS == Limits().max_texts


def _compressor(measure: dict, max_length: int = 48):
    """engine_profile reads only the suite's measure section and max_length."""
    from bench.spec.measure import MeasureConfig

    suite = types.SimpleNamespace(measure=MeasureConfig.model_validate(measure))
    return types.SimpleNamespace(suite=suite, max_length=max_length)


def test_profile_covers_serve_and_the_server_scenario():
    from bench.backends.tensorrt.recipes import engine_profile

    assert engine_profile(_compressor({}))["max"] == [256, 48]  # bench serve's 256-text request
    server = {"server": {"batching": [{"max_batch": 8}, {"max_batch": 512, "max_wait_ms": 2}]}}
    assert engine_profile(_compressor(server))["max"] == [512, 48]
    offline = {"offline": {"batch_sizes": [1, 1024]}, "grid": {"batch_sizes": [4], "seq_lens": [16, 384]}}
    profile = engine_profile(_compressor(offline, max_length=128))
    assert profile == {"min": [1, 1], "opt": [1, 64], "max": [1024, 384]}


def test_ort_tensorrt_provider_gets_profile_shapes():
    from bench.backends.onnx.runtime import trt_profile_options

    opts = trt_profile_options(["input_ids", "attention_mask"], 256, 512)
    assert opts == {"trt_profile_min_shapes": "input_ids:1x1,attention_mask:1x1",
                    "trt_profile_opt_shapes": "input_ids:1x64,attention_mask:1x64",
                    "trt_profile_max_shapes": "input_ids:256x512,attention_mask:256x512"}


# ---------------------------------------------------------------- the engine inspector's layer types
TRT10 = {"Layers": [
    {"Name": "qkv", "Inputs": [{"Format/Datatype": "Row major linear INT8 format"}],
     "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
    {"Name": "ln", "Inputs": [{"Format/Datatype": "Row major linear FP16 format"}],
     "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
    {"Name": "cast_out", "Inputs": [{"Format/Datatype": "Row major linear FP16 format"}],
     "Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
    {"Name": "shape", "Inputs": [{"Format/Datatype": "Int32"}], "Outputs": [{"Format/Datatype": "Int32"}]}],
    "Bindings": ["input_ids", "logits"]}
TRT11 = {"Layers": [
    {"Name": "qkv", "Inputs": [{"Format": "Row major linear", "DataType": "Int8"}],
     "Outputs": [{"Format": "Row major linear", "DataType": "Half"}]},
    {"Name": "gelu", "Inputs": [{"DataType": "Half"}], "Outputs": [{"DataType": "Half"}]},
    {"Name": "head", "Inputs": [{"DataType": "Float"}], "Outputs": [{"DataType": "Float"}]}],
    "I/O Tensors": [{"Name": "input_ids", "IOMode": "Input", "DataType": "Int64"}]}


def test_layer_precisions_read_tensorrt_10_and_11_inspector_json():
    from bench.backends.tensorrt.engine import layer_precisions

    assert layer_precisions(json.loads(json.dumps(TRT10))) == {"fp16": 1, "fp32": 1, "int8": 1, "other": 1}
    assert layer_precisions(TRT11) == {"fp16": 1, "fp32": 1, "int8": 1}
    assert layer_precisions({"Layers": ["qkv", "ln"]}) == {}  # built without DETAILED verbosity: no types


# ---------------------------------------------------------------- install mismatches (bench plan)
def _fake_gpu(monkeypatch, dists, providers, torch_major, trt_majors):
    for name, value in (("cuda_available", True), ("ort_distributions", tuple(dists)),
                        ("ort_providers", tuple(providers)), ("torch_cuda_major", torch_major),
                        ("tensorrt_cuda_majors", frozenset(trt_majors)), ("tensorrt_importable", True)):
        monkeypatch.setattr(probes, name, lambda value=value: value)


def test_mismatches_are_named_one_line_each_on_a_gpu_machine(monkeypatch):
    _fake_gpu(monkeypatch, ["onnxruntime 1.32.0", "onnxruntime-gpu 1.31.1"], ["CPUExecutionProvider"], 13, {12})
    found = probes.gpu_mismatches()
    lines = [line for group in found.values() for line in group]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert found["onnxruntime"][0].startswith("onnxruntime: 2 distributions share one onnxruntime/ folder "
                                              "(onnxruntime 1.32.0, onnxruntime-gpu 1.31.1)")
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in found["onnxruntime"][0]
    assert found["onnxruntime"][1].startswith("onnxruntime: no CUDAExecutionProvider")
    assert found["tensorrt"] == ["tensorrt: built for CUDA 12 but torch for CUDA 13: pip install 'tensorrt-cu13<11' "
                                 "(one CUDA major per process)"]
    # The plan shows them as the skip reason of the variants they break.
    from bench import backends
    from bench.schema.variant import Variant
    from bench.spec.measure import MeasureConfig

    measure = MeasureConfig()
    onnx_cuda = Variant(model="teacher", format="onnx", precision="fp16", device="cuda", threads=1)
    trt_cuda = Variant(model="teacher", format="tensorrt", precision="fp16", device="cuda", threads=1)
    assert backends.get("onnx").skip_reason(onnx_cuda, measure) == "; ".join(found["onnxruntime"])
    assert backends.get("tensorrt").skip_reason(trt_cuda, measure) == found["tensorrt"][0]


def test_a_matching_gpu_install_has_no_mismatch(monkeypatch):
    _fake_gpu(monkeypatch, ["onnxruntime-gpu 1.31.1"], ["CUDAExecutionProvider", "CPUExecutionProvider"], 13, {13})
    assert probes.gpu_mismatches() == {}


def test_mismatch_checks_are_silent_on_cpu(monkeypatch):
    _fake_gpu(monkeypatch, ["onnxruntime 1.32.0", "onnxruntime-gpu 1.31.1"], [], 12, {13})
    monkeypatch.setattr(probes, "cuda_available", lambda: False)
    assert probes.gpu_mismatches() == {}


def test_ort_distributions_reads_the_installed_metadata():
    # This environment has the CPU build only (README's install).
    assert [d.split()[0] for d in probes.ort_distributions()] == ["onnxruntime"]


# ---------------------------------------------------------------- preload_dlls
def test_cuda_libraries_are_preloaded_only_without_torch(monkeypatch):
    from bench.backends.onnx import runtime

    calls = []
    monkeypatch.setattr(runtime.ort, "preload_dlls", lambda: calls.append(1), raising=False)
    monkeypatch.setitem(sys.modules, "torch", __import__("torch"))  # as in the parent's parity check
    assert runtime.preload_cuda() is False and calls == []  # torch is imported in this process: it loaded them
    monkeypatch.delitem(sys.modules, "torch")  # as in the measuring child
    assert runtime.preload_cuda() is True and calls == [1]
    monkeypatch.delattr(runtime.ort, "preload_dlls")  # onnxruntime < 1.21
    assert runtime.preload_cuda() is False


# ---------------------------------------------------------------- the INT8 engine's source graph
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import trained_tiny_teacher

    return trained_tiny_teacher(tmp_path_factory.mktemp("gpu-paths"))


def test_int8_engine_source_is_fp16_around_its_qdq_nodes(trained):
    from bench.backends.onnx.quantize import float32_ops
    from bench.backends.tensorrt.recipes import int8_source

    teacher, comp = trained
    qdq = comp.onnx_int8_static(teacher, "plain", "minmax", symmetric=True)
    assert len(float32_ops(qdq.path / "model.onnx")) > 20  # the FP32 QDQ graph: everything unquantized is fp32
    art = int8_source(comp, teacher)
    path = art.path / "model.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert art.info["float32_ops"] == [] and float32_ops(path) == []
    assert art.info["opset"] == 19 and art.manifest["parents"] == {qdq.kind: qdq.key}
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul", "Softmax"} <= ops
    inits = {t.name: t for t in model.graph.initializer}
    scales = [inits[n.input[1]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert scales and {s.data_type for s in scales} == {onnx.TensorProto.FLOAT16}
    # Zero-points stay 0: what TensorRT's explicit quantization accepts.
    from bench.backends.onnx.quantize import nonzero_zero_points

    assert nonzero_zero_points(path) == []
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    assert art.info["parity_label_agreement"] >= 0.85 and np.isfinite(art.info["parity_max_abs_diff"])
