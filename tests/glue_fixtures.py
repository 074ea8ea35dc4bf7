"""Tiny GLUE folders in the real layouts of the official TSV files (see ../shared/data/GLUE-FORMATS.md).

`write_glue_fixture("mnli", tmp_path / "mnli")` writes train.tsv, dev_matched.tsv and dev_mismatched.tsv
with MNLI's real header and word labels; every task likewise (CoLA without a header, MRPC's `Quality`
column, STS-B's float scores, QQP's and MNLI's stray quote characters that only `csv.QUOTE_NONE`
reads). The examples are deterministic and learnable from the words alone: a label is carried by
cue words (single sentences) or by the overlap of the two sentences (pairs), so a tiny model trained
on a fixture scores above chance.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

POSITIVE = ["good", "great", "lovely", "superb", "warm", "bright", "clever", "fine"]
NEGATIVE = ["bad", "awful", "dull", "poor", "weak", "cold", "stale", "grim"]
FILLER = ["the", "film", "plot", "actor", "story", "music", "a", "was", "very", "quite", "scene", "cast"]
OTHER = ["river", "table", "engine", "garden", "window", "planet", "pencil", "bridge", "coffee", "ladder"]

# Label names as the TSV files spell them, by hub id (the order of bench.tasks.table.GLUE_TASKS).
WORDS = {"mnli": ("entailment", "neutral", "contradiction"), "qnli": ("entailment", "not_entailment"),
         "rte": ("entailment", "not_entailment")}
FILES = {"mnli": ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")}


def _rng(task: str, split: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(f"{task}/{split}/{seed}".encode()))


def _sentence(rng: random.Random, cues: list[str], n_cues: int = 2, n_filler: int = 4) -> list[str]:
    words = rng.sample(cues, n_cues) + rng.sample(FILLER, n_filler)
    rng.shuffle(words)
    return words


def _single(rng: random.Random, label: int) -> str:
    """Label 1: positive cue words; label 0: negative ones."""
    return " ".join(_sentence(rng, POSITIVE if label else NEGATIVE)) + " ."


def _pair(rng: random.Random, same: bool) -> tuple[str, str]:
    """same: the second sentence reuses most of the first one's words; otherwise it shares none."""
    first = _sentence(rng, OTHER, 3, 3)
    if same:
        second = rng.sample(first, 4) + rng.sample(FILLER, 1)
        rng.shuffle(second)
    else:
        second = rng.sample([w for w in OTHER if w not in first], 3) + rng.sample(POSITIVE + NEGATIVE, 2)
    return " ".join(first), " ".join(second)


def _labels(rng: random.Random, n: int, k: int) -> list[int]:
    labels = [i % k for i in range(n)]
    rng.shuffle(labels)
    return labels


def _parse(sentence: str) -> str:
    """A stand-in for MNLI's parse columns: the words in brackets."""
    return "( " + " ".join(f"( {w} )" for w in sentence.split()) + " )"


def _rows(task: str, n: int, rng: random.Random, genre: str) -> tuple[list[str] | None, list[list[str]]]:
    """The header (None: CoLA has none) and the rows of one file."""
    if task == "cola":
        return None, [["gj04", str(y), "" if y else "*", _single(rng, y)] for y in _labels(rng, n, 2)]
    if task == "sst2":
        return ["sentence", "label"], [[_single(rng, y), str(y)] for y in _labels(rng, n, 2)]
    if task == "mrpc":
        rows = []
        for y in _labels(rng, n, 2):
            a, b = _pair(rng, same=y == 1)
            rows.append([str(y), str(rng.randrange(10**6)), str(rng.randrange(10**6)), a, b])
        return ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], rows
    if task == "qqp":
        rows = []
        for i, y in enumerate(_labels(rng, n, 2)):
            a, b = _pair(rng, same=y == 1)
            a = f'what is "{a}" ?' if i % 5 == 0 else f"what is {a} ?"  # stray quotes, as in the real file
            rows.append([str(i), str(2 * i + 1), str(2 * i + 2), a, f"how is {b} ?", str(y)])
        return ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], rows
    if task == "stsb":
        rows = []
        for i in range(n):
            a = _sentence(rng, OTHER, 3, 3)
            keep = rng.randrange(0, 6)  # how many of the first sentence's words the second one keeps
            b = rng.sample(a, keep) + rng.sample(POSITIVE + NEGATIVE, 6 - keep)  # the rest: cue words
            rng.shuffle(b)
            rows.append([str(i), "main-captions", "MSRvid", "2012test", str(i), "none", "none",
                         " ".join(a), " ".join(b), f"{5 * keep / 6:.3f}"])
        return ["index", "genre", "filename", "year", "old_index", "source1", "source2",
                "sentence1", "sentence2", "score"], rows
    if task == "mnli":
        return _mnli(rng, n, genre)
    if task in ("qnli", "rte", "wnli"):
        rows = []
        for i, y in enumerate(_labels(rng, n, 2)):
            entails = y == (1 if task == "wnli" else 0)  # WNLI: 1 is entailment; QNLI/RTE: 0 (hub ids)
            a, b = _pair(rng, same=entails)
            if task == "qnli":
                rows.append([str(i), f"which {b} ?", f"{a} .", WORDS[task][y]])
            else:
                rows.append([str(i), f"{a} .", f"{b} .", WORDS[task][y] if task in WORDS else str(y)])
        header = ["index", "question", "sentence", "label"] if task == "qnli" else \
            ["index", "sentence1", "sentence2", "label"]
        return header, rows
    raise ValueError(f"no fixture writer for task {task!r}")


def _mnli(rng: random.Random, n: int, genre: str) -> tuple[list[str], list[list[str]]]:
    """entailment: the hypothesis is made of the premise's words; contradiction: the same with `not`;
    neutral: other words. dev files carry five annotator labels, train one, then gold_label."""
    dev = genre != "train"
    rows = []
    for i, y in enumerate(_labels(rng, n, 3)):
        premise, hypothesis = _pair(rng, same=y != 1)
        if y == 2:
            hypothesis = "not " + hypothesis
        if i % 7 == 0:
            premise = f'he said "{premise}'  # an unbalanced quote: only QUOTE_NONE reads this row right
        label = WORDS["mnli"][y]
        annotators = [label] * (5 if dev else 1)
        rows.append([str(i), str(1000 + i), f"{1000 + i}{'enc'[y]}", genre if dev else "fiction",
                     _parse(premise), _parse(hypothesis), _parse(premise), _parse(hypothesis),
                     premise, hypothesis, *annotators, label])
    header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
              *[f"label{k}" for k in range(1, 6 if dev else 2)], "gold_label"]
    return header, rows


def write_glue_fixture(task: str, folder: Path | str, n_train: int = 48, n_dev: int = 24, seed: int = 0) -> Path:
    """Write `task`'s GLUE files (train.tsv, dev.tsv; MNLI: dev_matched.tsv and dev_mismatched.tsv) into
    `folder` in the real layout; the same arguments write the same bytes. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = FILES.get(task, ("train.tsv", "dev.tsv"))
    genres = {"train.tsv": "train", "dev.tsv": "dev", "dev_matched.tsv": "fiction", "dev_mismatched.tsv": "letters"}
    for name in files:
        split = genres[name]
        header, rows = _rows(task, n_train if split == "train" else n_dev, _rng(task, name, seed), split)
        lines = ([header] if header is not None else []) + rows
        (folder / name).write_text("".join("\t".join(r) + "\n" for r in lines), encoding="utf-8")
    return folder


GLUE_TASK_NAMES = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")


def write_glue_root(root: Path | str, tasks=GLUE_TASK_NAMES, **kwargs) -> Path:
    """A BENCH_DATA_DIR-style folder: one fixture folder per task, named by the task."""
    root = Path(root)
    for task in tasks:
        write_glue_fixture(task, root / task, **kwargs)
    return root
