"""Teacher fine-tuning with the Hugging Face Trainer: the task's head (classification, or one output
for a regression) on the source encoder, AdamW with linear warmup and decay, length-grouped batches,
dev evaluation on the task's metrics at the end (and for early stopping, on its primary metric).

Because this is a plain Trainer, `accelerate launch` / `torchrun` run it on several devices.
Checkpoints go to a work folder that outlives the process: a killed build resumes from the last
checkpoint that was completely written (marked by a callback after Trainer finished writing it).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from bench.data.load import TaskData, tokenize
from bench.spec.suite import FinetuneConfig
from bench.tasks.table import Task, compute_metrics, predictions
from bench.train.footprint import PeakMemory
from bench.train.lora import is_peft, merge_adapter, parameter_counts, with_lora

log = logging.getLogger(__name__)


def task_metrics(task: Task):
    """The Trainer's compute_metrics: every metric of the task on the dev split, and accuracy for any
    classification (training info records it as dev_accuracy)."""

    def metrics(eval_pred) -> dict:
        logits, labels = eval_pred
        preds = predictions(task, logits)
        out = compute_metrics(task, labels, preds)
        if not task.is_regression and "accuracy" not in out:
            out["accuracy"] = float((preds == np.asarray(labels)).mean())
        return out

    return metrics


def training_arguments(cfg: FinetuneConfig, work_dir: Path, log_dir: Path, seed: int, metric: str = "accuracy",
                       **overrides) -> TrainingArguments:
    """The Trainer settings shared by fine-tuning and distillation, all taken from the suite; early
    stopping keeps the checkpoint best on `metric` (the task's primary metric, greater is better)."""
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
        optim=cfg.optim,
        # SST-2 rows are short (mean 13 tokens, p95 33): grouping by length avoids padding every
        # batch to its longest outlier, which costs ~2.5x compute with random batches.
        group_by_length=True,
        logging_dir=str(log_dir),
        logging_steps=cfg.logging_steps,
        report_to=list(cfg.report_to) or "none",
        eval_strategy="steps" if early else "no",
        eval_steps=cfg.eval_steps if early else None,
        save_strategy="steps",
        save_steps=cfg.eval_steps if early else cfg.checkpoint_steps,
        # Two: while a new checkpoint is being written, the previous complete one still exists.
        save_total_limit=2,
        load_best_model_at_end=early,
        metric_for_best_model=metric if early else None,
        save_safetensors=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    args.update(overrides)
    return TrainingArguments(**args)


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose shuffle a resumed run can replay.

    The stock sampler shuffles from the global RNG when each epoch starts. A checkpoint holds the
    RNG state at the step it was saved, not at the start of its epoch, so a run resumed in the
    middle of its second or a later epoch drew a different batch order than an uninterrupted run
    and ended with different weights. Epoch 0 keeps the stock draw (the global RNG right after the
    Trainer's set_seed, which a resume reproduces), so a one-epoch run is exactly what the stock
    Trainer trains; later epochs shuffle from `seed + epoch`, as accelerate's SeedableRandomSampler
    does."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by the Trainer (through accelerate) every epoch
        self.epoch = epoch

    def __iter__(self):
        self.generator = None if self.epoch == 0 else torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class EpochSeededTrainer(Trainer):
    """The Trainer with a resumable batch order when group_by_length is on (see the sampler)."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler


COMPLETE_MARKER = "bench-complete"


class MarkCompleteCheckpoints(TrainerCallback):
    """Trainer writes checkpoint-N/ file by file; on_save runs after the last file, so a folder
    holding the marker is complete and one without it was cut short by a kill."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / COMPLETE_MARKER).write_text(str(state.global_step))


def callbacks(cfg: FinetuneConfig) -> list:
    early = [EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []
    return [MarkCompleteCheckpoints(), *early]


def last_complete_checkpoint(work_dir: Path, main_process: bool = True) -> Path | None:
    """The newest marked checkpoint; unmarked (half-written) ones are deleted, never loaded."""
    found = []
    for folder in Path(work_dir).glob("checkpoint-*"):
        step = folder.name.removeprefix("checkpoint-")
        if not step.isdigit():
            continue
        if (folder / COMPLETE_MARKER).is_file():
            found.append((int(step), folder))
        elif main_process:
            log.warning("discarding incomplete checkpoint %s (interrupted while it was written)", folder)
            shutil.rmtree(folder, ignore_errors=True)
    return max(found)[1] if found else None


@contextmanager
def work_folder(work_dir: Path | None):
    """The Trainer's output_dir: the store's persistent work folder, or a temporary one."""
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        yield Path(work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            yield Path(tmp)


def train_resumable(trainer: Trainer, work_dir: Path):
    checkpoint = last_complete_checkpoint(work_dir, trainer.is_world_process_zero())
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
        # train_runtime then covers only the rest of the run: the summary says so.
        trainer.resumed_from_step = int(checkpoint.name.removeprefix("checkpoint-"))
    return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)


def prepare_model(model, cfg: FinetuneConfig, field: str, seed: int):
    """The model training updates: itself (method: full), or wrapped with LoRA adapters (method: lora)."""
    lora = cfg.lora_settings
    return model if lora is None else with_lora(model, lora, field, seed)


def training_cost(trainer: Trainer, cfg: FinetuneConfig, memory: PeakMemory) -> dict:
    """Method, trainable parameters and peak memory of the training loop, for the artifact's info."""
    lora = cfg.lora_settings
    method = {"method": cfg.method} | ({"lora_r": lora.r, "lora_alpha": lora.alpha,
                                        "lora_target_modules": list(lora.target_modules)} if lora else {})
    return method | parameter_counts(trainer.model) | memory.summary()


def save_trained(trainer: Trainer, tokenizer, out_dir: Path, dev=None, max_length: int = 128) -> dict:
    """Weights as safetensors, tokenizer, training arguments and log history as JSON.
    (Trainer.save_model would also write training_args.bin, a pickle: nothing we ship is one.)
    A LoRA model is saved merged, after a parity check on up to 32 `dev` examples (Texts); returns that
    check. Under DDP only the main process writes."""
    if not trainer.is_world_process_zero():
        return {}
    model, parity = trainer.model, {}
    if is_peft(model):
        sample = dev.take(range(min(32, len(dev))))
        batch = sample.encode(tokenizer, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        model, parity = merge_adapter(model, batch.to(next(model.parameters()).device))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "training_args.json").write_text(trainer.args.to_json_string())
    (out_dir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return parity


def run_summary(trainer: Trainer, result, cfg: FinetuneConfig, n_rows: int, task: Task) -> dict:
    """Training info: dev_metric/dev_score (the task's primary metric on dev) and, for classification,
    dev_accuracy too."""
    metrics = trainer.evaluate()
    dev = {"dev_accuracy": round(metrics["eval_accuracy"], 4)} if "eval_accuracy" in metrics else {}
    return {
        "train_rows": n_rows,
        "train_runtime_s": round(result.metrics["train_runtime"], 2),
        "train_steps": result.global_step,
        "train_loss": round(result.training_loss, 4),
        **dev,
        "dev_metric": task.primary_metric,
        "dev_score": round(metrics[f"eval_{task.primary_metric}"], 4),
        "epochs": cfg.epochs,
        "train_s_per_epoch": round(result.metrics["train_runtime"] / cfg.epochs, 2),
        "world_size": trainer.args.world_size,
        "resumed_from_step": getattr(trainer, "resumed_from_step", None),
    }


def finetune(model, tokenizer, data: TaskData, cfg: FinetuneConfig, max_length: int, seed: int, out_dir: Path,
             work_dir: Path | None = None, train_rows=None, field: str = "finetune") -> dict:
    """Fine-tune `model` (its head made for data.task) on the train split (or `train_rows` of it), every
    weight or (cfg.method lora) LoRA adapters merged afterwards; evaluate on dev, save safetensors +
    tokenizer to out_dir. Checkpoints go to work_dir, and a rerun resumes from them. The loss is the
    model's own: cross-entropy, or the MSE for a regression. `field`: the suite's section, for errors."""
    model = prepare_model(model, cfg, field, seed)
    train = data.splits["train"] if train_rows is None else data.splits["train"].select(train_rows)
    train = tokenize(train, tokenizer, max_length)
    dev = tokenize(data.splits["validation"], tokenizer, max_length)
    memory = PeakMemory()
    with work_folder(work_dir) as work:
        trainer = EpochSeededTrainer(
            model=model,
            args=training_arguments(cfg, work, out_dir / "logs", seed, data.task.primary_metric),
            train_dataset=train,
            eval_dataset=dev,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=task_metrics(data.task),
            callbacks=[*callbacks(cfg), memory],
        )
        try:
            result = train_resumable(trainer, work)
        finally:
            memory.stop()
        info = run_summary(trainer, result, cfg, len(train), data.task) | training_cost(trainer, cfg, memory)
    info |= save_trained(trainer, tokenizer, out_dir, data.texts("validation"), max_length)
    log.info("fine-tuned: %s", info)
    return info
