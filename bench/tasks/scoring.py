"""A task's row fields from its predictions: the primary metric and score, every metric on every eval
split, and for classification accuracy (binary: precision, recall, F1, the confusion matrix).

The parent scores the measuring child's predictions with these (bench.schema.child.ChildReport); no
measuring child loads scikit-learn (1.2 s, ~150 MB), so it is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from bench.tasks.table import Task, compute_metrics


def classification_metrics(labels: list[int], preds: np.ndarray) -> dict:
    """Binary classification: accuracy and the positive class's precision, recall, F1, confusion matrix."""
    # Imported here: the parent scores the child's predictions (bench.schema.child.ChildReport), and no
    # measuring child loads scikit-learn (1.2 s, ~150 MB).
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y = np.asarray(labels)
    precision, recall, f1, _ = precision_recall_fscore_support(y, preds, average="binary", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, preds)),
        "precision_score": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": confusion_matrix(y, preds, labels=[0, 1]).tolist(),  # [[tn, fp], [fn, tp]]
        "eval_samples": int(len(y)),
    }


def task_metrics(task: Task, scored: list[tuple[str, list, np.ndarray]]) -> dict:
    """Row fields from (split name, labels, predictions) per eval split, the primary split first:
    `metric`, `score` and `eval_samples` (primary split), `metrics` (every metric on every split:
    `<metric>` on the primary, `<metric>@<split>` on the others); classification adds `accuracy`, binary
    classification precision, recall, F1 and the confusion matrix."""
    from sklearn.metrics import accuracy_score

    metrics: dict[str, float] = {}
    for i, (name, labels, preds) in enumerate(scored):
        for metric, value in compute_metrics(task, labels, preds).items():
            metrics[metric if i == 0 else f"{metric}@{name}"] = value
    _, labels, preds = scored[0]
    row: dict = {}
    if task.num_labels == 2:
        row |= classification_metrics(labels, preds)
    elif not task.is_regression:
        row["accuracy"] = float(accuracy_score(np.asarray(labels), preds))
    return row | {"metric": task.primary_metric, "score": metrics[task.primary_metric], "metrics": metrics,
                  "eval_samples": int(len(labels))}
