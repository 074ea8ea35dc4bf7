"""Teacher fine-tuning with the Hugging Face Trainer: a sequence-classification head on the source
encoder, AdamW with linear warmup and decay, length-grouped batches, dev evaluation at the end.

Because this is a plain Trainer, `accelerate launch` / `torchrun` run it on several devices.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments

from bench.data import TaskData, tokenize
from bench.suite import FinetuneConfig

log = logging.getLogger(__name__)


def accuracy_metric(eval_pred) -> dict:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def training_arguments(cfg: FinetuneConfig, work_dir: Path, log_dir: Path, seed: int, **overrides) -> TrainingArguments:
    """The Trainer settings shared by fine-tuning and distillation, all taken from the suite."""
    early = cfg.early_stopping_patience is not None
    args = dict(
        output_dir=str(work_dir),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(64, cfg.batch_size),
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        # SST-2 rows are short (mean 13 tokens, p95 33): grouping by length avoids padding every
        # batch to its longest outlier, which costs ~2.5x compute with random batches.
        group_by_length=True,
        logging_dir=str(log_dir),
        logging_steps=cfg.logging_steps,
        report_to=list(cfg.report_to) or "none",
        eval_strategy="steps" if early else "no",
        eval_steps=cfg.eval_steps if early else None,
        save_strategy="steps" if early else "no",
        save_steps=cfg.eval_steps if early else None,
        save_total_limit=1 if early else None,
        load_best_model_at_end=early,
        metric_for_best_model="accuracy" if early else None,
        save_safetensors=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    args.update(overrides)
    return TrainingArguments(**args)


def callbacks(cfg: FinetuneConfig) -> list:
    return [EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []


def save_trained(trainer: Trainer, tokenizer, out_dir: Path) -> None:
    """Weights as safetensors, tokenizer, training arguments and log history as JSON.
    (Trainer.save_model would also write training_args.bin, a pickle: nothing we ship is one.)"""
    trainer.model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "training_args.json").write_text(trainer.args.to_json_string())
    (out_dir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))


def run_summary(trainer: Trainer, result, cfg: FinetuneConfig, n_rows: int) -> dict:
    metrics = trainer.evaluate()
    return {
        "train_rows": n_rows,
        "train_runtime_s": round(result.metrics["train_runtime"], 2),
        "train_steps": result.global_step,
        "train_loss": round(result.training_loss, 4),
        "dev_accuracy": round(metrics["eval_accuracy"], 4),
        "epochs": cfg.epochs,
    }


def finetune(model, tokenizer, data: TaskData, cfg: FinetuneConfig, max_length: int, seed: int, out_dir: Path) -> dict:
    """Fine-tune `model` on the train split, evaluate on dev, save safetensors + tokenizer to out_dir."""
    train = tokenize(data.splits["train"], tokenizer, max_length)
    dev = tokenize(data.splits["validation"], tokenizer, max_length)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        trainer = Trainer(
            model=model,
            args=training_arguments(cfg, Path(work), out_dir / "logs", seed),
            train_dataset=train,
            eval_dataset=dev,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=accuracy_metric,
            callbacks=callbacks(cfg),
        )
        result = trainer.train()
        info = run_summary(trainer, result, cfg, len(train))
    save_trained(trainer, tokenizer, out_dir)
    log.info("fine-tuned: %s", info)
    return info
