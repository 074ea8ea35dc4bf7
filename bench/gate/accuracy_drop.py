"""The one accuracy rule of `bench check`, `bench tune` and the report's decision block: the drop of the
task's primary metric between a reference row and a candidate, with a paired percentile-bootstrap interval.

Paired: each resample draws the same eval examples for both models, so what the two get right together
cancels, and the interval is that of the difference, not of two separate scores. A candidate passes a drop
budget when the interval's upper end (the largest drop the data allow at that confidence) is within it; the
point estimate is shown beside it. Rows whose run kept no per-example predictions (written before bench wrote
them, or merged from elsewhere without their logs) are judged on the point, and say so.

The predictions are the accuracy pass's as deployed (`score_batch_size`: batch 1 where the numerics depend
on the batch), the ones the row's `score` was computed from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.schema.child import ChildSpec
from bench.tasks.table import Task, compute_metrics

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000


@dataclass
class Predictions:
    task: Task
    labels: np.ndarray
    predictions: np.ndarray


def _log_file(run_dir: Path, variant_id: str, seed: int | None, suffix: str, target: str | None = None) -> Path:
    """logs/<variant>@seed<N><suffix> (a run of several training seeds), else logs/<variant><suffix>; with
    `@<target>` before the suffix for a row measured on a cluster target (`bench run --cluster`)."""
    logs, at = Path(run_dir) / "logs", f"@{target}" if target else ""
    tagged = logs / f"{variant_id}@seed{seed}{at}{suffix}"
    return tagged if seed is not None and tagged.is_file() else logs / f"{variant_id}{at}{suffix}"


def load_predictions(run_dir: Path, variant_id: str, seed: int | None = None, target: str | None = None
                     ) -> Predictions:
    """A measured variant's accuracy-pass predictions and the eval labels (its child spec) in `run_dir`."""
    spec_file = _log_file(run_dir, variant_id, seed, ".spec.json", target)
    path = _log_file(run_dir, variant_id, seed, ".predictions.json", target)
    if not path.is_file() or not spec_file.is_file():
        raise FileNotFoundError(f"{path}: no predictions (measured before bench wrote them); rerun the variant")
    spec = ChildSpec.model_validate_json(spec_file.read_bytes())
    return Predictions(spec.task_def(), np.asarray(spec.eval_sets[0].labels), np.asarray(json.loads(path.read_text())))


def _metric(task: Task, labels: np.ndarray, preds: np.ndarray) -> float:
    return compute_metrics(task, labels, preds)[task.primary_metric]


def drop_interval(task: Task, labels, reference, candidate, samples: int = BOOTSTRAP_SAMPLES,
                  confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """(point drop, interval low, interval high) of reference minus candidate, in points x100."""
    labels, reference, candidate = (np.asarray(a) for a in (labels, reference, candidate))
    point = 100 * (_metric(task, labels, reference) - _metric(task, labels, candidate))
    idx = np.random.default_rng(seed).integers(0, len(labels), size=(samples, len(labels)))
    if task.primary_metric == "accuracy":  # vectorised: the mean of correct answers per resample
        ref_ok, cand_ok = (reference == labels).astype(float), (candidate == labels).astype(float)
        drops = 100 * (ref_ok[idx].mean(1) - cand_ok[idx].mean(1))
    else:  # F1, Matthews correlation, Pearson: recomputed per resample
        drops = np.array([100 * (_metric(task, labels[i], reference[i]) - _metric(task, labels[i], candidate[i]))
                          for i in idx])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(drops, [tail, 100 - tail])
    return round(float(point), 4), round(float(low), 4), round(float(high), 4)


@dataclass(frozen=True)
class Drop:
    """A drop in points x100: the point estimate and, where both rows kept their predictions, its paired
    interval. `judged` is what a budget compares with its limit: the interval's upper end, else the point."""

    point: float
    low: float | None = None
    high: float | None = None
    confidence: float = CONFIDENCE

    @property
    def judged(self) -> float:
        return self.point if self.high is None else self.high

    @property
    def text(self) -> str:
        if self.high is None:
            return f"{self.point:.2f} (point)"
        return f"{self.point:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def over(self, limit: float) -> str | None:
        """Why this drop fails `limit` (points), or None when it passes."""
        if self.judged <= limit + 1e-9:
            return None
        if self.high is None:
            return f"{self.point:.2f} pts > max {limit:g} pts (point estimate: no predictions for an interval)"
        return (f"{self.point:.2f} pts, its {100 * self.confidence:g}% interval [{self.low:.2f}, {self.high:.2f}] "
                f"reaches above max {limit:g} pts")


class DropJudge:
    """Drops between rows of one run directory, predictions read once per row."""

    def __init__(self, run_dir: Path | None, samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE):
        self.run_dir, self.samples, self.confidence = run_dir, samples, confidence
        self._cache: dict[tuple[str, int | None, str | None], Predictions | None] = {}

    def _predictions(self, row: dict) -> Predictions | None:
        seed, target = row.get("seed"), row.get("target")
        seed = None if seed is None or seed != seed else int(seed)
        target = target if isinstance(target, str) else None  # NaN in a frame of rows without targets
        key = (row["variant_id"], seed, target)
        if key not in self._cache:
            try:
                self._cache[key] = load_predictions(self.run_dir, *key) if self.run_dir else None
            except (FileNotFoundError, ValueError):
                self._cache[key] = None
        return self._cache[key]

    def drop(self, reference: dict, row: dict, point: float) -> Drop:
        """The drop of `row` below `reference` (both result rows); `point` is their scores' difference x100."""
        if self.run_dir is None:
            return Drop(round(point, 4), confidence=self.confidence)
        ref, cand = self._predictions(reference), self._predictions(row)
        if ref is None or cand is None or len(ref.labels) != len(cand.labels) or \
                not np.array_equal(ref.labels, cand.labels):
            return Drop(round(point, 4), confidence=self.confidence)
        p, low, high = drop_interval(cand.task, cand.labels, ref.predictions, cand.predictions, self.samples,
                                     self.confidence)
        return Drop(p, low, high, self.confidence)
