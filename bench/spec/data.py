"""The task and data sections of a suite: `task:` (a GLUE name or a custom task declared by its
files' columns) and `data:` (a local GLUE folder, the hub, or CSV/TSV/JSONL/parquet files), and how
the data section is resolved to a concrete source. Part of the suite schema (bench.spec.suite re-exports
every name); split out to keep each module small.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from bench.common.errors import BenchError
from bench.spec.training import PositiveInt, _Strict
from bench.tasks.table import CLASSIFICATION_METRICS, GLUE_TASKS, METRIC_NAMES, REGRESSION_METRICS, Task


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) or value is None else [value]


class DataConfig(_Strict):
    # auto: the local GLUE folder when data.path or BENCH_DATA_DIR is set, data.train/validation files
    # when given, the hub otherwise. glue-tsv: a GLUE TSV folder in the real layout of the task's files.
    # hub: datasets.load_dataset(hub_id, <task>). files: data.train + data.validation (CSV/TSV/JSONL/parquet).
    source: Literal["auto", "glue-tsv", "hub", "files"] = "auto"
    # GLUE TSV folder (train.tsv, dev.tsv; MNLI dev_matched/dev_mismatched.tsv). Default: ${BENCH_DATA_DIR}/<task>.
    path: Annotated[Path, Field(strict=False)] | None = None  # YAML gives a string
    hub_id: str = "nyu-mll/glue"  # used when source is "hub": load_dataset(hub_id, <task>)
    train: Annotated[Path, Field(strict=False)] | None = None  # source files: the train split's file
    validation: Annotated[Path, Field(strict=False)] | None = None  # source files: the (primary) eval split's file
    max_train_samples: PositiveInt | None = None  # seeded random subset; None = all rows (SST-2: 67,349)
    max_eval_samples: PositiveInt | None = None  # first N rows of each eval split; None = all (SST-2: 872)
    max_length: Annotated[int, Field(ge=8, le=512)] = 128

    @model_validator(mode="after")
    def _files_fit_source(self) -> DataConfig:
        given = [name for name in ("train", "validation") if getattr(self, name) is not None]
        if self.source == "files" and len(given) < 2:
            missing = "train" if "train" not in given else "validation"
            raise ValueError(f"{missing}: required with source: files (the {missing} split's file)")
        if self.source in ("glue-tsv", "hub") and given:
            raise ValueError(f"{given[0]}: only used with source: files (this suite says source: {self.source})")
        if self.source == "auto" and len(given) == 1:
            missing = "train" if "train" not in given else "validation"
            raise ValueError(f"{missing}: required with {given[0]} (data files come in pairs: train and validation)")
        if self.path is not None and given:
            raise ValueError("path: a GLUE folder, or train/validation files, not both")
        return self


_TASK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class CustomTaskConfig(_Strict):
    """`task:` as a mapping: a task declared by its files' columns (see bench/tasks/table.py)."""

    name: Annotated[str, Field(pattern=_TASK_NAME)]
    text_fields: Annotated[list[str], Field(min_length=1, max_length=2)]  # one sentence, or a pair
    label_field: str = "label"
    # Label names by id: the files give labels as these names or as ids 0..n-1. Omitted: a regression.
    label_names: Annotated[list[str], Field(min_length=2)] | None = None
    metrics: Annotated[list[Literal[METRIC_NAMES]], Field(min_length=1)] | None = None  # first: primary

    _lists = field_validator("text_fields", "metrics", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @field_validator("label_names", mode="before")
    @classmethod
    def _int_names(cls, v: Any) -> Any:  # label_names: [1, 2, 3, 4, 5] (stars) means the names "1".."5"
        if isinstance(v, list):
            return [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CustomTaskConfig:
        if self.name in GLUE_TASKS:
            raise ValueError(f"name: {self.name!r} is a GLUE task: write task: {self.name}, or pick another name")
        if len(set(self.text_fields)) != len(self.text_fields):
            raise ValueError(f"text_fields: the same column twice in {self.text_fields}")
        if self.label_field in self.text_fields:
            raise ValueError(f"label_field: {self.label_field!r} is also a text field")
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names: repeated name in {self.label_names}")
        allowed = REGRESSION_METRICS if self.label_names is None else CLASSIFICATION_METRICS
        for m in self.metrics or ():
            if m not in allowed:
                kind = "a regression (no label_names)" if self.label_names is None else "a classification"
                raise ValueError(f"metrics: {m} does not score {kind}; use {', '.join(allowed)}")
        if "f1" in (self.metrics or ()) and len(self.label_names) != 2:
            raise ValueError(f"metrics: f1 scores two labels (the positive one: id 1); "
                             f"this task has {len(self.label_names)}")
        if self.metrics is not None and len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics: repeated metric in {self.metrics}")
        return self

    def to_task(self) -> Task:
        default = ("accuracy",) if self.label_names is not None else REGRESSION_METRICS
        return Task(self.name, tuple(self.text_fields), None if self.label_names is None else tuple(self.label_names),
                    tuple(self.metrics) if self.metrics else default, label_field=self.label_field)


def _known_task(name: str) -> str:
    if name not in GLUE_TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(GLUE_TASKS))}; "
                         "or a mapping that declares a custom task)")
    return name


# `task:` is a GLUE task's name or a mapping; the tag only picks the branch (error paths drop it).
TaskSpec = Annotated[
    Annotated[Annotated[str, AfterValidator(_known_task)], Tag("glue")] | Annotated[CustomTaskConfig, Tag("custom")],
    Discriminator(lambda v: "custom" if isinstance(v, dict | CustomTaskConfig) else "glue"),
]


DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")


def resolve_data(data: DataConfig, task: Task, base: Path) -> DataConfig:
    """The data section with a concrete source and absolute paths, checked to exist.

    auto becomes files (data.train/validation given), glue-tsv (data.path or BENCH_DATA_DIR set; the
    folder ${BENCH_DATA_DIR}/<task>) or hub. Relative paths are relative to `base` (the suite's folder)."""
    source = data.source
    env_dir = os.environ.get("BENCH_DATA_DIR", "")
    custom = task.name not in GLUE_TASKS
    if source == "auto":
        if data.train is not None or data.validation is not None:
            source = "files"
        elif custom:
            raise BenchError(f"data.train: custom task {task.name!r} needs data.train and data.validation "
                             "(CSV, TSV, JSONL or parquet files)")
        elif data.path is not None or env_dir:
            source = "glue-tsv"
        else:
            from bench.tasks.sources import hub_offline

            if hub_offline():
                raise BenchError(f"data: no local data folder (set data.path or BENCH_DATA_DIR) and the hub is offline "
                                 f"(HF_HUB_OFFLINE/BENCH_OFFLINE), cannot load {data.hub_id}/{task.hub_config}: "
                                 f"set BENCH_DATA_DIR to a folder holding {task.name}/ (GLUE TSV files), "
                                 f"or data.path to that {task.name} folder")
            source = "hub"
    update: dict = {"source": source}
    if source == "glue-tsv":
        if custom:
            raise BenchError(f"data.source: glue-tsv holds GLUE tasks only; custom task {task.name!r} reads "
                             "data.train and data.validation (source: files)")
        if data.path is None:
            if not env_dir:
                raise BenchError("data.path: not set, and BENCH_DATA_DIR is not defined")
            data_path, hint = Path(env_dir).expanduser() / task.name, " (from BENCH_DATA_DIR)"
        else:
            data_path, hint = (data.path if data.path.is_absolute() else base / data.path), ""
        data_path = data_path.resolve()
        if not data_path.is_dir():
            raise BenchError(f"data.path: no such directory '{data_path}'{hint}")
        update["path"] = data_path
    elif source == "files":
        for name in ("train", "validation"):
            value = getattr(data, name)
            local = (value if value.is_absolute() else base / value).expanduser().resolve()
            if local.suffix.lower() not in DATA_SUFFIXES:
                raise BenchError(f"data.{name}: unknown file type {local.suffix or '(no suffix)'!r} for '{value}' "
                                 f"(known: {', '.join(s[1:] for s in DATA_SUFFIXES)})")
            if not local.is_file():
                raise BenchError(f"data.{name}: no such file '{local}'")
            update[name] = local
    return data.model_copy(update=update)
