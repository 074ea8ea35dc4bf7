"""The failure table (docs/failures.md), the rows that need a process or a provider to go wrong: each test fails when
the guarded behaviour is removed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from bench.launch.isolate import run_isolated

_SPEC = {"variant": {"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu", "threads": 1},
         "task": {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]},
         "eval_sets": [{"name": "validation", "first": ["a warm , funny film .", "dull ."] * 5, "second": None,
                        "labels": [1, 0] * 5}], "max_length": 32}

# A `bench run` stand-in: the parent measures one variant in a child whose latency loop runs for a minute.
_PARENT = """
import json, sys
from pathlib import Path
from bench.launch.isolate import run_isolated
run_isolated(json.loads(sys.argv[1]), Path(sys.argv[2]), "v", timeout_s=300)
"""


def _worker_child(parent: psutil.Process, timeout_s: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in parent.children(recursive=True):
            try:
                if "bench.child.worker" in " ".join(child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError("the measuring child never started")


def test_killing_the_parent_kills_the_measuring_child(tiny_onnx_artifact, tmp_path):
    spec = _SPEC | {"artifact_dir": str(tiny_onnx_artifact),
                    "measure": {"warmup": 1, "min_iterations": 5, "min_seconds": 60}}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, json.dumps(spec), str(tmp_path)])
    try:
        child = _worker_child(psutil.Process(parent.pid))
        time.sleep(1.0)  # let it reach the timed loop (it has prctl'd long before)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        gone, alive = psutil.wait_procs([child], timeout=10)
        assert not alive, "the measuring child outlived its killed parent (PR_SET_PDEATHSIG)"
    finally:
        for p in psutil.Process().children(recursive=True):
            p.kill()


def test_a_cuda_session_that_falls_back_to_cpu_fails_the_variant(tiny_onnx_artifact, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider: the fallback cannot happen here")
    spec = _SPEC | {"artifact_dir": str(tiny_onnx_artifact),
                    "variant": _SPEC["variant"] | {"device": "cuda"},
                    "measure": {"warmup": 1, "min_iterations": 5, "min_seconds": 0}}
    result = run_isolated(spec, tmp_path, "v", timeout_s=120)
    assert result.status == "failed"
    assert "could not use CUDAExecutionProvider" in result.error
    assert not hasattr(result, "latency_p50_ms")  # a failure carries no timing at all
