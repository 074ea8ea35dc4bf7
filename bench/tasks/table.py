"""Tasks by declaration: what a task's examples look like, its labels, and how it is scored.

Every GLUE task is declared here with its real columns, label names and official metrics; a
`custom` task is declared in the suite (text fields, label field and names of a CSV/TSV/JSONL/
parquet file). The rest of bench asks the task: how many labels a head needs, whether it is a
regression, which texts go through the tokenizer (one sentence, or a pair: token_type_ids), which
eval splits it scores, and its primary metric, the one reports, distillation, `bench check` and
`bench compare` judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    text_fields: tuple[str, ...]  # hub column names: one sentence, or a pair
    label_names: tuple[str, ...] | None  # by label id; None: a regression (one output)
    metrics: tuple[str, ...]  # computed on every eval split; the first is the primary metric
    eval_splits: tuple[str, ...] = ("validation",)  # split names as the hub names them; the first is primary
    hub_config: str | None = None  # nyu-mll/glue config name
    label_field: str = "label"  # the column holding the label in the hub dataset or the task's files

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    def id2label(self) -> dict[int, str]:
        return {0: "score"} if self.label_names is None else dict(enumerate(self.label_names))


def _glue(name: str, fields: tuple[str, ...], labels: tuple[str, ...] | None, metrics: tuple[str, ...],
          **extra) -> Task:
    return Task(name, fields, labels, metrics, hub_config=name, **extra)


GLUE_TASKS: dict[str, Task] = {t.name: t for t in (
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation", "accuracy")),
    _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy", "f1")),
    _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
    _glue("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearmanr")),
    _glue("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
          eval_splits=("validation_matched", "validation_mismatched")),
    _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",)),
    _glue("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",)),
    _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
)}
METRIC_NAMES = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")
CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearmanr")


def glue_task(name: str) -> Task:
    """The GLUE task called `name`; an unknown name is a one-line error listing the known ones."""
    from bench.common.errors import BenchError

    if name not in GLUE_TASKS:
        raise BenchError(f"unknown task {name!r} (known: {', '.join(sorted(GLUE_TASKS))})")
    return GLUE_TASKS[name]


@dataclass(frozen=True)
class Texts:
    """The model inputs of some examples: `first` sentences and, for pair tasks, `second` ones."""

    first: list[str]
    second: list[str] | None = None

    def __len__(self) -> int:
        return len(self.first)

    def take(self, index) -> Texts:
        """The examples at `index` (a list or array of positions), in that order."""
        idx = [int(i) for i in index]
        return Texts([self.first[i] for i in idx], None if self.second is None else [self.second[i] for i in idx])

    def head(self, n: int | None) -> Texts:
        return self if n is None else Texts(self.first[:n], None if self.second is None else self.second[:n])

    def example(self, i: int) -> tuple[str, ...]:
        return (self.first[i],) if self.second is None else (self.first[i], self.second[i])

    def char_lengths(self) -> list[int]:
        """Characters per example: a cheap proxy to sort by length before batching."""
        if self.second is None:
            return [len(s) for s in self.first]
        return [len(a) + len(b) for a, b in zip(self.first, self.second, strict=True)]

    def encode(self, tokenizer, **kwargs):
        """tokenizer(first[, second], **kwargs): pairs become one sequence with token_type_ids."""
        if self.second is None:
            return tokenizer(list(self.first), **kwargs)
        return tokenizer(list(self.first), list(self.second), **kwargs)

    def joined(self) -> list[str]:
        """One string per example (both sentences for a pair): for vocabularies and MLM text."""
        if self.second is None:
            return list(self.first)
        return [f"{a} {b}" for a, b in zip(self.first, self.second, strict=True)]


def predictions(task: Task, logits: np.ndarray) -> np.ndarray:
    """Labels (argmax) for classification, the score itself for a regression."""
    logits = np.asarray(logits)
    return logits.reshape(-1).astype(np.float64) if task.is_regression else logits.argmax(-1)


def compute_metrics(task: Task, labels, preds) -> dict[str, float]:
    """The task's metrics (scipy / scikit-learn), and for classification the binary details."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y, p = np.asarray(labels), np.asarray(preds)
    out: dict[str, float] = {}
    for metric in task.metrics:
        if metric == "accuracy":
            out[metric] = float(accuracy_score(y, p))
        elif metric == "f1":  # positive class 1, as GLUE scores MRPC and QQP; macro over 3+ labels
            average = "binary" if task.num_labels == 2 else "macro"
            out[metric] = float(f1_score(y, p, average=average, zero_division=0))
        elif metric == "matthews_correlation":
            out[metric] = float(matthews_corrcoef(y, p))
        elif metric in ("pearson", "spearmanr"):
            # Undefined (NaN) when either side is constant: no correlation to speak of, scored 0.
            varies = np.std(p) > 0 and np.std(y) > 0
            corr = (pearsonr if metric == "pearson" else spearmanr)(y, p)[0] if varies else 0.0
            out[metric] = float(corr)
    return out


@dataclass(frozen=True)
class EvalSplit:
    """One scored split: its name, inputs and labels (int ids, or float scores for a regression)."""

    name: str
    texts: Texts
    labels: list = field(default_factory=list)


def as_texts(texts: Texts | list[str]) -> Texts:
    """Texts as they are, a plain list of sentences as single-sentence Texts."""
    return texts if isinstance(texts, Texts) else Texts(list(texts))
