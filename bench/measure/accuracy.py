"""Task scores on every eval split, through the runtime being measured (not through PyTorch).

Predictions are bench.tasks.table.predictions of the runtime's logits (argmax, or the value itself for a
regression head) and scores bench.tasks.scoring.task_metrics: the task's metrics, the first the primary.
"""

from __future__ import annotations

from bench.backends.runtime import Runtime, predict_logits
from bench.tasks.scoring import task_metrics
from bench.tasks.table import EvalSplit, Task, predictions


def evaluate(runtime: Runtime, tokenizer, task: Task, splits: list[EvalSplit], max_length: int,
             batch_size: int = 32) -> dict:
    """task_metrics over `splits` (primary first), each predicted through `runtime`."""
    scored = [(s.name, s.labels, predictions(task, predict_logits(runtime, tokenizer, s.texts, max_length,
                                                                  batch_size))) for s in splits]
    return task_metrics(task, scored)
