"""`measure.interleave`: every measured variant's speedup over the reference, in interleaved rounds,
and the reference's drift over the run.

The reference is the teacher in PyTorch FP32 (bench.spec.names.REFERENCE) on the variant's device and
thread count, whether or not the suite measures it as a variant. One reference process per (device,
threads) lives for a whole training seed; each variant's side is its measuring process, which stays
up after its result to serve them (bench/launch/isolate.py run_isolated_serving, bench/launch/rounds.py).
Every reference round is kept, so the run also records how far the machine drifted between its first
and last rounds (run.json `reference_drift`), and the report flags a drift larger than the noise of
those rounds.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from bench.launch.rounds import RoundError, RoundWorker, interleave, median_interval
from bench.scenarios.base import Measured
from bench.schema import Speedup
from bench.schema.child import ChildSpec
from bench.schema.variant import Variant
from bench.spec.measure import InterleaveConfig
from bench.spec.names import REFERENCE, REFERENCE_MODEL
from bench.tasks.onnx_source import onnx_model_file

log = logging.getLogger(__name__)


def reference_dir(built) -> Path | None:
    """The trained teacher's folder (bench.build.pipeline.Built), or None when the teacher is an ONNX file."""
    teacher = built.models.get(REFERENCE_MODEL)
    return None if teacher is None or onnx_model_file(teacher.weights_dir) else teacher.weights_dir


def reference_of(variant: Variant) -> Variant:
    return Variant(model=REFERENCE_MODEL, format=REFERENCE.format, precision=REFERENCE.precision,
                   device=variant.device, threads=variant.threads)


class SpeedupStage:
    """Runs the rounds of one training seed. `reference_dir`: the trained teacher's folder (None when the
    teacher is an ONNX file: there is no PyTorch reference to run). Use as a context manager."""

    def __init__(self, config: InterleaveConfig, reference_dir: Path | None, work_dir: Path, tag: str,
                 timeout_s: float, reference_tag: str | None = None):
        self.config, self.reference_dir, self.work_dir, self.tag = config, reference_dir, work_dir, tag
        # The reference child's files: `reference-<id><reference_tag>.*`; on a cluster each measurement has its
        # own reference child, so the tag names the variant too (several nodes write one shared logs folder).
        self.reference_tag = tag if reference_tag is None else reference_tag
        self.timeout_s = timeout_s
        self.references: dict[str, RoundWorker] = {}
        self.reference_ms: dict[str, list[float]] = {}  # every reference round, in order
        self.calls_done = 0  # successive variants time successive dev examples

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for worker in self.references.values():
            worker.close()

    def _reference(self, ref: Variant, spec: ChildSpec) -> RoundWorker:
        if ref.id not in self.references:
            ref_spec = spec.model_copy(update={"variant": ref,
                                               "artifact_dir": self.reference_dir})
            self.references[ref.id] = RoundWorker(ref_spec, self.work_dir, f"reference-{ref.id}{self.reference_tag}",
                                                  self.timeout_s, planted=False)
            self.reference_ms[ref.id] = []
        return self.references[ref.id]

    def measure(self, measured: Measured) -> Speedup:
        """The variant's Speedup part; on a failure only `speedup_error` (its own row stands). `measured.serving`:
        the variant's measuring process, still loaded and answering rounds (closed here); without it a process
        of its own loads the variant."""
        variant, spec, serving = measured.variant, measured.spec, measured.serving
        ref = reference_of(variant)
        if self.reference_dir is None:
            if serving:
                serving.close()
            return Speedup(speedup_error="no PyTorch FP32 reference: the teacher source is an ONNX file")
        cfg, started = self.config, time.perf_counter()
        worker = serving
        try:
            reference = self._reference(ref, spec)
            worker = worker or RoundWorker(spec, self.work_dir, variant.id + self.tag, self.timeout_s)
            rounds = interleave(reference, worker, cfg.rounds, cfg.calls_per_round, self.calls_done)
        except RoundError as exc:
            self.references.pop(ref.id, None)  # a fresh one next time, should the reference be what died
            return Speedup(speedup_error=str(exc))
        finally:
            if worker:
                worker.close()
        self.calls_done += cfg.rounds * cfg.calls_per_round
        self.reference_ms[ref.id] += rounds.reference_ms
        median, low, high, coverage = median_interval(rounds.ratios)
        return Speedup(speedup_vs_reference=round(median, 4), speedup_ci_low=round(low, 4),
                       speedup_ci_high=round(high, 4), speedup_ci_coverage=round(coverage, 4),
                       speedup_rounds=[round(r, 4) for r in rounds.ratios], speedup_reference=ref.id,
                       speedup_round_calls=cfg.calls_per_round,
                       speedup_wall_s=round(time.perf_counter() - started, 2))

    def drift(self) -> dict:
        """Per reference: its ms per call in the first and last rounds of this seed and the drift between
        them, against the noise of its rounds (run.json `reference_drift`)."""
        return {ref + self.tag: reference_drift(ms) for ref, ms in self.reference_ms.items() if len(ms) >= 6}


def reference_drift(ms: list[float]) -> dict:
    """Median of the first and of the last tenth of the rounds (3 at least) and the change between them.
    The noise floor is three standard errors of that change, from the round-to-round differences (which a
    slow drift barely moves): `flagged` when the drift is larger."""
    x = np.asarray(ms, dtype=np.float64)
    w = max(3, len(x) // 10)
    first, last = float(np.median(x[:w])), float(np.median(x[-w:]))
    round_noise = 1.4826 * float(np.median(np.abs(np.diff(x)))) / math.sqrt(2) / float(np.median(x))
    floor_pct = 100 * 3 * 1.2533 * round_noise * math.sqrt(2 / w)  # 1.2533: a median's SE over a mean's
    drift_pct = 100 * (last / first - 1)
    return {"rounds": len(x), "window": w, "first_ms": round(first, 4), "last_ms": round(last, 4),
            "drift_pct": round(drift_pct, 2), "noise_floor_pct": round(floor_pct, 2),
            "flagged": abs(drift_pct) > floor_pct}
