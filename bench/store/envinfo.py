"""What machine and software produced a run: recorded in run.json so numbers can be trusted later."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

import psutil

LIBRARIES = ["bench", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime",
             "onnxruntime-gpu", "tensorrt", "openvino", "nncf", "datasets", "accelerate", "numpy", "pandas",
             "tokenizers"]
CPU_FLAGS = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "fma"]


def _cpu() -> dict:
    """The CPU's model name from /proc/cpuinfo (`platform.processor()` is just `x86_64` on Ubuntu, which
    would hide a runner change from `bench compare`); platform.processor() only where it has none."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or "unknown"
    return {"model": model, "logical_cores": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
            "flags": {f: f in flags for f in CPU_FLAGS}}


def _git_sha() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run([git, "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def library_versions(names: list[str] = LIBRARIES) -> dict:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _gpu() -> list[str]:
    try:
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no CUDA build, no driver: no GPU to report
        return []


def environment() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpu(),
        "versions": library_versions(),
        "git_sha": _git_sha(),
    }
