"""What this machine can run, asked once per process: a GPU through torch, onnxruntime's execution
providers, an importable TensorRT, and the install mismatches that would break the GPU rows. The plan
skips variants on these answers (bench.plan), with the reason."""

from __future__ import annotations

import importlib.util
import re
from functools import cache


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


def _distributions() -> list[tuple[str, str, object]]:
    """(normalised name, version, distribution) of every installed distribution, once per name."""
    from importlib import metadata

    seen: dict[str, tuple[str, str, object]] = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "").lower())
        seen.setdefault(name, (name, dist.version, dist))
    return list(seen.values())


@cache
def ort_distributions() -> tuple[str, ...]:
    """'name version' of each distribution that installs the onnxruntime/ package (onnxruntime,
    onnxruntime-gpu, ...): with two, whichever was installed last wins file by file, without a warning."""
    found = []
    for name, version, dist in _distributions():
        if name.startswith(("onnxruntime", "ort-")) and any(
                str(f).startswith("onnxruntime/") for f in (dist.files or ())):
            found.append(f"{name} {version}")
    return tuple(sorted(found))


@cache
def torch_cuda_major() -> int | None:
    """The CUDA major torch was built for (None: a CPU build)."""
    import torch

    return int(torch.version.cuda.split(".")[0]) if torch.version.cuda else None


@cache
def tensorrt_cuda_majors() -> frozenset[int]:
    """The CUDA majors of the installed TensorRT wheels (tensorrt-cu12, tensorrt-cu13-libs, ...);
    empty when TensorRT came some other way (a container's system packages)."""
    return frozenset(int(m.group(1)) for name, _, _ in _distributions()
                     if (m := re.fullmatch(r"tensorrt-cu(\d+)(-libs|-bindings)?", name)))


def gpu_mismatches() -> dict[str, list[str]]:
    """Install mismatches that break GPU rows, one line each, by the component they break
    ('onnxruntime', 'tensorrt'). Empty without a GPU: a CPU machine has nothing to mismatch."""
    if not cuda_available():
        return {}
    found: dict[str, list[str]] = {}
    dists = ort_distributions()
    if len(dists) > 1:
        names = " ".join(d.split()[0] for d in dists)
        found.setdefault("onnxruntime", []).append(
            f"onnxruntime: {len(dists)} distributions share one onnxruntime/ folder ({', '.join(dists)}): "
            f"pip uninstall -y {names}, then pip install 'bench-bert[gpu]'")
    if dists and "CUDAExecutionProvider" not in ort_providers():
        found.setdefault("onnxruntime", []).append(
            f"onnxruntime: no CUDAExecutionProvider in {', '.join(dists)} (a CPU build won): "
            "install 'bench-bert[gpu]' in an environment without the onnxruntime distribution")
    torch_major, trt_majors = torch_cuda_major(), tensorrt_cuda_majors()
    if torch_major is not None and trt_majors and trt_majors != {torch_major}:
        built = ", ".join(f"CUDA {m}" for m in sorted(trt_majors))
        found.setdefault("tensorrt", []).append(
            f"tensorrt: built for {built} but torch for CUDA {torch_major}: pip install 'tensorrt-cu{torch_major}<11' "
            "(one CUDA major per process)")
    return found
