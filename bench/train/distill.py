"""DistilBERT-style student: every other teacher layer, trained against the teacher's soft labels.

loss = alpha_soft * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + alpha_hard * CE(y, z_s)

(Hinton et al. 2015; the T^2 factor keeps the soft-label gradients on the same scale as the hard
ones when T changes.) The teacher's logits are computed once per (teacher, data, max_length) and
cached as their own artifact, so a student epoch never runs the teacher.
"""

from __future__ import annotations

import copy
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer

from bench.data import TaskData, tokenize
from bench.errors import BenchError
from bench.suite import DistillConfig
from bench.train.finetune import accuracy_metric, callbacks, run_summary, save_trained, training_arguments

log = logging.getLogger(__name__)

_LAYER_KEY = re.compile(r"^(.*\.encoder\.layer\.)(\d+)(\..*)$")


def init_student_from_teacher(teacher, layers: list[int]):
    """Same width as the teacher, `len(layers)` encoder layers copied from the listed teacher layers;
    embeddings, pooler and classifier copied too. Copies are exact (cloned tensors)."""
    n_teacher = teacher.config.num_hidden_layers
    bad = [i for i in layers if i >= n_teacher]
    if bad:
        raise BenchError(f"student.layers: index {bad[0]} is out of range for a {n_teacher}-layer teacher")
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


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha_soft: float,
    alpha_hard: float,
) -> torch.Tensor:
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * temperature**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha_soft * soft + alpha_hard * hard


class DistillationTrainer(Trainer):
    """A Trainer whose loss mixes the teacher's soft labels (batch key `teacher_logits`) with the
    gold labels. Batches without teacher logits (dev evaluation) use the hard loss alone."""

    def __init__(self, *args, temperature: float, alpha_soft: float, alpha_hard: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha_soft, self.alpha_hard = temperature, alpha_soft, alpha_hard

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        if teacher_logits is None:
            loss = F.cross_entropy(outputs.logits, labels)
        else:
            loss = distillation_loss(
                outputs.logits, teacher_logits.to(outputs.logits.dtype), labels,
                self.temperature, self.alpha_soft, self.alpha_hard,
            )
        return (loss, outputs) if return_outputs else loss


@torch.inference_mode()
def compute_teacher_logits(
    teacher, tokenizer, sentences: list[str], max_length: int, batch_size: int = 128
) -> np.ndarray:
    """Teacher logits for every sentence, in input order; batches sorted by length to avoid padding."""
    teacher.eval()
    device = next(teacher.parameters()).device
    order = np.argsort([len(s) for s in sentences], kind="stable")
    out = np.zeros((len(sentences), teacher.config.num_labels), dtype=np.float32)
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(order), batch_size), desc="teacher logits", leave=False):
        idx = order[start : start + batch_size]
        enc = tokenizer([sentences[i] for i in idx], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(device)
        out[idx] = teacher(**enc).logits.float().cpu().numpy()
    return out


def distill(student, tokenizer, data: TaskData, teacher_logits: np.ndarray, cfg: DistillConfig,
            max_length: int, seed: int, out_dir: Path) -> dict:
    train = data.splits["train"].add_column("teacher_logits", [row.tolist() for row in teacher_logits])
    train = tokenize(train, tokenizer, max_length)
    dev = tokenize(data.splits["validation"], tokenizer, max_length)
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as work:
        trainer = DistillationTrainer(
            model=student,
            # Keep teacher_logits in the batches (Trainer would drop columns forward() does not take).
            args=training_arguments(cfg, Path(work), out_dir / "logs", seed, remove_unused_columns=False),
            train_dataset=train,
            eval_dataset=dev,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=accuracy_metric,
            callbacks=callbacks(cfg),
            temperature=cfg.temperature,
            alpha_soft=cfg.alpha_soft,
            alpha_hard=cfg.alpha_hard,
        )
        result = trainer.train()
        info = run_summary(trainer, result, cfg, len(train))
    save_trained(trainer, tokenizer, out_dir)
    log.info("distilled: %s", info)
    return info
