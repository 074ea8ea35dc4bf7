"""What a measuring process starts with: its environment (thread pools, tokenizers, the allocator
setting) and, when it fails, the last line of its log."""

from __future__ import annotations

import os
from pathlib import Path

# measure.allocator -> what the child's environment says to glibc malloc (read at process start).
ALLOCATOR_ENV = {
    "system": {},
    "glibc-retain": {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(4 * 2**30)},
}
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX",
               "GLIBC_TUNABLES", "LD_PRELOAD")


def child_env(threads: int, allocator: str = "system") -> dict:
    env = dict(os.environ)
    # Thread pools that read the environment at import time get the same count as the runtime.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.update(ALLOCATOR_ENV[allocator])
    return env


def malloc_env() -> dict:
    """The allocator settings this process started with (rows record them, whatever set them)."""
    return {var: os.environ[var] for var in MALLOC_VARS if var in os.environ}


def last_line(log_path: Path) -> str:
    """A failed child's last non-empty log line: the one-line reason a row or an error gives."""
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "no output"
