import pytest
from conftest import FIXTURE_DATA

from bench.common.errors import BenchError
from bench.data.load import load_task_data, read_glue_tsv, tokenize
from bench.spec.suite import DataConfig


def test_fixture_loads_with_both_labels():
    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2"), "sst2", seed=0)
    assert len(data.splits["train"]) == 160 and len(data.splits["validation"]) == 64
    assert set(data.labels("train")) == {0, 1}
    assert all(isinstance(s, str) and s for s in data.sentences("validation"))


def test_real_sst2_splits(sst2_dir):
    data = load_task_data(DataConfig(path=sst2_dir), "sst2", seed=0)
    train, dev = data.labels("train"), data.labels("validation")
    assert (len(train), len(dev)) == (67349, 872)
    assert (train.count(0), train.count(1)) == (29780, 37569)
    assert (dev.count(0), dev.count(1)) == (428, 444)


def test_subsets_are_seeded_and_fingerprinted(sst2_dir):
    cfg = DataConfig(path=sst2_dir, max_train_samples=500, max_eval_samples=100)
    a, b = load_task_data(cfg, "sst2", seed=1), load_task_data(cfg, "sst2", seed=1)
    c = load_task_data(cfg, "sst2", seed=2)
    assert a.sentences("train") == b.sentences("train") and a.fingerprint == b.fingerprint
    assert a.sentences("train") != c.sentences("train") and a.fingerprint != c.fingerprint
    assert len(a.sentences("train")) == 500 and len(a.sentences("validation")) == 100
    full_dev = load_task_data(DataConfig(path=sst2_dir), "sst2", seed=1).sentences("validation")
    assert a.sentences("validation") == full_dev[:100]


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"text\tlabel\nfine .\t1\n", "1: header must have columns 'sentence' and 'label'"),
        (b"sentence\tlabel\nfine .\t1\nbad .\t2\n", ":3: label 2 is not one of the task's labels [0, 1]"),
        (b"sentence\tlabel\nfine .\tyes\n", ":2: label 'yes' is not an integer"),
        (b"sentence\tlabel\n", ": no rows after the header (empty split)"),
        (b"sentence\tlabel\nok .\t1\ncaf\xe9 .\t1\n", ":3: not valid UTF-8"),
        (b"sentence\tlabel\nok .\t1\textra\n", ":2: expected 2 tab-separated fields, got 3"),
        (b"", ": empty file"),
    ],
)
def test_malformed_tsv_names_file_and_line(tmp_path, content, expect):
    path = tmp_path / "train.tsv"
    path.write_bytes(content)
    with pytest.raises(BenchError) as info:
        read_glue_tsv(path, (0, 1))
    assert str(info.value).startswith(str(path)) and expect in str(info.value)


def test_missing_split_file(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nok .\t1\n")
    with pytest.raises(BenchError, match="dev.tsv: no such file"):
        load_task_data(DataConfig(path=tmp_path), "sst2", seed=0)


def test_hub_unavailable_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError) as info:
        load_task_data(DataConfig(source="hub", hub_id="nyu-mll/glue-does-not-exist"), "sst2", seed=0)
    assert "hub is offline (HF_HUB_OFFLINE/BENCH_OFFLINE), cannot load nyu-mll/glue-does-not-exist/sst2" in str(info.value)
    assert "\n" not in str(info.value)


def test_tokenize_is_unpadded():
    from bench.tasks.sources import load_for_classification, parse_source

    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2"), "sst2", seed=0)
    _, tok = load_for_classification(parse_source("tiny:vocab=500"), 2, corpus=data.sentences("train"))
    ds = tokenize(data.splits["validation"], tok, max_length=16)
    lengths = {len(x) for x in ds["input_ids"]}
    assert len(lengths) > 1 and max(lengths) <= 16  # no padding, truncation applied
    assert "sentence" not in ds.column_names and "label" in ds.column_names
