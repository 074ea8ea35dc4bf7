"""The measuring child's process boundary, typed and checked at both ends.

`bench run` writes a `ChildSpec` (JSON) for `python -m bench.child.worker`: the variant, the task (label
names or null for a regression, metrics) and its eval splits' texts and labels, primary split first. The
worker validates it
when it reads it and validates its own `ChildResult` before writing it; the parent validates the
result file again when it reads it. A result missing a field the measurement parts require, or
carrying one no part declares, fails there with the field named and becomes a `failed` row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from bench.schema.part import Part
from bench.schema.row import CHILD_PARTS, TaskMetrics
from bench.schema.variant import Variant
from bench.spec.suite import MeasureConfig
from bench.tasks.table import METRIC_NAMES, EvalSplit, Task, Texts, compute_metrics


class ChildTask(Part):
    """What the child needs of the task (bench/tasks/table.py): its labels and how it is scored."""

    name: str
    label_names: list[str] | None = Field(min_length=2)  # by label id; null: a regression (one output)
    metrics: list[Literal[METRIC_NAMES]] = Field(min_length=1)  # the first is the primary metric

    def task(self, splits: list[str], pair: bool) -> Task:
        return Task(self.name, ("text", "text_pair") if pair else ("text",),
                    None if self.label_names is None else tuple(self.label_names), tuple(self.metrics),
                    eval_splits=tuple(splits))


class EvalSet(Part):
    """One eval split, in order: first sentences, second ones for a pair task, labels (int ids, or
    float scores for a regression)."""

    name: str
    first: list[str] = Field(min_length=1)
    second: list[str] | None = None
    labels: list[int | float]

    @model_validator(mode="after")
    def _aligned(self):
        if self.second is not None and len(self.second) != len(self.first):
            raise ValueError(f"{len(self.first)} first but {len(self.second)} second sentences")
        if len(self.labels) != len(self.first):
            raise ValueError(f"{len(self.first)} examples but {len(self.labels)} labels")
        return self

    def split(self) -> EvalSplit:
        return EvalSplit(self.name, Texts(self.first, self.second), self.labels)


class ChildSpec(Part):
    variant: Variant
    artifact_dir: Path  # the folder the format's runtime loads
    task: ChildTask
    eval_sets: list[EvalSet] = Field(min_length=1)  # the primary eval split first: latency runs on its texts
    max_length: int = Field(gt=0)
    measure: MeasureConfig = MeasureConfig()
    # Where the child writes its predictions on the primary split (one label or score per example, in
    # order): the Server scenario compares the served answers with them.
    predictions_path: Path | None = None

    @model_validator(mode="after")
    def _fits_the_task(self):
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets: split names repeat: {names}")
        if len({s.second is None for s in self.eval_sets}) > 1:
            raise ValueError("eval_sets: some splits are sentence pairs and some are not")
        n = None if self.task.label_names is None else len(self.task.label_names)
        for s in self.eval_sets:
            bad = [y for y in s.labels if not isinstance(y, int) or not 0 <= y < n] if n else []
            if bad:
                raise ValueError(f"eval_sets: {s.name}: label {bad[0]!r} is not a label id of task "
                                 f"{self.task.name} (0..{n - 1})")
        return self

    def task_def(self) -> Task:
        return self.task.task([s.name for s in self.eval_sets], self.eval_sets[0].second is not None)

    def splits(self) -> list[EvalSplit]:
        """The eval splits, primary first."""
        return [s.split() for s in self.eval_sets]

    @classmethod
    def task_fields(cls, task: Task) -> dict:
        """The spec's `task` from a bench.tasks.table.Task."""
        return {"name": task.name, "label_names": None if task.label_names is None else list(task.label_names),
                "metrics": list(task.metrics)}

    @classmethod
    def eval_set_fields(cls, split: EvalSplit) -> dict:
        """One of the spec's `eval_sets` from a bench.tasks.table.EvalSplit."""
        return {"name": split.name, "first": list(split.texts.first),
                "second": None if split.texts.second is None else list(split.texts.second),
                "labels": list(split.labels)}

    def to_json(self) -> str:
        return self.model_dump_json()


class ChildResult(*CHILD_PARTS):
    """What a successful child measured: every field of the child's parts (bench.schema.row)."""

    status: Literal["ok"] = "ok"
    # A conversion done at load (PyTorch int8/fp16) knows its own weight size; the parent turns it
    # into size_mb and does not store it.
    size_bytes: int | None = None

    def row_fields(self) -> dict:
        return self.model_dump(exclude_unset=True, exclude={"status", "size_bytes"})


class ChildReport(*(p for p in CHILD_PARTS if p is not TaskMetrics)):
    """What the measuring child writes: its measurements, and its predictions on every eval split (primary
    first). The parent scores them into the result's TaskMetrics (`scored`), so no child imports
    scikit-learn: 1.2 s of every variant's measuring process, 25 s of the main job."""

    status: Literal["ok"] = "ok"
    size_bytes: int | None = None
    eval_predictions: list[list[float]] = Field(min_length=1)  # as deployed: at `score_batch_size`
    score_batch_size: int = Field(gt=0)
    # Where that is 1 because the numerics depend on the batch: the primary split at measure.eval_batch_size.
    batched_predictions: list[float] | None = None
    batched_batch_size: int | None = None

    def scored(self, spec: ChildSpec) -> ChildResult:
        """The ChildResult: these measurements and the task's metrics of these predictions against the
        spec's labels (bench.tasks.scoring.task_metrics). Raises ValueError (a ValidationError, or a
        count of predictions that does not match the spec's splits)."""
        import numpy as np

        from bench.tasks.scoring import task_metrics

        task, splits = spec.task_def(), spec.splits()
        if [len(p) for p in self.eval_predictions] != [len(s.labels) for s in splits]:
            raise ValueError(f"eval_predictions: {[len(p) for p in self.eval_predictions]} predictions for eval "
                             f"splits of {[len(s.labels) for s in splits]} examples")
        dtype = np.float64 if task.is_regression else np.int64
        scored = [(s.name, s.labels, np.asarray(p, dtype=dtype)) for s, p in zip(splits, self.eval_predictions,
                                                                                   strict=True)]
        measured = self.model_dump(exclude_unset=True, exclude={"eval_predictions", "batched_predictions"})
        metrics = task_metrics(task, scored)
        if self.batched_predictions is not None:
            if len(self.batched_predictions) != len(splits[0].labels):
                raise ValueError(f"batched_predictions: {len(self.batched_predictions)} predictions for "
                                 f"{len(splits[0].labels)} examples")
            batched = np.asarray(self.batched_predictions, dtype=dtype)
            metrics["batched_score"] = compute_metrics(task, splits[0].labels, batched)[task.primary_metric]
            if not task.is_regression:
                metrics["batched_label_agreement"] = round(float(np.mean(batched == scored[0][2])), 6)
        return ChildResult.model_validate(measured | metrics)


class ChildFailure(Part):
    status: Literal["failed", "timeout", "memory-limit"]
    error: str


def validation_message(exc: ValidationError, what: str) -> str:
    """One line naming the first bad field: `child result: accuracy: Field required`."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{what}: {where}: {err['msg']}" + (f" ({len(exc.errors())} problems)" if len(exc.errors()) > 1 else "")
