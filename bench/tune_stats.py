"""The accuracy constraint of `bench tune`: the drop of the task's primary metric between the reference
(teacher, PyTorch FP32) and a candidate, with a paired percentile-bootstrap interval.

Paired: each resample draws the same eval examples for both models, so what the two get right together
cancels, and the interval is that of the difference, not of two separate scores. A candidate passes when
the interval's upper end (the largest drop the data allow at that confidence) is within the bar; a point
estimate inside the bar with an interval reaching past it fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.schema.child import ChildSpec
from bench.tasks import Task, compute_metrics


@dataclass
class Predictions:
    task: Task
    labels: np.ndarray
    predictions: np.ndarray


def load_predictions(run_dir: Path, variant_id: str) -> Predictions:
    """A measured variant's accuracy-pass predictions and the eval labels (its child spec) in `run_dir`."""
    logs = Path(run_dir) / "logs"
    spec = ChildSpec.model_validate_json((logs / f"{variant_id}.spec.json").read_bytes())
    path = logs / f"{variant_id}.predictions.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions (measured before bench wrote them); rerun the variant")
    return Predictions(spec.task_def(), np.asarray(spec.eval_sets[0].labels), np.asarray(json.loads(path.read_text())))


def _metric(task: Task, labels: np.ndarray, preds: np.ndarray) -> float:
    return compute_metrics(task, labels, preds)[task.primary_metric]


def drop_interval(task: Task, labels, reference, candidate, samples: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> tuple[float, float, float]:
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
