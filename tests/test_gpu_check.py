"""scripts/gpu_check.sh on a machine without a CUDA GPU: one line saying so, exit 0, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would run the full check")
def test_gpu_check_on_cpu_is_one_line_and_exit_0(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing to check"]
    assert proc.stderr == "" and not out.exists()
