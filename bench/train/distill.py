"""Task distillation: a student initialised from the teacher's layers (DistilBERT), at random, or from
any pretrained source, trained on the HF Trainer against the teacher (loss terms in bench.train.losses).

The teacher's logits are computed once per (teacher, data, max_length) and cached as their own
artifact, so a logits-only epoch never runs the teacher. Hidden-state and attention terms need the
teacher's internals: the teacher then runs alongside, in eval mode, without gradients. For a
regression task (one output) the soft and hard terms are mean squared errors (bench.train.losses).
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import DataCollatorWithPadding

from bench.common.errors import BenchError
from bench.data.load import TaskData, tokenize
from bench.spec.suite import DistillConfig
from bench.tasks.table import Task, Texts
from bench.train.finetune import (
    EpochSeededTrainer,
    callbacks,
    finetune,
    prepare_model,
    run_summary,
    save_trained,
    task_metrics,
    train_resumable,
    training_arguments,
    training_cost,
    work_folder,
)
from bench.train.footprint import PeakMemory
from bench.train.losses import (
    attention_loss,
    hard_loss,
    hidden_pairs,
    hidden_state_loss,
    soft_target_loss,
    uniform_layer_map,
)

log = logging.getLogger(__name__)

_LAYER_KEY = re.compile(r"^(.*\.encoder\.layer\.)(\d+)(\..*)$")


def init_student_from_teacher(teacher, layers: list[int], field: str = "student.layers"):
    """Same width as the teacher, `len(layers)` encoder layers copied from the listed teacher layers;
    embeddings, pooler and heads copied too. Copies are exact (cloned tensors)."""
    n_teacher = teacher.config.num_hidden_layers
    bad = [i for i in layers if i >= n_teacher]
    if bad:
        raise BenchError(f"{field}: index {bad[0]} is out of range for a {n_teacher}-layer teacher")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    state = {}
    for name in student.state_dict():
        match = _LAYER_KEY.match(name)
        source = f"{match[1]}{layers[int(match[2])]}{match[3]}" if match else name
        state[name] = teacher_state[source].detach().clone()
    student.load_state_dict(state, strict=True)
    return student


def init_random_student(teacher, n_layers: int, seed: int):
    """The teacher's architecture with n_layers layers and fresh weights (the model's own init)."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = n_layers
    torch.manual_seed(seed)
    return type(teacher)(config)


def resolve_layer_map(cfg: DistillConfig, student, teacher) -> list[int]:
    m, n = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    layer_map = cfg.layer_map if cfg.layer_map is not None else uniform_layer_map(m, n)
    if len(layer_map) != m or max(layer_map) >= n:
        raise BenchError(f"distill.layer_map: {layer_map} does not map a {m}-layer student onto a {n}-layer teacher")
    return layer_map


def loss_weights(cfg: DistillConfig) -> dict[str, float]:
    """Each loss term's weight, by term name, in the order the run summary lists them."""
    return {"soft": cfg.alpha_soft, "hard": cfg.alpha_hard, "hidden": cfg.alpha_hidden, "attn": cfg.alpha_attn}


class TermLogging:
    """Trainer mixin: the mean of each loss term since the last log line goes into the Trainer's logs
    (loss_soft, loss_hidden, ...), so the log history shows which term moves."""

    def _record_terms(self, terms: dict[str, torch.Tensor]) -> None:
        # Summed as detached tensors: reading a value (float()) would make every training step
        # wait for the GPU; the host reads them once per log line.
        sums = self.__dict__.setdefault("_term_sums", {})
        for name, value in terms.items():
            total, n = sums.get(name, (0, 0))
            sums[name] = (total + value.detach(), n + 1)

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for name, (total, n) in self.__dict__.pop("_term_sums", {}).items():
                logs[name] = round(float(total) / n, 5)
        super().log(logs, *args, **kwargs)


class DistillationTrainer(TermLogging, EpochSeededTrainer):
    """A Trainer whose training loss mixes the teacher's cached logits (batch key `teacher_logits`),
    the gold labels, and (with `teacher` given) hidden-state and attention terms. Evaluation uses the
    gold-label loss alone, so dev numbers are comparable with plain fine-tuning. `regression`: the
    soft and hard terms are MSEs (one output, no distribution to soften)."""

    def __init__(self, *args, loss_cfg: DistillConfig, teacher=None, layer_map: list[int] | None = None,
                 regression: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cfg, self.layer_map, self.regression = loss_cfg, layer_map, regression
        self.teacher = teacher
        if teacher is not None:
            self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg = self.loss_cfg
        teacher_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        internals = self.teacher is not None and model.training
        want_hidden, want_attn = internals and cfg.alpha_hidden > 0, internals and cfg.alpha_attn > 0
        outputs = model(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
        logits = outputs.logits
        hard = hard_loss(logits, labels, self.regression)
        if not model.training:
            return (hard, outputs) if return_outputs else hard
        terms = {"loss_hard": hard}
        if cfg.alpha_soft > 0:
            terms["loss_soft"] = soft_target_loss(logits, teacher_logits.to(logits.dtype), cfg.temperature,
                                                  self.regression)
        if internals:
            with torch.no_grad():
                t_out = self.teacher(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
            mask = inputs["attention_mask"]
            if want_hidden:
                projections = getattr(self.model, "distill_projection", None)
                terms["loss_hidden"] = hidden_state_loss(
                    outputs.hidden_states, t_out.hidden_states, self.layer_map, mask, cfg.hidden_loss, projections)
            if want_attn:
                terms["loss_attn"] = attention_loss(outputs.attentions, t_out.attentions, self.layer_map, mask)
        weights = loss_weights(cfg)
        loss = sum(weights[name.removeprefix("loss_")] * value for name, value in terms.items())
        self._record_terms(terms)
        return (loss, outputs) if return_outputs else loss


def attach_projection(student, teacher, layer_map: list[int]) -> None:
    """TinyBERT's learned W_h: one linear map per matched hidden state (embeddings + each mapped
    layer). A submodule of the student, so the optimizer trains it and checkpoints carry it; it is
    removed before the student is saved."""
    d_s, d_t = student.config.hidden_size, teacher.config.hidden_size
    student.distill_projection = nn.ModuleList(nn.Linear(d_s, d_t) for _ in hidden_pairs(layer_map))


@torch.inference_mode()
def compute_teacher_logits(
    teacher, tokenizer, texts: Texts | list[str], max_length: int, batch_size: int = 128
) -> np.ndarray:
    """Teacher logits (num_labels per example; one for a regression) for every example, in input
    order; batches sorted by length to avoid padding. Pairs are encoded as pairs (token_type_ids),
    as the student sees them in training; a plain list is single sentences."""
    texts = texts if isinstance(texts, Texts) else Texts(list(texts))
    teacher.eval()
    device = next(teacher.parameters()).device
    order = np.argsort(texts.char_lengths(), kind="stable")
    out = np.zeros((len(texts), teacher.config.num_labels), dtype=np.float32)
    from tqdm.auto import tqdm

    # inference_mode: no autograd graph kept. Same logits to the bit; no faster here (12,000 SST-2 rows: 39.5 s
    # with autograd, 39.9 s without), compute is the cost (docs/cost-model.md).
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="teacher logits", leave=False):
            idx = order[start : start + batch_size]
            enc = texts.take(idx).encode(tokenizer, truncation=True, max_length=max_length,
                                         padding=True, return_tensors="pt").to(device)
            out[idx] = teacher(**enc).logits.float().cpu().numpy()
    return out


def train_subset(n_rows: int, cfg: DistillConfig, subset_seed: int) -> list[int] | None:
    """Row indices of the student's seeded train subset, the same for every training seed."""
    if cfg.max_train_samples is None or cfg.max_train_samples >= n_rows:
        return None
    return sorted(np.random.default_rng(subset_seed).choice(n_rows, cfg.max_train_samples, replace=False).tolist())


def distill(student, tokenizer, data: TaskData, teacher_logits: np.ndarray | None, cfg: DistillConfig,
            max_length: int, seed: int, out_dir: Path, *, teacher=None, work_dir: Path | None = None,
            subset_seed: int = 0, field: str = "distill") -> dict:
    """Train the student (its head made for data.task) with the suite's loss terms; save it
    (safetensors) and return a summary. Only the hard loss switched on: plain fine-tuning through
    the plain Trainer (the baseline)."""
    task: Task = data.task
    rows = train_subset(len(data.splits["train"]), cfg, subset_seed)
    if not (cfg.uses_teacher_logits or cfg.uses_teacher_internals):
        return finetune(student, tokenizer, data, cfg, max_length, seed, out_dir, work_dir, train_rows=rows,
                        field=field) | {"loss": "hard"}
    train = data.splits["train"]
    if cfg.uses_teacher_logits:
        train = train.add_column("teacher_logits", [row.tolist() for row in teacher_logits])
    if rows is not None:
        train = train.select(rows)
    train = tokenize(train, tokenizer, max_length)
    dev = tokenize(data.splits["validation"], tokenizer, max_length)
    layer_map = None
    if cfg.uses_teacher_internals:
        if teacher is None:
            raise BenchError("distill: alpha_hidden/alpha_attn need the teacher model")
        layer_map = resolve_layer_map(cfg, student, teacher)
        if cfg.alpha_hidden > 0 and (cfg.hidden_projection or student.config.hidden_size != teacher.config.hidden_size):
            if not cfg.hidden_projection:
                raise BenchError(f"distill.hidden_projection: student width {student.config.hidden_size} differs "
                                 f"from the teacher's {teacher.config.hidden_size}; set hidden_projection: true")
            torch.manual_seed(seed)
            attach_projection(student, teacher, layer_map)
    student = prepare_model(student, cfg, field, seed)
    memory = PeakMemory()
    with work_folder(work_dir) as work:
        trainer = DistillationTrainer(
            model=student,
            # Keep teacher_logits in the batches (Trainer would drop columns forward() does not take).
            args=training_arguments(cfg, work, out_dir / "logs", seed, task.primary_metric,
                                    remove_unused_columns=False),
            train_dataset=train,
            eval_dataset=dev,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=task_metrics(task),
            callbacks=[*callbacks(cfg), memory],
            loss_cfg=cfg,
            teacher=teacher if cfg.uses_teacher_internals else None,
            layer_map=layer_map,
            regression=task.is_regression,
        )
        try:
            result = train_resumable(trainer, work)
        finally:
            memory.stop()
        info = run_summary(trainer, result, cfg, len(train), task) | training_cost(trainer, cfg, memory)
    if hasattr(student, "distill_projection"):
        del student.distill_projection  # a training aid, not part of the deployed model
    info |= save_trained(trainer, tokenizer, out_dir, data.texts("validation"), max_length)
    info |= {"loss": "+".join(term for term, alpha in loss_weights(cfg).items() if alpha > 0), "layer_map": layer_map}
    log.info("distilled: %s", info)
    return info
