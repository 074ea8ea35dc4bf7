"""GLUE SST-2 from a local GLUE TSV folder or the Hugging Face hub, with the same splits and labels.

Splits are named as in `datasets`: `train` and `validation` (GLUE's dev.tsv). Columns: `sentence`
(str) and `label` (int, 0 negative / 1 positive). Tokenisation uses the model's fast tokenizer with
no padding: the collator pads each batch to its own longest row (dynamic padding).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from datasets import Dataset, DatasetDict

from bench.errors import BenchError
from bench.suite import DataConfig

log = logging.getLogger(__name__)

TASK_LABELS = {"sst2": (0, 1)}
TSV_FILES = {"train": "train.tsv", "validation": "dev.tsv"}


@dataclass(frozen=True)
class TaskData:
    splits: DatasetDict
    fingerprint: str  # content hash of what was loaded, after subsetting: keys the artifact cache
    origin: str  # where it came from, for run.json

    def sentences(self, split: str) -> list[str]:
        return list(self.splits[split]["sentence"])

    def labels(self, split: str) -> list[int]:
        return [int(x) for x in self.splits[split]["label"]]


def read_glue_tsv(path: Path, labels: tuple[int, ...]) -> pd.DataFrame:
    """Read a GLUE `sentence<TAB>label` file; a bad file or row is an error naming file and line."""
    if not path.is_file():
        raise BenchError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BenchError(f"{path}:{line}: not valid UTF-8 ({exc.reason})") from None
    # newline="": split rows on \n / \r\n only, not on the other characters str.splitlines() treats as breaks.
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise BenchError(f"{path}: empty file")
    header = rows[0]
    if "sentence" not in header or "label" not in header:
        raise BenchError(f"{path}:1: header must have columns 'sentence' and 'label', got {header}")
    si, li = header.index("sentence"), header.index("label")
    sentences, values = [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise BenchError(f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(row)}")
        try:
            label = int(row[li])
        except ValueError:
            raise BenchError(f"{path}:{lineno}: label {row[li]!r} is not an integer") from None
        if label not in labels:
            raise BenchError(f"{path}:{lineno}: label {label} is not one of the task's labels {list(labels)}")
        sentences.append(row[si])
        values.append(label)
    if not sentences:
        raise BenchError(f"{path}: no rows after the header (empty split)")
    return pd.DataFrame({"sentence": sentences, "label": values})


def _from_tsv(folder: Path, labels: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    return {split: read_glue_tsv(folder / name, labels) for split, name in TSV_FILES.items()}


def _from_hub(hub_id: str, task: str) -> dict[str, pd.DataFrame]:
    from datasets import load_dataset

    from bench.models import hub_offline

    if hub_offline():
        raise BenchError(f"data.source: hub is offline (HF_HUB_OFFLINE/BENCH_OFFLINE), cannot load {hub_id}/{task}; "
                         "set data.source: glue-tsv and data.path (or BENCH_DATA_DIR) to a local GLUE folder")

    try:
        ds = load_dataset(hub_id, task)
    except Exception as exc:  # the hub raises many types: connection, offline mode, not found
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(
            f"data.source: cannot load {hub_id}/{task} from the hub ({first}); "
            "set data.source: glue-tsv and data.path (or BENCH_DATA_DIR) to a local GLUE folder"
        ) from None
    return {split: ds[split].to_pandas()[["sentence", "label"]] for split in TSV_FILES}


def load_task_data(cfg: DataConfig, task: str, seed: int) -> TaskData:
    labels = TASK_LABELS[task]
    if cfg.source == "glue-tsv":
        frames, origin = _from_tsv(Path(cfg.path), labels), f"glue-tsv:{cfg.path}"
    else:
        frames, origin = _from_hub(cfg.hub_id, task), f"hub:{cfg.hub_id}/{task}"
    train, dev = frames["train"], frames["validation"]
    if cfg.max_train_samples and cfg.max_train_samples < len(train):
        train = train.sample(n=cfg.max_train_samples, random_state=seed).reset_index(drop=True)
    if cfg.max_eval_samples and cfg.max_eval_samples < len(dev):
        dev = dev.iloc[: cfg.max_eval_samples].reset_index(drop=True)
    digest = hashlib.sha256()
    for frame in (train, dev):
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    splits = DatasetDict(
        train=Dataset.from_pandas(train, preserve_index=False),
        validation=Dataset.from_pandas(dev, preserve_index=False),
    )
    log.info("data: %s train=%d validation=%d", origin, len(train), len(dev))
    return TaskData(splits=splits, fingerprint=digest.hexdigest()[:16], origin=origin)


def tokenize(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    """Token ids without padding; batches are padded dynamically by the collator."""

    def encode(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=max_length)

    return ds.map(encode, batched=True, remove_columns=["sentence"], desc="tokenize")
