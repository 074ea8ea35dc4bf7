"""No extra installs both ONNX Runtime builds: onnxruntime and onnxruntime-gpu write the same onnxruntime/
folder, and whichever pip installs last wins, file by file (a GPU user then gets a CUDA-less runtime).

Each extra is resolved with the extras it includes (bench-bert[...]) and, where the requirement is installed
here, the requirements its own metadata declares for the extras asked of it (optimum-onnx[onnxruntime] would
pull the CPU build), transitively."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from packaging.requirements import Requirement  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
ORT = {"onnxruntime", "onnxruntime-gpu"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_requires(name: str, extras: set[str]) -> list[Requirement]:
    try:
        declared = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for text in declared:
        req = Requirement(text)
        # The base requirements, and those of the extras asked for; the rest never install.
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
            out.append(req)
    return out


def resolve(extras: dict[str, list[str]], extra: str, project: str = "bench-bert") -> set[str]:
    """Every distribution name `pip install project[extra]` would pull, as far as this can tell."""
    names: set[str] = set()
    todo = [Requirement(r) for r in extras[extra]]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        if _norm(req.name) == project:
            todo += [Requirement(r) for e in req.extras for r in extras[e]]
            continue
        names.add(_norm(req.name))
        todo += _installed_requires(req.name, set(req.extras))
    return names


def both_runtimes(extras: dict[str, list[str]]) -> list[str]:
    return sorted(e for e in extras if ORT <= resolve(extras, e))


def _extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def test_no_extra_installs_both_onnxruntime_builds():
    extras = _extras()
    assert both_runtimes(extras) == []
    # The two sides each get their runtime: README's CPU install and docs/gpu.md's GPU install.
    assert "onnxruntime" in resolve(extras, "test") and "onnxruntime-gpu" not in resolve(extras, "test")
    gpu = resolve(extras, "test-gpu")
    assert {"onnxruntime-gpu", "nvidia-ml-py", "pytest", "optimum-onnx"} <= gpu and "onnxruntime" not in gpu
    assert "onnxruntime" in resolve(extras, "onnx")  # `pip install '.[onnx]'` still means a working runtime


def test_the_check_finds_both_runtimes_through_nested_extras():
    # The resolver is what the test above relies on: an extra that reaches both through another extra,
    # or through a dependency's own extra, must be found.
    extras = {"cpu": ["onnxruntime>=1.18"], "a": ["bench-bert[cpu]"], "b": ["bench-bert[a]", "onnxruntime-gpu"],
              "c": ["onnxruntime-gpu"]}
    found = both_runtimes(extras)
    assert found == ["b"]
    if metadata.requires("optimum-onnx") is not None:  # installed here: its [onnxruntime] extra is read
        extras["d"] = ["optimum-onnx[onnxruntime]", "bench-bert[c]"]
        assert both_runtimes(extras) == ["b", "d"]


def test_gpu_pins_share_one_cuda_major():
    # onnxruntime-gpu on PyPI is built for CUDA 13 from 1.27 on; the TensorRT wheel must be the cu13 one
    # (and torch the cu130 build, docs/gpu.md).
    reqs = {_norm(Requirement(r).name): Requirement(r) for r in _extras()["gpu"]}
    ort_low = min(s.version for s in reqs["onnxruntime-gpu"].specifier if s.operator == ">=")
    assert tuple(int(x) for x in ort_low.split(".")[:2]) >= (1, 27)
    trt = [n for n in reqs if n.startswith("tensorrt")]
    assert trt == ["tensorrt-cu13"], "an unsuffixed `tensorrt` picks its CUDA major by release"
    assert any(s.operator == "<" for s in reqs["tensorrt-cu13"].specifier), "TensorRT's major is pinned"
