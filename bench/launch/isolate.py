"""Run each variant's measurement in a fresh child process.

The parent sleeps while the child measures, so it does not compete for the cores. A crash, a
non-zero exit, a timeout or a memory budget overrun becomes a row with a status and the error
text, and the run goes on with the next variant.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
from pydantic import ValidationError

from bench.launch.environment import child_env, last_line
from bench.schema.child import ChildFailure, ChildReport, ChildResult, ChildSpec, validation_message


def worker_command(spec_path: Path, result_path: Path) -> list[str]:
    return [sys.executable, "-m", "bench.child.worker", str(spec_path), str(result_path)]


def _rss(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def run_isolated(spec: ChildSpec | dict, work_dir: Path, name: str, timeout_s: float,
                 max_memory_mb: float | None = None) -> ChildResult | ChildFailure:
    """Measure one variant in a child; returns its validated result, or a failure with status
    'failed' | 'timeout' | 'memory-limit' and the error. The parent sleeps in wait(), waking every
    0.2 s to check the child's RSS against max_memory_mb: a negligible load next to the child's cores."""
    return run_isolated_serving(spec, work_dir, name, timeout_s, max_memory_mb, serve_rounds=False)[0]


def run_isolated_serving(spec: ChildSpec | dict, work_dir: Path, name: str, timeout_s: float,
                         max_memory_mb: float | None = None, serve_rounds: bool = True):
    """run_isolated, and with serve_rounds the child stays alive after its result, serving speedup rounds
    with the variant it has loaded: returns (outcome, RoundWorker or None). The caller closes the worker."""
    from bench.launch.rounds import RoundError, RoundWorker, shared_cpus

    spec = ChildSpec.model_validate(spec)
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = (work_dir / f"{name}.{ext}" for ext in ("spec.json", "result.json", "log"))
    result_path.unlink(missing_ok=True)
    tmp = spec_path.with_suffix(".tmp")
    tmp.write_text(spec.to_json())
    tmp.replace(spec_path)
    deadline = time.monotonic() + timeout_s
    env = child_env(spec.variant.threads, spec.measure.allocator)
    cmd = worker_command(spec_path, result_path)
    if serve_rounds:
        cmd += ["--serve-rounds", *([",".join(map(str, cpus))] if (cpus := shared_cpus(spec.variant.threads)) else [])]
    serving = None
    with open(log_path, "w") as log:
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True) if serve_rounds else \
            dict(stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, env=env, **pipes)
        try:
            # Until the child exits, or (serving) its result is there and it goes on to the rounds.
            while not (serve_rounds and result_path.is_file()):
                try:
                    proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > deadline:
                    error = f"measurement exceeded timeout_s={timeout_s:g} (log: {log_path})"
                    return ChildFailure(status="timeout", error=error), None
                rss = _rss(proc.pid)
                if max_memory_mb is not None and rss > max_memory_mb * 2**20:
                    return ChildFailure(status="memory-limit", error=f"child RSS {rss / 2**20:.0f} MB exceeded "
                                        f"max_memory_mb={max_memory_mb:g} (log: {log_path})"), None
            outcome = _outcome(proc, spec, result_path, log_path, max_memory_mb)
            if isinstance(outcome, ChildResult) and proc.poll() is None:
                try:
                    serving = RoundWorker.attach(proc, name, log_path, timeout_s)
                except RoundError:
                    pass  # its row stands; the rounds start a process of their own (bench/scenarios/interleave.py)
            return outcome, serving
        finally:
            if serving is None and proc.poll() is None:
                proc.kill()
                proc.wait()


def _outcome(proc, spec: ChildSpec, result_path: Path, log_path: Path, max_memory_mb: float | None
             ) -> ChildResult | ChildFailure:
    if not result_path.is_file() or (proc.returncode or 0) != 0:
        how = f"killed by signal {-proc.returncode}" if (proc.returncode or 0) < 0 else f"exit code {proc.returncode}"
        return ChildFailure(status="failed", error=f"{how}: {last_line(log_path)} (log: {log_path})")
    try:  # the parent's end of the boundary: a result that does not fit the schema is not a measurement
        result = ChildReport.model_validate_json(result_path.read_bytes()).scored(spec)
    except ValidationError as exc:
        return ChildFailure(status="failed", error=f"{validation_message(exc, 'child result')} ({result_path})")
    except ValueError as exc:
        return ChildFailure(status="failed", error=f"child result: {exc} ({result_path})")
    peak = result.peak_rss_all_phases_mb or result.peak_rss_mb
    if max_memory_mb is not None and peak > max_memory_mb:
        # A spike between two 0.2 s polls, in any phase: the child's own high-water mark catches it.
        return ChildFailure(status="memory-limit", error=f"child peak RSS {peak:.0f} MB exceeded "
                                                         f"max_memory_mb={max_memory_mb:g} (log: {log_path})")
    return result
