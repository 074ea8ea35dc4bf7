"""Interleaved rounds between two long-lived measuring processes (the parent's side of
bench/child/round_worker.py), and the statistics of a ratio measured that way.

Two processes that each load their model once and then take turns on the same examples see the same
machine: a slowdown that lasts longer than a round (another tenant, frequency scaling, a noisy
neighbour) lands on both sides of the ratio of that round. The order alternates (ABBA...) so a trend
within a round pair cancels too. One process computes at a time: the other waits on its stdin.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.launch.environment import child_env
from bench.schema.child import ChildSpec


class RoundError(RuntimeError):
    """A round process died, said something that is not a reply, or took longer than its timeout."""


class RoundWorker:
    """One variant loaded in `python -m bench.child.round_worker`, answering timed rounds.
    `planted=False` keeps the test-only planted slowdown out of it (the reference side)."""

    def __init__(self, spec: ChildSpec, work_dir: Path, name: str, timeout_s: float, planted: bool = True):
        from bench.measure.stream import SLOWDOWN_ENV

        work_dir.mkdir(parents=True, exist_ok=True)
        self.name, self.timeout_s = name, timeout_s
        spec_path, self.log_path = work_dir / f"{name}.rounds.spec.json", work_dir / f"{name}.rounds.log"
        spec_path.write_text(spec.to_json())
        env = child_env(spec.variant.threads, spec.measure.allocator)
        if not planted:
            env.pop(SLOWDOWN_ENV, None)
        cpus = shared_cpus(spec.variant.threads)
        cmd = [sys.executable, "-m", "bench.child.round_worker", str(spec_path)] + (
            [",".join(map(str, cpus))] if cpus else [])
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        self.ready = self._reply()

    @classmethod
    def attach(cls, proc: subprocess.Popen, name: str, log_path: Path, timeout_s: float) -> RoundWorker:
        """A process already running that speaks the same protocol on its stdin/stdout: the measuring worker
        started with --serve-rounds (bench/launch/isolate.py), once it has written its result."""
        self = cls.__new__(cls)
        self.name, self.timeout_s, self.log_path, self.proc = name, timeout_s, log_path, proc
        self.ready = self._reply()
        return self

    def _reply(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while not select.select([self.proc.stdout], [], [], 0.5)[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        else:
            line = self.proc.stdout.readline()
            if line:
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    raise RoundError(f"{self.name}: not a reply: {line[:200]!r} (log: {self.log_path})") from None
        self.close()
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        why = f"exit code {self.proc.returncode}" if self.proc.returncode else f"no reply within {self.timeout_s:g} s"
        raise RoundError(f"{self.name}: {why}: {lines[-1][:300] if lines else 'no output'} (log: {self.log_path})")

    def round(self, start: int, calls: int) -> np.ndarray:
        """Per-call ms of `calls` batch-1 calls on stream[start:], wrapping around."""
        try:
            self.proc.stdin.write(json.dumps({"start": start, "calls": calls}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # _reply says why the process is gone
        return np.asarray(self._reply()["ms"], dtype=np.float64)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()


@dataclass
class Rounds:
    """Per round: the reference's and the variant's median ms per call over the same examples, and their
    ratio (reference / variant: the speedup of that round); `at`: monotonic seconds of each round."""

    reference_ms: list[float] = field(default_factory=list)
    variant_ms: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [r / v for r, v in zip(self.reference_ms, self.variant_ms, strict=True)]


def interleave(reference: RoundWorker, variant: RoundWorker, rounds: int, calls: int, offset: int = 0) -> Rounds:
    """`rounds` rounds of `calls` calls each, order alternating: reference first in even rounds, the variant
    first in odd ones. Round k times examples offset + k*calls ... on both sides."""
    out = Rounds()
    for k in range(rounds):
        start = offset + k * calls
        first, second = (reference, variant) if k % 2 == 0 else (variant, reference)
        # The median call: one preemption inside a round of sub-ms calls would move a mean by tens of %.
        timed = {id(first): np.median(first.round(start, calls))}
        timed[id(second)] = np.median(second.round(start, calls))
        out.reference_ms.append(float(timed[id(reference)]))
        out.variant_ms.append(float(timed[id(variant)]))
        out.at.append(time.monotonic())
    return out


def median_interval(xs, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): the distribution-free interval of the median from order statistics
    (the j-th smallest and j-th largest value, with the largest j whose coverage is still >= `confidence`).
    Needs no assumption about the shape of the distribution; with 6 values it is [min, max] (96.9 %)."""
    from scipy.stats import binom

    s = np.sort(np.asarray(xs, dtype=np.float64))
    n = len(s)
    # [s[j], s[n-1-j]] misses the median only when j+1 or fewer values fall on one side: P = 2 * cdf(j).
    j = 0
    while j + 1 < n - 2 - j and 1 - 2 * binom.cdf(j + 1, n, 0.5) >= confidence:
        j += 1
    coverage = 1 - 2 * binom.cdf(j, n, 0.5)
    return float(np.median(s)), float(s[j]), float(s[n - 1 - j]), float(coverage)


def shared_cpus(threads: int) -> list[int]:
    """The cores both sides of every round run on: the last `threads` of this process's (none when it may
    use no more than that, or the OS cannot pin). Two processes on different cores of a VM see different
    neighbours: measured here, unpinned 1-thread round ratios spread 2x where pinned ones agreed within
    about 5 % in most rounds (docs/measurement.md)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-threads:] if threads < len(cpus) else []
