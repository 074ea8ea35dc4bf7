"""A task's examples from a local GLUE TSV folder, the Hugging Face hub, or the suite's own files.

Every source gives the same splits and columns. Splits: `train`, `validation` (the task's primary
eval split: GLUE's dev.tsv, MNLI's dev_matched.tsv) and any further eval split under the hub's name
(MNLI: `validation_mismatched`). Columns: `text`, `text_pair` (pair tasks only) and `label` (an int
id in the hub's label order; a float score for a regression such as STS-B).

GLUE folders are read in the real layout of each task's files (bench.data.load.GLUE_TSV: CoLA has no
header, MRPC's label column is `Quality`, MNLI's `gold_label` is a word, ...), quoting off as GLUE
needs; every bad file or row is one error naming the file and line. Tokenisation uses the model's
fast tokenizer with no padding: the collator pads each batch to its own longest row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from datasets import Dataset, DatasetDict

from bench.common.errors import BenchError
from bench.spec.suite import DataConfig, resolve_data
from bench.tasks.table import GLUE_TASKS, EvalSplit, Task, Texts, glue_task

log = logging.getLogger(__name__)

TASK_LABELS = {"sst2": (0, 1)}  # kept for callers of read_glue_tsv; the task registry is bench.tasks.table


@dataclass(frozen=True)
class TsvLayout:
    """Where a GLUE task's TSV files keep the texts and the label."""

    text_columns: tuple[str, ...]  # header names of the text columns, in the task's text_fields order
    label_column: str
    label_kind: Literal["int", "word", "float"]  # an id, a label name (NLI words), or a score
    files: tuple[tuple[str, str], ...] = (("train", "train.tsv"), ("validation", "dev.tsv"))  # split key, file
    header: tuple[str, ...] | None = None  # the columns of files without a header line (CoLA)


_NLI_FILES = (("train", "train.tsv"), ("validation", "dev_matched.tsv"),
              ("validation_mismatched", "dev_mismatched.tsv"))
GLUE_TSV: dict[str, TsvLayout] = {
    "cola": TsvLayout(("sentence",), "label", "int", header=("source", "label", "original_mark", "sentence")),
    "sst2": TsvLayout(("sentence",), "label", "int"),
    "mrpc": TsvLayout(("#1 String", "#2 String"), "Quality", "int"),
    "qqp": TsvLayout(("question1", "question2"), "is_duplicate", "int"),
    "stsb": TsvLayout(("sentence1", "sentence2"), "score", "float"),
    "mnli": TsvLayout(("sentence1", "sentence2"), "gold_label", "word", files=_NLI_FILES),
    "qnli": TsvLayout(("question", "sentence"), "label", "word"),
    "rte": TsvLayout(("sentence1", "sentence2"), "label", "word"),
    "wnli": TsvLayout(("sentence1", "sentence2"), "label", "int"),
}
TSV_FILES = dict(GLUE_TSV["sst2"].files)  # SST-2's: {"train": "train.tsv", "validation": "dev.tsv"}
TEXT_COLUMNS = ("text", "text_pair")


@dataclass(frozen=True)
class TaskData:
    task: Task
    splits: DatasetDict  # train, validation (the primary eval split), further eval splits by name
    fingerprint: str  # content hash of what was loaded, after subsetting: keys the artifact cache
    origin: str  # where it came from, for run.json

    def texts(self, split: str) -> Texts:
        ds = self.splits[split]
        return Texts(list(ds["text"]), list(ds["text_pair"]) if "text_pair" in ds.column_names else None)

    def labels(self, split: str) -> list:
        values = self.splits[split]["label"]
        return [float(x) for x in values] if self.task.is_regression else [int(x) for x in values]

    def sentences(self, split: str) -> list[str]:
        """One string per example (a pair's two texts joined): vocabularies, MLM text, calibration."""
        return self.texts(split).joined()

    def eval_splits(self) -> list[EvalSplit]:
        """The scored splits, primary first (named as the task names it, e.g. validation_matched)."""
        keys = ["validation", *self.task.eval_splits[1:]]
        return [EvalSplit(name, self.texts(key), self.labels(key))
                for name, key in zip(self.task.eval_splits, keys, strict=True)]


# ---------------------------------------------------------------- GLUE TSV folders

def _decode(path: Path) -> str:
    if not path.is_file():
        raise BenchError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BenchError(f"{path}:{line}: not valid UTF-8 ({exc.reason})") from None
    return text.removeprefix("\ufeff")  # a byte-order mark before the header (MRPC's files can have one)


def _quoted_list(names) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def read_glue_tsv(path: Path, labels: tuple | None, layout: TsvLayout = GLUE_TSV["sst2"]) -> pd.DataFrame:
    """Read one GLUE TSV file in `layout`; a bad file or row is an error naming file and line.

    `labels`: the allowed ids (int labels), the label names by id (word labels), or None (scores).
    Returns columns text[, text_pair], label."""
    text = _decode(path)
    # newline="": split rows on \n / \r\n only, not on the other characters str.splitlines() treats as breaks.
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise BenchError(f"{path}: empty file")
    if layout.header is None:
        header, first = rows[0], 2
        needed = [*layout.text_columns, layout.label_column]
        if any(c not in header for c in needed):
            raise BenchError(f"{path}:1: header must have columns {_quoted_list(needed)}, got {header}")
        body = rows[1:]
    else:
        header, first, body = list(layout.header), 1, rows
    ti = [header.index(c) for c in layout.text_columns]
    li = header.index(layout.label_column)
    columns: list[list[str]] = [[] for _ in ti]
    values: list = []
    for lineno, row in enumerate(body, start=first):
        if not row:
            continue
        if len(row) != len(header):
            raise BenchError(f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(row)}")
        values.append(_tsv_label(row[li], labels, layout.label_kind, f"{path}:{lineno}"))
        for col, i in zip(columns, ti, strict=True):
            col.append(row[i])
    if not values:
        raise BenchError(f"{path}: no rows after the header (empty split)" if layout.header is None
                         else f"{path}: no rows (empty split)")
    return pd.DataFrame({**dict(zip(TEXT_COLUMNS, columns, strict=False)), "label": values})


def _tsv_label(raw: str, labels: tuple | None, kind: str, where: str):
    if kind == "int":
        try:
            label = int(raw)
        except ValueError:
            raise BenchError(f"{where}: label {raw!r} is not an integer") from None
        if labels is not None and label not in labels:
            raise BenchError(f"{where}: label {label} is not one of the task's labels {list(labels)}")
        return label
    if kind == "word":
        if raw not in labels:
            raise BenchError(f"{where}: label {raw!r} is not one of the task's labels {list(labels)}")
        return labels.index(raw)
    try:
        score = float(raw)
    except ValueError:
        raise BenchError(f"{where}: score {raw!r} is not a number") from None
    if not math.isfinite(score):
        raise BenchError(f"{where}: score {raw!r} is not a finite number")
    return score


def _from_tsv(folder: Path, task: Task) -> dict[str, pd.DataFrame]:
    layout = GLUE_TSV[task.name]
    if task.is_regression:
        labels = None
    elif layout.label_kind == "word":
        labels = task.label_names
    else:
        labels = tuple(range(task.num_labels))
    return {split: read_glue_tsv(folder / name, labels, layout) for split, name in layout.files}


# ---------------------------------------------------------------- the hub

def _hub_splits(task: Task) -> dict[str, str]:
    """Our split key -> the hub's split name: train, the primary eval split, the others."""
    return {"train": "train", "validation": task.eval_splits[0], **{s: s for s in task.eval_splits[1:]}}


def _from_hub(hub_id: str, task: Task) -> dict[str, pd.DataFrame]:
    from bench.tasks.sources import hub_offline

    fix = ("point data.path (or BENCH_DATA_DIR, a folder holding <task>/) at a local GLUE folder "
           "(data.source: glue-tsv or auto)")
    if task.name not in GLUE_TASKS:
        raise BenchError(f"data.source: hub holds GLUE tasks only; custom task {task.name!r} reads "
                         "data.train and data.validation (source: files)")
    if hub_offline():
        raise BenchError(f"data.source: hub is offline (HF_HUB_OFFLINE/BENCH_OFFLINE), cannot load "
                         f"{hub_id}/{task.hub_config}; {fix}")
    from datasets import load_dataset

    try:
        ds = load_dataset(hub_id, task.hub_config)
    except Exception as exc:  # the hub raises many types: connection, offline mode, not found
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"data.source: cannot load {hub_id}/{task.hub_config} from the hub ({first}); {fix}") from None
    frames = {}
    for key, split in _hub_splits(task).items():
        if split not in ds:
            raise BenchError(f"data.source: {hub_id}/{task.hub_config} has no split {split!r} "
                             f"(it has: {', '.join(ds)})")
        frame = ds[split].to_pandas()
        frames[key] = _columns(frame, task, f"{hub_id}/{task.hub_config}[{split}]", None)
    return frames


# ---------------------------------------------------------------- the suite's own files

def read_table(path: Path) -> pd.DataFrame:
    """A CSV, TSV (quoting off, as in GLUE), JSONL or parquet file, by suffix; text stays text."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                               quoting=csv.QUOTE_NONE)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # pandas/pyarrow parse errors: one line, naming the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: cannot read as {suffix[1:].upper()} ({first})") from None
    raise BenchError(f"{path}: unknown file type {suffix or '(no suffix)'!r} (known: csv, tsv, jsonl, parquet)")


def _row_name(path: Path, index: int) -> str:
    """How an error names row `index` (0-based, after the header) of a data file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"{path}:{index + 2}"  # line 1 is the header (a quoted multi-line field shifts this)
    if suffix == ".jsonl":
        return f"{path}:{index + 1}"
    return f"{path}: row {index + 1}"


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _label_ids(values: pd.Series, names: tuple[str, ...]) -> pd.Series:
    """Labels given as names or as ids 0..n-1 (a name wins: label_names [1, 2, 3] reads 1 as id 0)."""
    lookup = {str(i): i for i in range(len(names))} | {name: i for i, name in enumerate(names)}

    def key(v):
        if isinstance(v, bool) or _is_missing(v):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return values.map(lambda v: lookup.get(key(v)))


def _columns(frame: pd.DataFrame, task: Task, source: str, path: Path | None) -> pd.DataFrame:
    """A table with the task's text and label columns -> text[, text_pair], label (ids or floats)."""
    def where(i: int) -> str:
        return _row_name(path, i) if path is not None else f"{source}: row {i + 1}"

    for role, col in [*(("text_fields", c) for c in task.text_fields), ("label_field", task.label_field)]:
        if col not in frame.columns:
            raise BenchError(f"{source}: no column {col!r} (the task's {role}); "
                             f"columns: {', '.join(map(str, frame.columns))}")
    if len(frame) == 0:
        raise BenchError(f"{source}: no rows (empty split)")
    out = {}
    for name, col in zip(TEXT_COLUMNS, task.text_fields, strict=False):
        values = frame[col]
        bad = values.map(_is_missing)
        if bad.any():
            raise BenchError(f"{where(int(bad.to_numpy().argmax()))}: column {col!r}: no text")
        out[name] = values.map(lambda v: v if isinstance(v, str) else str(v)).tolist()
    raw = frame[task.label_field].reset_index(drop=True)
    if task.is_regression:
        scores = pd.to_numeric(raw.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
        bad = ~scores.map(lambda x: math.isfinite(x) if not _is_missing(x) else False).astype(bool)
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise BenchError(f"{where(i)}: column {task.label_field!r}: score {raw[i]!r} is not a number")
        out["label"] = scores.astype("float64").tolist()
    else:
        ids = _label_ids(raw, task.label_names)
        bad = ids.isna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise BenchError(f"{where(i)}: column {task.label_field!r}: label {raw[i]!r} is not one of the "
                             f"task's labels {list(task.label_names)} (or an id 0..{task.num_labels - 1})")
        out["label"] = ids.astype("int64").tolist()
    return pd.DataFrame(out)


def _from_files(cfg: DataConfig, task: Task) -> dict[str, pd.DataFrame]:
    return {split: _columns(read_table(Path(path)), task, str(path), Path(path))
            for split, path in (("train", cfg.train), ("validation", cfg.validation))}


# ---------------------------------------------------------------- loading

def _as_task(task) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return glue_task(task)
    return task.to_task()  # a suite's custom task declaration


def load_task_data(cfg: DataConfig, task: Task | str, seed: int) -> TaskData:
    """The task's splits from `cfg` (a suite's data section; an unresolved one resolves against the
    current directory); max_train_samples: a subset drawn with `seed`; max_eval_samples: the first N
    rows of each eval split."""
    task = _as_task(task)
    cfg = resolve_data(cfg, task, Path.cwd())
    if cfg.source == "glue-tsv":
        frames, origin = _from_tsv(Path(cfg.path), task), f"glue-tsv:{cfg.path}"
    elif cfg.source == "files":
        frames, origin = _from_files(cfg, task), f"files:{cfg.train},{cfg.validation}"
    else:
        frames, origin = _from_hub(cfg.hub_id, task), f"hub:{cfg.hub_id}/{task.hub_config}"
    train = frames.pop("train")
    if cfg.max_train_samples and cfg.max_train_samples < len(train):
        train = train.sample(n=cfg.max_train_samples, random_state=seed).reset_index(drop=True)
    evals = {k: (f.iloc[: cfg.max_eval_samples].reset_index(drop=True)
                 if cfg.max_eval_samples and cfg.max_eval_samples < len(f) else f) for k, f in frames.items()}
    digest = hashlib.sha256()
    for frame in (train, *evals.values()):  # train, validation: the same hash as before other tasks existed
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    if GLUE_TASKS.get(task.name) != task:  # a custom task: its declaration (label names, ids) keys it too
        digest.update(repr(task).encode())
    splits = DatasetDict({"train": Dataset.from_pandas(train, preserve_index=False),
                          **{k: Dataset.from_pandas(f, preserve_index=False) for k, f in evals.items()}})
    log.info("data: %s %s", origin, " ".join(f"{k}={len(v)}" for k, v in splits.items()))
    return TaskData(task=task, splits=splits, fingerprint=digest.hexdigest()[:16], origin=origin)


def tokenize(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    """Token ids without padding (a pair task's two texts as one sequence, with token_type_ids);
    batches are padded dynamically by the collator."""
    pair = "text_pair" in ds.column_names

    def encode(batch):
        if pair:
            return tokenizer(batch["text"], batch["text_pair"], truncation=True, max_length=max_length)
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return ds.map(encode, batched=True, remove_columns=[c for c in TEXT_COLUMNS if c in ds.column_names],
                  desc="tokenize")
