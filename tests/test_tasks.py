"""Tasks and their data: every GLUE task from a folder in its real layout (tests/glue_fixtures.py), the
hub's columns, custom tasks from CSV/TSV/JSONL/parquet files, and the one-line errors for each."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import FIXTURE_DATA, REPO
from glue_fixtures import GLUE_TASK_NAMES, WORDS, write_glue_fixture, write_glue_root

from bench.cli import main
from bench.common.errors import BenchError
from bench.data.load import GLUE_TSV, load_task_data, tokenize
from bench.spec.suite import DataConfig, load_suite
from bench.tasks.table import GLUE_TASKS

PAIR = {"mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}


@pytest.mark.parametrize("name", GLUE_TASK_NAMES)
def test_every_glue_task_loads_from_its_real_layout(tmp_path, name):
    task = GLUE_TASKS[name]
    folder = write_glue_fixture(name, tmp_path / name, n_train=30, n_dev=12)
    data = load_task_data(DataConfig(path=folder), name, seed=0)
    assert data.task is task and task.is_pair == (name in PAIR)
    columns = ["text", "text_pair", "label"] if task.is_pair else ["text", "label"]
    extra = ["validation_mismatched"] if name == "mnli" else []
    assert list(data.splits) == ["train", "validation", *extra]
    for split in data.splits:
        assert data.splits[split].column_names == columns
        assert len(data.splits[split]) == (30 if split == "train" else 12)
        texts = data.texts(split)
        assert (texts.second is not None) == task.is_pair and all(isinstance(s, str) and s for s in texts.first)
        assert data.sentences(split) == texts.joined()
        labels = data.labels(split)
        if task.is_regression:
            assert all(isinstance(y, float) and 0 <= y <= 5 for y in labels) and len(set(labels)) > 2
        else:
            assert all(isinstance(y, int) for y in labels) and set(labels) == set(range(task.num_labels))
    evals = data.eval_splits()
    assert [e.name for e in evals] == list(task.eval_splits)
    assert evals[0].labels == data.labels("validation") and len(evals[0].texts) == 12
    again = load_task_data(DataConfig(path=write_glue_fixture(name, tmp_path / "again")), name, seed=0)
    assert again.fingerprint != data.fingerprint  # other sizes, other content
    assert load_task_data(DataConfig(path=folder), name, seed=0).fingerprint == data.fingerprint


def test_fixtures_are_deterministic(tmp_path):
    a, b = write_glue_root(tmp_path / "a"), write_glue_root(tmp_path / "b")
    for name in GLUE_TASK_NAMES:
        for f in sorted((a / name).iterdir()):
            assert f.read_bytes() == (b / name / f.name).read_bytes()


@pytest.mark.parametrize("name", ["mnli", "qnli", "rte"])
def test_word_labels_map_to_the_hub_ids(tmp_path, name):
    folder = write_glue_fixture(name, tmp_path / name)
    data = load_task_data(DataConfig(path=folder), name, seed=0)
    layout = GLUE_TSV[name]
    for split, file in layout.files:
        with open(folder / file, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        words = [r[layout.label_column] for r in rows]
        assert data.labels(split) == [GLUE_TASKS[name].label_names.index(w) for w in words]
        assert data.texts(split).first == [r[layout.text_columns[0]] for r in rows]  # stray quotes kept
    assert GLUE_TASKS[name].label_names == WORDS[name]  # the hub's order
    assert GLUE_TASKS["mnli"].label_names.index("contradiction") == 2


def test_mnli_has_both_dev_files_and_eval_limits_apply_to_each(tmp_path):
    folder = write_glue_fixture("mnli", tmp_path / "mnli", n_train=30, n_dev=20)
    data = load_task_data(DataConfig(path=folder, max_train_samples=10, max_eval_samples=5), "mnli", seed=3)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 10, "validation": 5, "validation_mismatched": 5}
    full = load_task_data(DataConfig(path=folder), "mnli", seed=3)
    for split in ("validation", "validation_mismatched"):
        assert data.texts(split).first == full.texts(split).first[:5]
    assert data.texts("validation").first != data.texts("validation_mismatched").first
    assert [e.name for e in data.eval_splits()] == ["validation_matched", "validation_mismatched"]


def test_sst2_fingerprint_is_unchanged():
    """The content hash keys cached artifacts: SST-2's stays what it was before other tasks existed."""
    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2"), "sst2", seed=0)
    assert data.fingerprint == "1778b4fc202a75af"


def _edit(path, line: int, field: int | None, value: str | None) -> None:
    """Set field `field` of line `line` (1-based) to value; field None: drop the line's last field."""
    lines = path.read_text().split("\n")
    fields = lines[line - 1].split("\t")
    if field is None:
        fields.pop()
    else:
        fields[field] = value
    lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines))


@pytest.mark.parametrize("name,file,line,field,value,expect", [
    ("mnli", "dev_mismatched.tsv", 3, -1, "maybe",
     "dev_mismatched.tsv:3: label 'maybe' is not one of the task's labels ['entailment', 'neutral', 'contradiction']"),
    ("stsb", "train.tsv", 2, -1, "high", "train.tsv:2: score 'high' is not a number"),
    ("stsb", "dev.tsv", 4, -1, "nan", "dev.tsv:4: score 'nan' is not a finite number"),
    ("cola", "dev.tsv", 1, None, None, "dev.tsv:1: expected 4 tab-separated fields, got 3"),
    ("cola", "train.tsv", 5, 1, "yes", "train.tsv:5: label 'yes' is not an integer"),
    ("mrpc", "train.tsv", 1, 0, "Qualty", "train.tsv:1: header must have columns '#1 String', '#2 String' and 'Quality'"),
    ("qqp", "train.tsv", 4, -1, "2", "train.tsv:4: label 2 is not one of the task's labels [0, 1]"),
    ("wnli", "dev.tsv", 2, -1, "entailment", "dev.tsv:2: label 'entailment' is not an integer"),
    ("rte", "train.tsv", 6, -1, "1", "train.tsv:6: label '1' is not one of the task's labels ['entailment', "),
    ("qnli", "dev.tsv", 3, None, None, "dev.tsv:3: expected 4 tab-separated fields, got 3"),
])
def test_bad_glue_rows_name_file_and_line(tmp_path, name, file, line, field, value, expect):
    folder = write_glue_fixture(name, tmp_path / name)
    _edit(folder / file, line, field, value)
    with pytest.raises(BenchError) as info:
        load_task_data(DataConfig(path=folder), name, seed=0)
    msg = str(info.value)
    assert msg.startswith(str(folder / file)) and expect in msg and "\n" not in msg


def test_missing_dev_file_and_mrpc_byte_order_mark(tmp_path):
    folder = write_glue_fixture("mnli", tmp_path / "mnli")
    (folder / "dev_mismatched.tsv").unlink()
    with pytest.raises(BenchError, match=r"dev_mismatched\.tsv: no such file$"):
        load_task_data(DataConfig(path=folder), "mnli", seed=0)
    mrpc = write_glue_fixture("mrpc", tmp_path / "mrpc")
    for f in ("train.tsv", "dev.tsv"):
        (mrpc / f).write_bytes(b"\xef\xbb\xbf" + (mrpc / f).read_bytes())
    assert len(load_task_data(DataConfig(path=mrpc), "mrpc", seed=0).labels("train")) == 48


def test_pair_tasks_tokenize_as_one_sequence_with_segments(tmp_path):
    from bench.tasks.sources import load_for_classification, parse_source

    data = load_task_data(DataConfig(path=write_glue_fixture("rte", tmp_path / "rte")), "rte", seed=0)
    _, tok = load_for_classification(parse_source("tiny:vocab=300"), 2, corpus=data.sentences("train"))
    ds = tokenize(data.splits["validation"], tok, max_length=32)
    assert "label" in ds.column_names and "text" not in ds.column_names and "text_pair" not in ds.column_names
    assert all(0 in t and 1 in t for t in ds["token_type_ids"])  # both sentences, each its own segment


# ---------------------------------------------------------------- the hub

def test_hub_columns_and_splits(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config):
        calls.append((hub_id, config))
        split = lambda n, off: datasets.Dataset.from_dict(  # noqa: E731
            {"premise": [f"p{i + off}" for i in range(n)], "hypothesis": [f"h{i}" for i in range(n)],
             "label": [i % 3 for i in range(n)], "idx": list(range(n))})
        return datasets.DatasetDict(train=split(9, 0), validation_matched=split(4, 100),
                                    validation_mismatched=split(5, 200), test_matched=split(2, 300))

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task_data(DataConfig(source="hub"), "mnli", seed=0)
    assert calls == [("nyu-mll/glue", "mnli")] and data.origin == "hub:nyu-mll/glue/mnli"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 9, "validation": 4, "validation_mismatched": 5}
    assert data.texts("validation").first == ["p100", "p101", "p102", "p103"]
    assert data.texts("validation_mismatched").second[:2] == ["h0", "h1"] and data.labels("train")[:4] == [0, 1, 2, 0]
    assert data.splits["train"].column_names == ["text", "text_pair", "label"]


def test_hub_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError) as info:
        load_task_data(DataConfig(source="hub"), "qnli", seed=0)
    msg = str(info.value)
    assert "hub is offline (HF_HUB_OFFLINE/BENCH_OFFLINE), cannot load nyu-mll/glue/qnli" in msg
    assert "data.path" in msg and "\n" not in msg


SUITE = """
name: t
TASK
data: DATA
teacher: {source: "tiny:layers=1,hidden=16,heads=2,intermediate=32", finetune: {lr: 1.0e-3}}
student: {layers: [0]}
variants:
  - {model: [teacher, student], format: pytorch}
measure: {threads: [1]}
"""


def suite_text(task: str = "task: sst2", data: str = "{}") -> str:
    return SUITE.replace("TASK", task).replace("DATA", data)


def test_auto_uses_the_local_folder_or_the_hub(write_suite, tmp_path, monkeypatch):
    root = write_glue_root(tmp_path / "glue", tasks=["rte"])
    path = write_suite(suite_text("task: rte"))
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    data = load_suite(path).data
    assert (data.source, data.path) == ("glue-tsv", root / "rte")
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    assert load_suite(path).data.source == "hub"  # decided without contacting the hub
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(BenchError) as info:
        load_suite(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: data: no local data folder (set data.path or BENCH_DATA_DIR) and the hub is offline")
    assert "nyu-mll/glue/rte" in msg and "\n" not in msg
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))  # a root without an rte/ folder
    with pytest.raises(BenchError, match=r"data\.path: no such directory '.*/rte' \(from BENCH_DATA_DIR\)"):
        load_suite(path)


def test_offline_without_a_folder_plan_exits_2_and_writes_nothing(write_suite, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results = tmp_path / "results"
    assert main(["plan", str(write_suite(suite_text())), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no local data folder (set data.path or BENCH_DATA_DIR) and the hub is offline" in err
    assert len(err.splitlines()) == 1 and not results.exists()


# ---------------------------------------------------------------- paths from the environment

def test_relative_env_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(FIXTURE_DATA / "sst2", work / "data" / "sst2")
    shutil.copytree(FIXTURE_DATA / "sst2", work / "suites" / "lit" / "sst2")
    (work / "suites").mkdir(exist_ok=True)
    suites = work / "suites"
    (suites / "env.yaml").write_text(suite_text(data="{path: \"${MY_DATA}/sst2\"}"))
    (suites / "dflt.yaml").write_text(suite_text(data="{path: \"${UNSET_BENCH_XYZ:-lit}/sst2\"}"))
    (suites / "lit.yaml").write_text(suite_text(data="{path: lit/sst2}"))
    (suites / "auto.yaml").write_text(suite_text())
    monkeypatch.chdir(work)
    monkeypatch.setenv("MY_DATA", "data")  # relative: from the current directory, as the shell meant it
    monkeypatch.setenv("BENCH_DATA_DIR", "data")
    monkeypatch.delenv("UNSET_BENCH_XYZ", raising=False)
    assert load_suite("suites/env.yaml").data.path == work / "data" / "sst2"
    assert load_suite("suites/auto.yaml").data.path == work / "data" / "sst2"
    # Written in the suite (a literal, or a default): relative to the suite's folder.
    assert load_suite("suites/dflt.yaml").data.path == suites / "lit" / "sst2"
    assert load_suite("suites/lit.yaml").data.path == suites / "lit" / "sst2"
    # The same in a fresh process started from the repository-like folder (what a user types).
    code = "from bench.spec.suite import load_suite; import sys; print(load_suite(sys.argv[1]).data.path)"
    for env_value in ("data", "./data", "../work/data"):
        env = dict(os.environ, BENCH_DATA_DIR=env_value, MY_DATA=env_value)
        for suite in ("suites/env.yaml", "suites/auto.yaml"):
            out = subprocess.run([sys.executable, "-c", code, suite], cwd=work, env=env, capture_output=True,
                                 text=True, check=True).stdout.strip()
            assert out == str(work / "data" / "sst2"), (env_value, suite, out)


def test_shipped_suite_with_a_relative_data_dir(monkeypatch, sst2_dir):
    """`BENCH_DATA_DIR=../shared/data bench plan suites/sst2-cpu.yaml` from the repository root."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("BENCH_DATA_DIR", os.path.relpath(sst2_dir.parent, REPO))
    assert load_suite("suites/sst2-cpu.yaml").data.path == sst2_dir.resolve()
    assert load_suite("suites/smoke.yaml").data.path == sst2_dir.resolve()
    monkeypatch.delenv("BENCH_DATA_DIR")
    assert load_suite("suites/smoke.yaml").data.path == FIXTURE_DATA / "sst2"


# ---------------------------------------------------------------- custom tasks

REVIEWS = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6], "review": ["great fun", "dull", "superb", "awful", "NA", "fine"],
                        "stars": ["pos", "neg", "pos", "neg", "neg", "pos"]})


def _write(frame: pd.DataFrame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")))
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_custom_classification_task_from_files(write_suite, tmp_path, suffix):
    _write(REVIEWS, tmp_path / f"train{suffix}")
    _write(REVIEWS.assign(stars=[1, 0, 1, 0, 0, 1]), tmp_path / f"dev{suffix}")  # ids instead of names
    path = write_suite(suite_text("task: {name: reviews, text_fields: review, label_field: stars, "
                                  "label_names: [neg, pos], metrics: [accuracy, f1]}",
                                  f"{{source: files, train: train{suffix}, validation: dev{suffix}}}"))
    suite = load_suite(path)
    task = suite.task_def
    assert (suite.task_name, task.text_fields, task.label_names, task.metrics) == \
        ("reviews", ("review",), ("neg", "pos"), ("accuracy", "f1"))
    assert suite.data.train == tmp_path / f"train{suffix}"
    data = load_task_data(suite.data, task, suite.seed)
    assert data.labels("train") == [1, 0, 1, 0, 0, 1] == data.labels("validation")
    assert data.texts("train").first == list(REVIEWS["review"]) and data.texts("train").second is None  # "NA" is text
    assert [e.name for e in data.eval_splits()] == ["validation"]
    assert data.origin.startswith("files:")
    # The declaration keys the cache: the same file under other label names is other data.
    swapped = load_suite(write_suite(path.read_text().replace("[neg, pos]", "[pos, neg]"), "b.yaml"))
    assert load_task_data(swapped.data, swapped.task_def, 0).fingerprint != data.fingerprint


def test_custom_pair_regression_task(write_suite, tmp_path):
    frame = pd.DataFrame({"q1": ["a b", "c d", "e f"], "q2": ["a b", "x y", "e g"], "sim": [5.0, 0.0, 2.5]})
    _write(frame, tmp_path / "train.jsonl")
    _write(frame, tmp_path / "dev.parquet")
    suite = load_suite(write_suite(suite_text("task: {name: sim, text_fields: [q1, q2], label_field: sim}",
                                              "{train: train.jsonl, validation: dev.parquet}")))
    task = suite.task_def
    assert task.is_regression and task.is_pair and task.metrics == ("pearson", "spearmanr")
    assert suite.data.source == "files"  # auto: the files were given
    data = load_task_data(suite.data, task, 0)
    assert data.labels("validation") == [5.0, 0.0, 2.5] and data.texts("train").second == ["a b", "x y", "e g"]
    assert data.splits["train"].column_names == ["text", "text_pair", "label"]


def test_glue_task_from_files(write_suite, tmp_path):
    frame = pd.DataFrame({"sentence": ["good", "bad"], "label": ["positive", "negative"]})
    _write(frame, tmp_path / "t.csv")
    suite = load_suite(write_suite(suite_text("task: sst2", "{source: files, train: t.csv, validation: t.csv}")))
    assert load_task_data(suite.data, suite.task_def, 0).labels("train") == [1, 0]


@pytest.mark.parametrize("frame,expect", [
    (REVIEWS.drop(columns="stars"), "no column 'stars' (the task's label_field); columns: id, review"),
    (REVIEWS.rename(columns={"review": "text"}), "no column 'review' (the task's text_fields)"),
    (REVIEWS.assign(stars=["pos", "neg", "meh", "neg", "pos", "pos"]),
     ":4: column 'stars': label 'meh' is not one of the task's labels ['neg', 'pos'] (or an id 0..1)"),
    (REVIEWS.assign(stars=["pos", "neg", "pos", "neg", "pos", "2"]), ":7: column 'stars': label '2' is not one of"),
    (REVIEWS.iloc[:0], "no rows (empty split)"),
])
def test_custom_file_errors_name_file_and_column(write_suite, tmp_path, capsys, frame, expect):
    _write(REVIEWS, tmp_path / "train.csv")
    _write(frame, tmp_path / "dev.csv")
    path = write_suite(suite_text("task: {name: reviews, text_fields: [review], label_field: stars, "
                                  "label_names: [neg, pos]}", "{train: train.csv, validation: dev.csv}"))
    suite = load_suite(path)
    with pytest.raises(BenchError) as info:
        load_task_data(suite.data, suite.task_def, 0)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "dev.csv")) and expect in msg and "\n" not in msg
    results = tmp_path / "results"
    assert main(["plan", str(path), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1 and not results.exists()


@pytest.mark.parametrize("task,data,expect", [
    ("task: sst3", "{}", "task: unknown task 'sst3' (known: cola, mnli, mrpc, qnli, qqp, rte, sst2, stsb, wnli;"),
    ("task: 7", "{}", "task: expected a string, got 7"),
    ("task: {name: r, label_names: [a, b]}", "{}", "task.text_fields: required field is missing"),
    ("task: {name: r, text_fields: [a, b, c]}", "{}", "task.text_fields: List should have at most 2 items"),
    ("task: {name: r, text_fields: a, labels: [x]}", "{}", "task.labels: unknown key"),
    ("task: {name: sst2, text_fields: a}", "{}", "task.name: 'sst2' is a GLUE task"),
    ("task: {name: r, text_fields: a, label_names: [x, y], metrics: [pearson]}", "{}",
     "task.metrics: pearson does not score a classification"),
    ("task: {name: r, text_fields: a, label_names: [x, y, z], metrics: [f1]}", "{}", "task.metrics: f1 scores two"),
    ("task: {name: r, text_fields: a}", "{}", "data.train: custom task 'r' needs data.train and data.validation"),
    ("task: {name: r, text_fields: a}", "{source: hub}", "data.source: hub holds GLUE tasks only"),
    ("task: sst2", "{source: files, train: a.csv}", "data.validation: required with source: files"),
    ("task: sst2", "{source: files, train: a.xlsx, validation: a.csv}",
     "data.train: unknown file type '.xlsx' for 'a.xlsx' (known: csv, tsv, jsonl, parquet)"),
    ("task: sst2", "{train: no.csv, validation: no.csv}", "data.train: no such file"),
    ("task: sst2", "{source: hub, train: a.csv, validation: a.csv}", "data.train: only used with source: files"),
])
def test_task_and_data_declaration_errors(write_suite, tmp_path, capsys, task, data, expect):
    path = write_suite(suite_text(task, data))
    with pytest.raises(BenchError) as info:
        load_suite(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and expect in msg and "\n" not in msg, msg
    results = tmp_path / "results"
    assert main(["plan", str(path), "--results-dir", str(results)]) == 2
    assert expect in capsys.readouterr().err and not results.exists()
