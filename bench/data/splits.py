"""A task's splits as model inputs: a TaskData split's texts, and the eval splits (primary first)."""

from __future__ import annotations

from bench.tasks.table import EvalSplit, Texts


def split_texts(data, split: str) -> Texts:
    """A TaskData split's model inputs (pairs for pair tasks); data without `texts()` has sentences."""
    return data.texts(split) if hasattr(data, "texts") else Texts(data.sentences(split))


def eval_splits(data) -> list[EvalSplit]:
    """The task's eval splits, primary first; data without `eval_splits()` has one: `validation`."""
    if hasattr(data, "eval_splits"):
        return list(data.eval_splits())
    return [EvalSplit("validation", Texts(data.sentences("validation")), data.labels("validation"))]
