"""ONNX Runtime inference: all graph optimisations on, sequential execution, fixed intra-op threads.

Loading needs onnxruntime alone, as a deployment does: the graph facts a row records (opset, operator
domains, parameter count) are read with the `onnx` package only when asked, after the load is timed
(`import onnx` alone takes about a second, most of it ml_dtypes).

On CUDA (ORT's CUDA or TensorRT provider) inputs are copied to the device in `prepare` (untimed) and
bound with IO binding, outputs stay on the device, and `run` waits for them: the timed call covers
the GPU work and no host<->device copy. On CPU `run` is a plain session.run on numpy arrays.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort


def preload_cuda() -> bool:
    """onnxruntime.preload_dlls() (1.21+): load CUDA and cuDNN from the nvidia-* pip wheels before the first
    CUDA session, so the provider's libraries resolve. The measuring child never imports torch, which would
    otherwise have loaded them; where torch is already imported (the parent's parity check) ORT's own
    docs say no preload is needed, and a second copy of cuBLAS is not wanted. True when it was called."""
    import sys

    preload = getattr(ort, "preload_dlls", None)
    if preload is None or "torch" in sys.modules:
        return False
    preload()  # a no-op on CPU builds
    return True


def trt_profile_options(input_names: list[str], max_batch: int, max_length: int) -> dict[str, str]:
    """ORT's TensorRT provider builds an engine per input shape range; explicit profile shapes make it one
    engine for every batch up to max_batch and length up to max_length (no rebuilds as shapes change)."""
    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in input_names)

    return {"trt_profile_min_shapes": shapes(1, 1), "trt_profile_opt_shapes": shapes(1, min(64, max_length)),
            "trt_profile_max_shapes": shapes(max_batch, max_length)}


def _providers(device: str, gpu_provider: str, model_path: Path) -> list:
    if device != "cuda":
        return ["CPUExecutionProvider"]
    if gpu_provider == "tensorrt":
        import onnx

        from bench.spec.measure import SERVE_MAX_TEXTS

        # ORT's TensorRT provider builds engines on first run; cache them next to the model. The profile
        # covers bench serve's largest request at the model's longest sequence.
        proto = onnx.load(str(model_path), load_external_data=False)
        names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(model_path.parent / "ort-trt-cache"),
                   **trt_profile_options(names, SERVE_MAX_TEXTS, _max_positions(model_path.parent))}
        return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _max_positions(model_dir: Path) -> int:
    import json

    try:
        return int(json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings", 512))
    except (OSError, ValueError):
        return 512


def session_options(threads: int) -> ort.SessionOptions:
    """How bench runs every ONNX graph: all graph optimisations, sequential, fixed intra-op threads,
    one inter-op thread (the measuring child, the op profiler and the scripts share it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OrtRuntime:
    name = "onnxruntime"

    def __init__(self, model_path: Path, device: str, threads: int, gpu_provider: str = "cuda"):
        options = session_options(threads)
        self.cuda_preloaded = preload_cuda() if device == "cuda" else False
        providers = _providers(device, gpu_provider, Path(model_path))
        self.model_path = Path(model_path)  # bench.child.op_profile opens a profiling session on it
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.providers = self.session.get_providers()
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if self.providers[0] != wanted:
            # ORT falls back to CPU silently when a provider cannot load: never time that as GPU.
            raise RuntimeError(f"{model_path}: ONNX Runtime could not use {wanted} (got {self.providers})")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        self._bind_device = "cuda" if device == "cuda" else None  # IO binding: GPU providers only
        # Recorded in the row: the settings that decide memory (arenas, patterns) and parallelism.
        self.session_options = {
            "intra_op_num_threads": options.intra_op_num_threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "execution_mode": options.execution_mode.name,
            "graph_optimization_level": options.graph_optimization_level.name,
            "enable_cpu_mem_arena": options.enable_cpu_mem_arena,
            "enable_mem_pattern": options.enable_mem_pattern,
            "enable_mem_reuse": options.enable_mem_reuse,
            "provider_options": self.session.get_provider_options().get(self.providers[0], {}),
            "io_binding": self._bind_device is not None,
        }
        if device == "cuda":
            self.session_options["cuda_preloaded"] = self.cuda_preloaded

    @cached_property
    def _graph_facts(self) -> tuple[int | None, list[str], int]:
        import onnx

        proto = onnx.load(str(self.model_path), load_external_data=False)
        graph = proto.graph
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        domains = sorted({node.domain or "ai.onnx" for node in graph.node})
        # Weights only: float and 8-bit initialisers with more than one element (shape constants are
        # int64; quantization scales and zero points are scalars).
        weight_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
        sizes = (int(np.prod(t.dims)) for t in graph.initializer if t.data_type in weight_types)
        return opset, domains, sum(n for n in sizes if n > 1)

    @property
    def opset(self) -> int | None:
        return self._graph_facts[0]

    @property
    def op_domains(self) -> list[str]:
        return self._graph_facts[1]

    @property
    def params(self) -> int:
        return self._graph_facts[2]

    def prepare(self, encoding: dict[str, np.ndarray]):
        arrays = {k: np.ascontiguousarray(encoding[k], dtype=np.int64) for k in self.input_names}
        if self._bind_device is None:
            return arrays
        # Device copies made here, outside the timed call; the output is allocated by ORT on the device.
        binding = self.session.io_binding()
        for name, array in arrays.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self._bind_device, 0))
        binding.bind_output(self.output_name, self._bind_device, 0)
        return binding

    def run(self, native):
        if self._bind_device is None:
            # session.run returns host arrays, so it has finished (and synchronised) when it returns.
            return self.session.run(None, native)[0]
        self.session.run_with_iobinding(native)
        native.synchronize_outputs()  # wait for the device: the timing covers the GPU work
        return native.get_outputs()[0]

    def logits(self, output) -> np.ndarray:
        if isinstance(output, ort.OrtValue):
            output = output.numpy()  # device -> host, untimed
        return output.astype(np.float32, copy=False)
