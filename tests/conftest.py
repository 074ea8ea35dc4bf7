"""Shared test setup: real SST-2 from BENCH_DATA_DIR (default ../shared/data next to the repo),
the hand-written fixture otherwise; the hub is never contacted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE_DATA = REPO / "tests" / "fixtures"
_SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not os.environ.get("BENCH_DATA_DIR") and (_SHARED / "sst2" / "train.tsv").is_file():
    os.environ["BENCH_DATA_DIR"] = str(_SHARED)


def real_data_dir() -> Path | None:
    d = os.environ.get("BENCH_DATA_DIR")
    return Path(d) if d and (Path(d) / "sst2" / "train.tsv").is_file() else None


@pytest.fixture
def sst2_dir() -> Path:
    """The real GLUE SST-2 folder; tests that need it skip with the reason when it is absent."""
    d = real_data_dir()
    if d is None:
        pytest.skip("real SST-2 not found: set BENCH_DATA_DIR to a folder holding sst2/train.tsv and dev.tsv")
    return d / "sst2"


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite YAML into tmp_path and return its path."""

    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


TINY_SUITE = """
name: tiny
seed: 7
data: {{source: glue-tsv, path: {data}, max_train_samples: {n_train}, max_eval_samples: {n_eval}, max_length: 48}}
teacher:
  source: tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=800
  finetune: {{epochs: 1, lr: 1.0e-3, batch_size: 16, logging_steps: 5}}
student:
  layers: [1]
  distill: {{epochs: 1, lr: 1.0e-3, batch_size: 16, logging_steps: 5}}
variants:
  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}
measure: {{threads: [1], warmup: 2, min_iterations: 20, min_seconds: 0.1, timeout_s: 300, parity_samples: 16}}
"""


@pytest.fixture
def tiny_suite(write_suite):
    """A complete tiny suite on the hand-written fixture data: seconds to run, whole chain."""

    def make(n_train: int = 160, n_eval: int = 64, **extra) -> Path:
        return write_suite(TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=n_train, n_eval=n_eval))

    return make
