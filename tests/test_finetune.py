import json

from conftest import FIXTURE_DATA

from bench.data.load import load_task_data
from bench.spec.suite import DataConfig, FinetuneConfig
from bench.tasks.sources import load_for_classification, parse_source
from bench.train.finetune import finetune


def _setup():
    data = load_task_data(DataConfig(path=FIXTURE_DATA / "sst2", max_length=32), "sst2", seed=0)
    model, tok = load_for_classification(parse_source("tiny:layers=1,hidden=32,heads=2,intermediate=64,vocab=500"),
                                         2, corpus=data.sentences("train"), seed=0)
    return data, model, tok


def test_finetune_saves_safetensors_tokenizer_and_logs(tmp_path):
    data, model, tok = _setup()
    cfg = FinetuneConfig(epochs=1, lr=1e-3, batch_size=16, logging_steps=2)
    info = finetune(model, tok, data, cfg, max_length=32, seed=0, out_dir=tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "config.json").is_file()
    assert info["train_steps"] == 10 and 0 <= info["dev_accuracy"] <= 1  # 160 rows / 16
    history = json.loads((tmp_path / "train_log.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [2, 4, 6, 8, 10]
    lrs = [h["learning_rate"] for h in history if "learning_rate" in h]
    assert lrs == sorted(lrs, reverse=True)  # linear decay after warmup


def test_early_stopping_on_dev_accuracy(tmp_path):
    data, model, tok = _setup()
    # A learning rate this small never changes a prediction: no improvement after the first
    # evaluation, so patience 1 stops training at the second evaluation (step 4 of 20).
    cfg = FinetuneConfig(epochs=2, lr=1e-12, batch_size=16, early_stopping_patience=1, eval_steps=2, warmup_ratio=0)
    info = finetune(model, tok, data, cfg, max_length=32, seed=0, out_dir=tmp_path)
    assert info["train_steps"] == 4
