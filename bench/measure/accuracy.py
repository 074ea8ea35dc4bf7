"""Task scores on every eval split, through the runtime being measured (not through PyTorch).

Predictions are bench.tasks.predictions of the runtime's logits (argmax, or the value itself for a
regression head) and scores bench.tasks.compute_metrics: the task's metrics, the first the primary.
"""

from __future__ import annotations

import numpy as np

from bench.runtimes import Runtime, predict
from bench.tasks import EvalSplit, Task, Texts, compute_metrics, predictions


def as_texts(texts: Texts | list[str]) -> Texts:
    """Texts as they are, a plain list of sentences as single-sentence Texts."""
    return texts if isinstance(texts, Texts) else Texts(list(texts))


def split_texts(data, split: str) -> Texts:
    """A TaskData split's model inputs (pairs for pair tasks); data without `texts()` has sentences."""
    return data.texts(split) if hasattr(data, "texts") else Texts(data.sentences(split))


def eval_splits(data) -> list[EvalSplit]:
    """The task's eval splits, primary first; data without `eval_splits()` has one: `validation`."""
    if hasattr(data, "eval_splits"):
        return list(data.eval_splits())
    return [EvalSplit("validation", Texts(data.sentences("validation")), data.labels("validation"))]


def predict_logits(runtime: Runtime, tokenizer, texts: Texts | list[str], max_length: int, batch_size: int = 32
                   ) -> np.ndarray:
    """Logits for every example, in order: [n, num_labels] (num_labels 1 for a regression head)."""
    texts = as_texts(texts)
    # Length-sorted batches: same logits as any batching (padding is masked), far less compute.
    order = np.argsort(texts.char_lengths(), kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = dict(texts.take(idx).encode(tokenizer, truncation=True, max_length=max_length, padding=True,
                                          return_tensors="np"))
        logits = np.asarray(predict(runtime, enc))
        if out is None:
            out = np.empty((len(texts), *logits.shape[1:]), dtype=logits.dtype)
        out[idx] = logits
    return out


def predict_labels(runtime: Runtime, tokenizer, texts: Texts | list[str], max_length: int, batch_size: int = 32
                   ) -> np.ndarray:
    """Argmax labels (classification heads)."""
    return predict_logits(runtime, tokenizer, texts, max_length, batch_size).argmax(-1)


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


def evaluate(runtime: Runtime, tokenizer, task: Task, splits: list[EvalSplit], max_length: int,
             batch_size: int = 32) -> dict:
    """task_metrics over `splits` (primary first), each predicted through `runtime`."""
    scored = [(s.name, s.labels, predictions(task, predict_logits(runtime, tokenizer, s.texts, max_length,
                                                                  batch_size))) for s in splits]
    return task_metrics(task, scored)
