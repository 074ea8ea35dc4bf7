"""One variant's measurement: the measuring child, then the scenarios that run across processes.

What it needs travels as one picklable `MeasureJob`, so the same function measures here (`bench run`) or on
a cluster node (`bench run --cluster`, bench/run/cluster.py): there the node opens its own `Stages`, so an
interleaved speedup's reference runs on the same machine as the variant it is compared with.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.launch.isolate import run_isolated_serving
from bench.scenarios.base import Measured
from bench.scenarios.cold_start import ColdStartStage
from bench.scenarios.interleave import SpeedupStage
from bench.scenarios.server import ServerStage
from bench.schema import ColdStart, ServerScenario, Speedup
from bench.schema.child import ChildFailure, ChildResult, ChildSpec
from bench.schema.variant import Variant
from bench.spec.measure import MeasureConfig


@dataclass
class MeasureJob:
    """Everything one variant's measurement needs. `tag` suffixes its files in `logs` (seed, target)."""

    variant: Variant
    spec: ChildSpec
    logs: Path
    tag: str
    seed: int
    measure: MeasureConfig
    reference_dir: Path | None  # the trained teacher: the interleaved speedup's reference


@dataclass
class MeasureOutcome:
    result: ChildResult | ChildFailure
    speedup: Speedup
    server: ServerScenario | None
    cold_start: ColdStart | None
    wall_s: float
    # On a cluster node: its own reference's rounds (by reference id), for the run's drift per node.
    reference_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def scenarios(self) -> tuple[Speedup, ServerScenario | None, ColdStart | None]:
        return self.speedup, self.server, self.cold_start


class Stages(ExitStack):
    """The scenarios a suite asks for that run across processes (interleaved speedup, Server, cold start),
    for the variants of one seed measured by one process; a context manager (the speedup's reference
    child closes on exit)."""

    def __init__(self, measure: MeasureConfig, logs: Path, tag: str, seed: int, reference_dir: Path | None,
                 reference_tag: str | None = None):
        super().__init__()
        self.rounds = None
        if measure.interleave:
            self.rounds = self.enter_context(
                SpeedupStage(measure.interleave, reference_dir, logs, tag, measure.timeout_s, reference_tag))
        self.serving = ServerStage(measure.server, logs, tag, seed) if measure.server else None
        self.cold = ColdStartStage(measure.cold_start, logs, tag, measure.allocator) if measure.cold_start else None

    @classmethod
    def for_job(cls, job: MeasureJob) -> Stages:
        """The stages of one measurement on a cluster node: its own reference child, named after the job."""
        return cls(job.measure, job.logs, job.tag, job.seed, job.reference_dir, f"{job.tag}-for-{job.variant.id}")


def measure_variant(job: MeasureJob, stages: Stages) -> MeasureOutcome:
    """Measure the variant in its own child process, then run the stages it is selected for with the child's
    result (a failed child skips them: its row says why)."""
    variant, measure, t0 = job.variant, job.measure, time.perf_counter()
    rounds = stages.rounds
    # With rounds, the measuring child stays up after its result and serves the variant's side of them.
    result, rounds_side = run_isolated_serving(job.spec, job.logs, variant.id + job.tag, measure.timeout_s,
                                               measure.max_memory_mb, serve_rounds=rounds is not None)
    measured, ok = Measured(variant, job.spec, rounds_side), isinstance(result, ChildResult)
    speedup = rounds.measure(measured) if rounds and ok else Speedup()
    server = stages.serving.measure(measured) if ok and stages.serving and stages.serving.selected(variant.id) \
        else None
    cold_start = stages.cold.measure(measured) if ok and stages.cold and stages.cold.selected(variant.id) else None
    return MeasureOutcome(result, speedup, server, cold_start, time.perf_counter() - t0)
