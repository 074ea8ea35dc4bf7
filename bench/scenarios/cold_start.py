"""`measure.cold_start`: what a deployment that starts on demand pays before its first answer.

After a variant's own measurement, the parent starts `repeats` fresh processes (bench/child/cold_start.py),
one at a time, each loading the variant from scratch and answering two dev examples. Each start is
timed from the parent's spawn to the first answer, by phase; the row keeps the median per phase, the
fastest and slowest start, and every start's total.

The OS page cache: before each start the artifact's files are dropped from it with posix_fadvise
(DONTNEED, after an fsync), which needs no root; the libraries' own files (torch, onnxruntime) stay cached.
A truly cold machine also reads those: `sync; echo 3 | sudo tee /proc/sys/vm/drop_caches` before a run,
where you have the rights (docs/measurement.md).
"""

from __future__ import annotations

import fnmatch
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.launch.environment import child_env, last_line
from bench.scenarios.base import Measured
from bench.schema.scenario_parts import COLD_START_PHASES, ColdStart
from bench.spec.measure import ColdStartConfig

TOTAL = ("interpreter", "import", "tokenizer_load", "model_load", "first_call")  # spawn to the first answer


def evict(folder: Path) -> None:
    """Drop a folder's files from the page cache (clean pages only: flushed first)."""
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


class ColdStartStage:
    def __init__(self, config: ColdStartConfig, work_dir: Path, tag: str = "", allocator: str = "system"):
        self.config, self.work_dir, self.tag, self.allocator = config, Path(work_dir), tag, allocator

    def selected(self, variant_id: str) -> bool:
        patterns = self.config.variants
        return patterns is None or any(fnmatch.fnmatchcase(variant_id, p) for p in patterns)

    def measure(self, measured: Measured) -> ColdStart:
        """Every start, in order; the first that fails ends the scenario with its reason (the row stands)."""
        spec, name = measured.spec, f"{measured.variant.id}{self.tag}.cold-start"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.work_dir / f"{name}.spec.json"
        spec_path.write_text(spec.to_json())
        starts = []
        for i in range(self.config.repeats):
            if self.config.evict_model_files:
                evict(spec.artifact_dir)
            out_path, log_path = self.work_dir / f"{name}-{i + 1}.json", self.work_dir / f"{name}-{i + 1}.log"
            out_path.unlink(missing_ok=True)
            with open(log_path, "w") as log:
                cmd = [sys.executable, "-m", "bench.child.cold_start", str(spec_path), str(out_path)]
                try:
                    proc = subprocess.run([*cmd, repr(time.time())], stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, timeout=self.config.timeout_s,
                                          env=child_env(spec.variant.threads, self.allocator))
                except subprocess.TimeoutExpired:
                    return ColdStart(cold_start_error=f"start {i + 1}: no answer within {self.config.timeout_s:g} s "
                                                      f"(killed; log: {log_path})")
            if proc.returncode != 0 or not out_path.is_file():
                return ColdStart(cold_start_error=f"start {i + 1}: exit code {proc.returncode}: "
                                                  f"{last_line(log_path)} (log: {log_path})")
            starts.append(json.loads(out_path.read_text()))
        return summarise(starts, self.config.evict_model_files)


def summarise(starts: list[dict], evicted: bool) -> ColdStart:
    totals = [sum(s["phases_ms"][p] for p in TOTAL) for s in starts]
    return ColdStart(
        cold_start_ms=round(statistics.median(totals), 2), cold_start_min_ms=round(min(totals), 2),
        cold_start_max_ms=round(max(totals), 2),
        cold_start_phases_ms={p: round(statistics.median(s["phases_ms"][p] for s in starts), 2)
                              for p in COLD_START_PHASES},
        cold_start_runs_ms=[round(t, 2) for t in totals],
        cold_start_peak_rss_mb=round(statistics.median(s["peak_rss_mb"] for s in starts), 1),
        cold_start_file_cache="model files evicted" if evicted else "warm")
