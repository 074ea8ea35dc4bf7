"""Each backend through the real measuring child on CUDA: PyTorch fp32/fp16/bf16, ONNX Runtime on its CUDA and
TensorRT providers (IO binding), TensorRT engines; latency, grid and Offline loops and the NVML fields.

GPU machines only (scripts/gpu_check.sh runs them); on CPU machines every test here skips with the reason."""

from __future__ import annotations

import importlib.util

import pytest

from bench.backends import probes

SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}


def _why_not() -> dict[str, str | None]:
    """The reason each family cannot run here (None: it can)."""
    if not probes.cuda_available():
        no_gpu = "no CUDA GPU on this machine (torch.cuda.is_available() is False)"
        return {"pytorch": no_gpu, "onnx": no_gpu, "onnx-trt": no_gpu, "tensorrt": no_gpu}
    mismatch = probes.gpu_mismatches()
    ort = "; ".join(mismatch.get("onnxruntime", [])) or (
        None if "CUDAExecutionProvider" in probes.ort_providers()
        else "onnxruntime has no CUDAExecutionProvider (docs/gpu.md installs onnxruntime-gpu)")
    ort_trt = ort or (None if "TensorrtExecutionProvider" in probes.ort_providers()
                      else "onnxruntime has no TensorrtExecutionProvider")
    trt = ("tensorrt not importable (pip install 'bench-bert[gpu]')" if importlib.util.find_spec("tensorrt") is None
           else "; ".join(mismatch.get("tensorrt", [])) or None)
    return {"pytorch": None, "onnx": ort, "onnx-trt": ort_trt, "tensorrt": trt}


WHY_NOT = _why_not()


def _needs(family: str):
    return pytest.mark.skipif(WHY_NOT[family] is not None, reason=str(WHY_NOT[family]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import trained_tiny_teacher

    return trained_tiny_teacher(tmp_path_factory.mktemp("gpu-child"))


def _measure(trained, tmp_path, fmt: str, precision: str, graph: str = "plain", provider: str = "cuda",
             device: str = "cuda"):
    from bench.data.splits import eval_splits
    from bench.launch.isolate import run_isolated
    from bench.schema.child import ChildSpec
    from bench.schema.variant import Variant

    teacher, comp = trained
    variant = Variant(model="teacher", format=fmt, precision=precision, device=device, threads=1, graph=graph,
                      calibration="minmax" if precision == "int8" else "")
    artifact = comp.artifact_for(variant, teacher)
    spec = {"variant": variant.as_dict(), "artifact_dir": str(artifact.weights_dir), "task": SST2_TASK,
            "eval_sets": [ChildSpec.eval_set_fields(s) for s in eval_splits(comp.data)],
            "max_length": comp.max_length,
            "measure": {"ort_gpu_provider": provider, "warmup": 2, "min_iterations": 20, "min_seconds": 0,
                        "eval_batch_size": 16,
                        "grid": {"batch_sizes": [1, 8], "seq_lens": [16, 32], "min_iterations": 5, "min_seconds": 0},
                        "offline": {"batch_sizes": [1, 16], "min_seconds": 0}}}
    row = run_isolated(spec, tmp_path, variant.id, timeout_s=300)
    assert row.status == "ok", row.error
    assert row.latency_p50_ms > 0 and [c.batch for c in row.latency_grid] and row.offline
    return row, artifact


def test_the_spec_these_tests_send_measures_on_cpu(trained, tmp_path):
    # The GPU tests below skip on CPU machines; their spec and checks run here on the CPU provider, so a
    # GPU machine's first run meets no plumbing error.
    row, _ = _measure(trained, tmp_path, "onnx", "fp32", device="cpu")
    assert row.providers == ["CPUExecutionProvider"] and "cuda_preloaded" not in row.ort_session_options


@pytest.mark.gpu
@_needs("pytorch")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_pytorch_on_cuda_through_the_child(trained, tmp_path, precision):
    row, _ = _measure(trained, tmp_path, "pytorch", precision)
    assert row.gpu_max_memory_allocated_mb and row.gpu_max_memory_allocated_mb > 0


@pytest.mark.gpu
@_needs("onnx")
@pytest.mark.parametrize("precision, graph", [("fp32", "plain"), ("fp16", "plain"), ("fp32", "optimized"),
                                              ("fp16", "optimized")])
def test_onnx_cuda_provider_through_the_child(trained, tmp_path, precision, graph):
    row, _ = _measure(trained, tmp_path, "onnx", precision, graph)
    assert row.providers[0] == "CUDAExecutionProvider"
    assert row.ort_session_options["io_binding"] is True
    assert "cuda_preloaded" in row.ort_session_options  # the child is torch-free: preload ran if ORT has it


@pytest.mark.gpu
@pytest.mark.tensorrt
@_needs("onnx-trt")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnx_tensorrt_provider_through_the_child(trained, tmp_path, precision):
    row, _ = _measure(trained, tmp_path, "onnx", precision, provider="tensorrt")
    assert row.providers[0] == "TensorrtExecutionProvider"
    assert row.ort_session_options["provider_options"].get("trt_profile_max_shapes")


@pytest.mark.gpu
@pytest.mark.tensorrt
@_needs("tensorrt")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_through_the_child(trained, tmp_path, precision):
    row, artifact = _measure(trained, tmp_path, "tensorrt", precision)
    info = artifact.info
    assert info["tf32"] is (precision != "fp32")
    layers = info["layer_precisions"]
    if precision == "int8":
        assert layers.get("int8", 0) > 0 and layers.get("fp16", 0) > layers.get("fp32", 0)
    if precision == "fp16":
        assert layers.get("fp16", 0) > 0
    if importlib.util.find_spec("pynvml") is not None:
        assert row.gpu_nvml_used_peak_mb is not None
