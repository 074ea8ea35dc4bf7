"""General distillation, the DistilBERT pre-training recipe (Sanh et al. 2019), on unlabeled text.

The student (a masked-LM model: teacher layers, or the teacher's architecture at random init) learns
from the teacher's MLM distribution at the masked positions (soft cross-entropy at T), from the MLM
labels, and from the teacher's last hidden states (cosine). The released DistilBERT weighted these
5.0 / 2.0 / 1.0. The teacher needs a masked-LM head, e.g. bert-base-uncased:

    student: {init: teacher-layers, layers: [0, 2, 4, 7, 9, 11],
              general: {text: corpus.txt, teacher: bert-base-uncased, epochs: 3}}

The result is an encoder that task distillation then starts from (with a fresh classifier).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, TrainerCallback

from bench.common.errors import BenchError
from bench.data.load import TaskData
from bench.spec.suite import StudentConfig
from bench.tasks.sources import ModelSource, tiny_tokenizer
from bench.tasks.table import Texts
from bench.train.distill import TermLogging, init_random_student, init_student_from_teacher
from bench.train.finetune import (
    EpochSeededTrainer,
    callbacks,
    save_trained,
    train_resumable,
    training_arguments,
    work_folder,
)
from bench.train.losses import general_distillation_loss

log = logging.getLogger(__name__)


def read_texts(text: str, data: TaskData, where: str) -> Texts:
    """`task:train`: the task's train examples (pairs stay pairs: segments as in task training);
    otherwise one example per non-empty line of the file."""
    if text == "task:train":
        return data.texts("train")
    try:
        lines = Path(text).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{where}.text: cannot read {text}: {exc}") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise BenchError(f"{where}.text: {text} has no non-empty lines")
    return Texts(texts)


def text_identity(text: str, data: TaskData) -> str:
    """What the cache keys on: the task data's fingerprint, or the text file's content hash."""
    if text == "task:train":
        return f"task:train@{data.fingerprint}"
    path = Path(text)
    return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}" if path.is_file() else text


def load_mlm_teacher(source: ModelSource, corpus: list[str], seed: int, where: str, trust_remote_code: bool):
    """(BertForMaskedLM-like teacher, tokenizer); a source without trained MLM head weights is refused,
    since a randomly initialised head would teach noise."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

    if source.kind == "tiny":
        t = source.tiny
        tokenizer = tiny_tokenizer(corpus, t["vocab"])
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=t["hidden"], num_hidden_layers=t["layers"],
                            num_attention_heads=t["heads"], intermediate_size=t["intermediate"],
                            max_position_embeddings=512)
        torch.manual_seed(seed)
        return BertForMaskedLM(config), tokenizer
    location = str(source.path) if source.path else source.spec
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, use_fast=True, trust_remote_code=trust_remote_code)
        model, loading = AutoModelForMaskedLM.from_pretrained(
            location, output_loading_info=True, use_safetensors=not source.pickle, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise BenchError(f"{where}.teacher: cannot load {source.spec!r} as a masked-LM model: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    missing = [k for k in loading["missing_keys"] if "decoder" not in k or "bias" in k]
    if missing:
        raise BenchError(f"{where}.teacher: {source.spec!r} has no trained masked-LM head (missing {missing[0]}); "
                         "general distillation needs one, e.g. bert-base-uncased")
    return model, tokenizer


@dataclass
class ReplayableMaskingCollator(DataCollatorForLanguageModeling):
    """Dynamic masking that a resumed run replays. The stock collator masks from the global RNG, and
    the Trainer restores a checkpoint's RNG state only after the first resumed batch was collated,
    so a run resumed mid-epoch masked differently from then on. Here each batch's masks come from
    a generator seeded by (seed, epoch, the batch's token ids): a new mask every epoch, as DistilBERT
    does, and the same mask whether or not the run was interrupted."""

    seed: int = 0
    epoch: int = 0

    def torch_call(self, examples):
        digest = hashlib.blake2b(f"{self.seed}:{self.epoch}:".encode(), digest_size=8)
        for example in examples:
            digest.update(repr(list(example["input_ids"])).encode())
        self.generator = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
        return super().torch_call(examples)


class MaskingEpoch(TrainerCallback):
    """Tells the collator which epoch it is masking (also after a resume)."""

    def __init__(self, collator: ReplayableMaskingCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = math.floor(state.epoch or 0)


class GeneralDistillationTrainer(TermLogging, EpochSeededTrainer):
    def __init__(self, *args, teacher, cfg, **kwargs):
        super().__init__(*args, **kwargs)
        self.cfg = cfg
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs, output_hidden_states=True)
        with torch.no_grad():
            t_out = self.teacher(**inputs, output_hidden_states=True)
        c = self.cfg
        loss, terms = general_distillation_loss(
            outputs.logits, t_out.logits, labels, outputs.hidden_states[-1], t_out.hidden_states[-1],
            inputs["attention_mask"], c.temperature, c.alpha_ce, c.alpha_mlm, c.alpha_cos)
        self._record_terms(terms)
        return (loss, outputs) if return_outputs else loss


def general_distill(source: ModelSource, cfg: StudentConfig, data: TaskData, max_length: int, seed: int,
                    out_dir: Path, work_dir: Path | None, where: str, trust_remote_code: bool = False) -> dict:
    general = cfg.general
    teacher, tokenizer = load_mlm_teacher(source, data.sentences("train"), seed, where, trust_remote_code)
    torch.manual_seed(seed)
    if cfg.init == "teacher-layers":
        student = init_student_from_teacher(teacher, cfg.layers, where.removesuffix(".general") + ".layers")
    else:
        student = init_random_student(teacher, len(cfg.layers), seed)
    texts = read_texts(general.text, data, where).head(general.max_samples or None)
    dataset = Dataset.from_dict(dict(texts.encode(tokenizer, truncation=True, max_length=max_length)))
    collator = ReplayableMaskingCollator(tokenizer, mlm_probability=general.mlm_probability, seed=seed)
    with work_folder(work_dir) as work:
        trainer = GeneralDistillationTrainer(
            model=student,
            args=training_arguments(general, work, out_dir / "logs", seed, group_by_length=False),
            train_dataset=dataset,
            data_collator=collator,
            callbacks=[*callbacks(general), MaskingEpoch(collator)],
            teacher=teacher,
            cfg=general,
        )
        result = train_resumable(trainer, work)
    save_trained(trainer, tokenizer, out_dir)
    info = {"train_rows": len(dataset), "train_runtime_s": round(result.metrics["train_runtime"], 2),
            "train_steps": result.global_step, "train_loss": round(result.training_loss, 4),
            "world_size": trainer.args.world_size, "teacher": source.spec}
    log.info("general distillation: %s", info)
    return info
