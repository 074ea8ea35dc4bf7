"""Accuracy on the whole eval split, through the runtime being measured (not through PyTorch)."""

from __future__ import annotations

import numpy as np

from bench.runtimes import Runtime, predict


def predict_labels(runtime: Runtime, tokenizer, sentences: list[str], max_length: int, batch_size: int = 32
                   ) -> np.ndarray:
    # Length-sorted batches: same predictions as any batching (padding is masked), far less compute.
    order = np.argsort([len(s) for s in sentences], kind="stable")
    preds = np.empty(len(sentences), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = dict(tokenizer([sentences[i] for i in idx], truncation=True, max_length=max_length,
                             padding=True, return_tensors="np"))
        preds[idx] = predict(runtime, enc).argmax(-1)
    return preds


def classification_metrics(labels: list[int], preds: np.ndarray) -> dict:
    # Imported here, not at module level: the measuring child calls this after it has read its
    # peak RSS, so scikit-learn's ~150 MB does not count as the model's memory.
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


def evaluate(runtime: Runtime, tokenizer, sentences: list[str], labels: list[int], max_length: int,
             batch_size: int = 32) -> dict:
    return classification_metrics(labels, predict_labels(runtime, tokenizer, sentences, max_length, batch_size))
