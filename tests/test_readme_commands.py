"""README's commands, read from README.md (not copied here), run as a newcomer runs them: in a fresh
clone with ../shared/data beside it. Installing is the environment's job (pip is stubbed to a no-op:
this process already has the package); the rest of each line runs verbatim."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, real_data_dir

README = REPO / "README.md"


def readme_block(heading: str) -> list[str]:
    """The command lines of the first ```bash block under `heading` (comments and blanks dropped)."""
    text = README.read_text()
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@pytest.fixture
def fresh_clone(tmp_path) -> Path:
    data = real_data_dir()
    if data is None:
        pytest.skip("real SST-2 not found (../shared/data)")
    subprocess.run(["git", "clone", "-q", str(REPO), str(tmp_path / "main")], check=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data.resolve())
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "pip").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "pip").chmod(0o755)
    return tmp_path / "main"


def _run_until(line: str, cwd: Path, marker: str, timeout_s: float = 300) -> str:
    """Run a README line in bash; stop it once `marker` is in its output (the job itself takes minutes)."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATA_DIR"}  # as a newcomer's shell has it
    env["PATH"] = f"{cwd.parent / 'stubs'}:{env['PATH']}"
    proc = subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, deadline = [], time.monotonic() + timeout_s
    try:
        for text in proc.stdout:
            out.append(text)
            if marker in text or time.monotonic() > deadline:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return "".join(out)


def test_the_main_job_command_gets_past_planning_in_a_fresh_clone(fresh_clone):
    [main_job] = [ln for ln in readme_block("## Two commands") if "bench run" in ln]
    out = _run_until(main_job, fresh_clone, marker="INFO bench.store.artifacts: build teacher-")
    assert "bench: error" not in out, out[-2000:]
    assert "data: glue-tsv:" in out and "train=67349 validation=872" in out, out[-2000:]
    assert "INFO bench.store.artifacts: build teacher-" in out  # planned, data loaded, training started
