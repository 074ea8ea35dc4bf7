"""Suite → plan: the variants to build and measure, and those skipped with the reason.

Invalid combinations (TensorRT on CPU, static INT8 in PyTorch, ...) are suite errors (exit 2).
Valid combinations this machine or this release cannot run are skipped, with the reason printed by
`bench plan` and `bench run`, and never reported as measured.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import asdict, dataclass
from functools import cache

from bench.errors import BenchError
from bench.suite import Suite

# Which precisions make sense for each format.
VALID_PRECISIONS = {
    "pytorch": {"fp32", "fp16", "bf16", "int8-dynamic"},
    "onnx": {"fp32", "fp16", "int8-dynamic", "int8-static"},
    "tensorrt": {"fp32", "fp16", "int8"},
}


@dataclass(frozen=True, order=True)
class Variant:
    model: str  # teacher | student
    format: str  # pytorch | onnx | tensorrt
    precision: str
    device: str  # cpu | cuda
    threads: int
    graph: str = "plain"  # onnx: plain | optimized (ORT transformer optimizer)
    calibration: str = ""  # int8-static: minmax | entropy | percentile

    @property
    def id(self) -> str:
        precision = f"{self.precision}-{self.calibration}" if self.calibration else self.precision
        graph = "-opt" if self.graph == "optimized" else ""
        return f"{self.model}-{self.format}-{precision}{graph}-{self.device}-t{self.threads}"

    @property
    def artifact_key(self) -> tuple:
        """What the artifact depends on: not the device or thread count it is measured with."""
        return (self.model, self.format, self.precision, self.graph, self.calibration)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    variant: Variant
    reason: str


@dataclass(frozen=True)
class Plan:
    variants: list[Variant]
    skipped: list[Skipped]


@cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@cache
def ort_providers() -> tuple[str, ...]:
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


@cache
def tensorrt_importable() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _skip_reason(v: Variant, ort_gpu_provider: str = "cuda") -> str | None:
    if v.format == "onnx" and not ort_providers():
        return "onnx: onnxruntime is not installed (pip install 'bench[onnx]')"
    if v.precision == "int8-static" and v.graph == "optimized":
        return ("onnx int8-static on the optimized graph: ORT's static quantizer leaves the fused Attention in "
                "float and its histogram calibrators fail on it; static QDQ uses the plain graph")
    if v.device == "cpu":
        if v.precision in ("fp16", "bf16"):
            return f"{v.precision} on cpu: planned for cuda devices only"
        return None
    # cuda
    if not cuda_available():
        return "cuda: no GPU (torch.cuda.is_available() is False)"
    if v.format == "pytorch" and v.precision == "int8-dynamic":
        return "pytorch int8-dynamic on cuda: torch.ao dynamic quantization has CPU kernels only"
    if v.format == "onnx":
        if "CUDAExecutionProvider" not in ort_providers():
            return "cuda: onnxruntime has no CUDAExecutionProvider (pip install 'bench[gpu]')"
        if ort_gpu_provider == "tensorrt" and "TensorrtExecutionProvider" not in ort_providers():
            return "cuda: onnxruntime has no TensorrtExecutionProvider (measure.ort_gpu_provider: tensorrt)"
        if v.precision.startswith("int8"):
            return ("onnx int8 on the CUDA provider: ORT has no CUDA kernels for these INT8 ops and silently "
                    "falls back to CPU; use format tensorrt, precision int8")
    if v.format == "tensorrt" and not tensorrt_importable():
        return "tensorrt: the Python package is not importable (pip install 'bench[gpu]' on an NVIDIA machine)"
    return None


def _check_valid(index: int, fmt: str, precision: str, device: str, file: str) -> None:
    where = f"{file}: variants[{index}]"
    if precision not in VALID_PRECISIONS[fmt]:
        allowed = ", ".join(sorted(VALID_PRECISIONS[fmt]))
        raise BenchError(f"{where}.precision: {fmt} does not support {precision} (allowed: {allowed})")
    if fmt == "tensorrt" and device != "cuda":
        raise BenchError(f"{where}.device: tensorrt runs on cuda only, got {device!r}")


def make_plan(suite: Suite, file: str = "suite") -> Plan:
    """Expand every variants line into the product of its lists, one variant per thread count."""
    seen: dict[Variant, None] = {}
    for i, spec in enumerate(suite.variants):
        for model, fmt, precision, device, graph in itertools.product(
            spec.model, spec.format, spec.precision, spec.device, spec.graph
        ):
            _check_valid(i, fmt, precision, device, file)
            graph = graph if fmt == "onnx" else "plain"
            calibrations = suite.quantize.calibrators if precision == "int8-static" else [""]
            if fmt == "tensorrt" and precision == "int8":
                calibrations = [suite.quantize.calibrators[0]]  # TensorRT INT8 builds from a QDQ graph
            # Threads only matter on CPU; a GPU variant is measured once.
            threads = spec.threads or suite.measure.threads
            threads = threads if device == "cpu" else threads[:1]
            for t, calibration in itertools.product(threads, calibrations):
                seen.setdefault(Variant(model, fmt, precision, device, t, graph, calibration))
    runnable, skipped = [], []
    for v in seen:
        reason = _skip_reason(v, suite.measure.ort_gpu_provider)
        (skipped.append(Skipped(v, reason)) if reason else runnable.append(v))
    return Plan(variants=runnable, skipped=skipped)


def shard_plan(plan: Plan, index: int, count: int) -> Plan:
    """Shard `index` of `count` (1-based): every count-th variant in id order, so each shard is the same
    on every machine and the shards together are the whole plan."""
    ordered = sorted(plan.variants, key=lambda v: v.id)
    return Plan(variants=ordered[index - 1 :: count], skipped=plan.skipped)


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise BenchError(f"--shard: expected I/N with 1 <= I <= N, got {text!r}")
    return int(index), int(count)


def format_plan(plan: Plan, suite: Suite) -> str:
    lines = [f"suite {suite.name}: {len(plan.variants)} variant(s) to measure, {len(plan.skipped)} skipped"]
    for v in plan.variants:
        lines.append(f"  run   {v.id}")
    for s in plan.skipped:
        lines.append(f"  skip  {s.variant.id}: {s.reason}")
    return "\n".join(lines)
