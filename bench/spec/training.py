"""The training sections of a suite: teacher fine-tuning, students (init, task distillation loss
terms, general distillation), and the shape checks a distillation needs. Part of the suite schema
(bench.spec.suite re-exports every name); split out to keep each module small.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.common.errors import BenchError

PositiveInt = Annotated[int, Field(gt=0, le=10_000_000)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    # extra="forbid": a typo in a key is an error, not a silently ignored setting. strict: no coercion
    # (`lr: true` is not 1.0, `epochs: "2"` is not 2, `name: 7` is not "7"); an int is still a float.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class LoraConfig(_Strict):
    """PEFT's LoRA (peft.LoraConfig): low-rank updates on the target modules, the rest frozen; the task
    head is trained in full (PEFT's `modules_to_save` for sequence classification). Merged into the
    base weights after training, so every downstream variant sees a plain model."""

    r: Annotated[int, Field(gt=0, le=4096)] = 8
    alpha: PositiveFloat = 16.0  # the update is scaled by alpha / r
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # Linear layers by name, matched as PEFT matches them (the module's name or its last dotted parts).
    # The default is the LoRA paper's choice for BERT: the attention's query and value projections.
    target_modules: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]+$")]], Field(min_length=1)] = [
        "query", "value"]
    bias: Literal["none", "all", "lora_only"] = "none"


def unmatched_target_modules(module_names: list[str], targets: list[str]) -> list[str]:
    """The targets no module name matches the way PEFT matches them (equal, or a dotted suffix)."""
    return [t for t in targets if not any(n == t or n.endswith("." + t) for n in module_names)]


def target_modules_error(field: str, model: str, module_names: list[str], missing: list[str]) -> BenchError:
    leaves = sorted({n.rsplit(".", 1)[-1] for n in module_names if n})
    return BenchError(f"{field}.lora.target_modules: no module named {missing[0]!r} in {model} (its linear and "
                      f"embedding layers: {', '.join(leaves)})")


class FinetuneConfig(_Strict):
    epochs: Annotated[float, Field(gt=0, le=1000)] = 1.0
    lr: PositiveFloat = 5e-5
    batch_size: PositiveInt = 32
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.06
    weight_decay: NonNegativeFloat = 0.01
    logging_steps: PositiveInt = 50
    # The Trainer's AdamW: `adamw_torch` (foreach) or `adamw_torch_fused` (one fused kernel per step; on
    # CPU since torch 2.4). Same update rule, different float rounding: part of the artifact key.
    optim: Literal["adamw_torch", "adamw_torch_fused"] = "adamw_torch"
    # Trainer report_to targets, e.g. [tensorboard]; logs always go to the artifact's log file.
    report_to: list[str] = []
    # Early stopping on dev accuracy, evaluated every eval_steps; None turns it off.
    early_stopping_patience: PositiveInt | None = None
    eval_steps: PositiveInt = 500
    # A killed run resumes from its last complete checkpoint (written every checkpoint_steps
    # optimizer steps, or at every eval with early stopping). Not part of the artifact key.
    checkpoint_steps: PositiveInt = 500
    # full: every weight trains. lora: PEFT's LoRA adapters (`lora:`), merged into the weights afterwards.
    method: Literal["full", "lora"] = "full"
    lora: LoraConfig | None = None  # with method: lora; None there means LoraConfig's defaults

    @model_validator(mode="after")
    def _lora_with_method(self) -> FinetuneConfig:
        if self.lora is not None and self.method != "lora":
            raise ValueError("lora: LoRA settings need method: lora")
        return self

    @property
    def lora_settings(self) -> LoraConfig | None:
        return (self.lora or LoraConfig()) if self.method == "lora" else None

    def key_fields(self) -> dict:
        """The settings that change what training produces: the artifact cache keys on these."""
        # optim and method only when not the stock ones: suites written before them keep their artifacts.
        stock = {"checkpoint_steps"} | ({"optim"} if self.optim == "adamw_torch" else set())
        if self.method == "full":
            return self.model_dump(exclude=stock | {"method", "lora"})
        lora = self.lora_settings.model_dump()
        lora["target_modules"] = sorted(set(lora["target_modules"]))  # PEFT adapts a set of modules
        return self.model_dump(exclude=stock | {"lora"}) | {"lora": lora}


Seed = Annotated[int, Field(ge=0, lt=2**32)]
ModelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class TeacherConfig(_Strict):
    # hub id | local dir | package:<module> | tiny:layers=2,hidden=64,heads=2,intermediate=128
    source: str
    # null: the source is already fine-tuned for the task (a hub checkpoint, a folder, an ONNX file):
    # it is measured and compressed as it is, and nothing trains (bench/tasks/onnx_source.py checks its head).
    finetune: FinetuneConfig | None = FinetuneConfig()
    # Train the teacher once with this seed and distil every suite seed's students from it.
    # None: one teacher per suite seed.
    seed: Seed | None = None
    # The runtime that computes the cached teacher logits students distil from: `pytorch` (eager), or
    # `onnx`, the parity-checked ONNX export in onnxruntime (the logits agree within parity_atol; on 2
    # CPU cores about twice as fast over SST-2's 67,349 train rows, docs/cost-model.md).
    logits_runtime: Literal["pytorch", "onnx"] = "pytorch"


class DistillConfig(FinetuneConfig):
    """Task distillation. loss = alpha_soft·T²·KL(teacher ‖ student at T) + alpha_hard·CE(labels)
    + alpha_hidden·hidden-state loss over mapped layers (embeddings included)
    + alpha_attn·MSE over mapped attention maps. Only alpha_hard > 0: plain fine-tuning."""

    lr: PositiveFloat = 1e-4
    temperature: PositiveFloat = 2.0
    alpha_soft: NonNegativeFloat = 0.5
    alpha_hard: NonNegativeFloat = 0.5
    alpha_hidden: NonNegativeFloat = 0.0
    hidden_loss: Literal["cosine", "mse"] = "cosine"
    # A learned linear map student width -> teacher width for the hidden loss (TinyBERT's W_h);
    # required when the widths differ, dropped after training.
    hidden_projection: bool = False
    alpha_attn: NonNegativeFloat = 0.0
    # Teacher layer (0-based) matched to each student layer for the hidden/attention losses.
    # None: uniform, student layer i <-> teacher layer (i+1)*N/M - 1, so the last layers meet.
    layer_map: list[Annotated[int, Field(ge=0, le=1000)]] | None = None
    # Seeded random subset of the train split for this student (same rows for every seed); None = all.
    max_train_samples: PositiveInt | None = None

    @model_validator(mode="after")
    def _some_loss(self) -> DistillConfig:
        if self.alpha_soft + self.alpha_hard + self.alpha_hidden + self.alpha_attn == 0:
            raise ValueError("alpha_soft + alpha_hard + alpha_hidden + alpha_attn must be > 0")
        if self.method == "lora" and self.hidden_projection:
            # The projection is a training aid outside the adapter: PEFT would freeze it and its
            # checkpoints would not carry it.
            raise ValueError("hidden_projection: not available with method: lora")
        return self

    @property
    def uses_teacher_logits(self) -> bool:
        return self.alpha_soft > 0

    @property
    def uses_teacher_internals(self) -> bool:
        return self.alpha_hidden > 0 or self.alpha_attn > 0


class GeneralDistillConfig(FinetuneConfig):
    """DistilBERT's pre-training recipe on unlabeled text, before task distillation:
    alpha_ce·T²·KL over the teacher's MLM distribution at masked positions + alpha_mlm·MLM loss
    + alpha_cos·(1 - cos) between last hidden states. The teacher needs an MLM head."""

    # A UTF-8 text file (one example per line), or "task:train" for the task's train sentences
    # without their labels.
    text: str
    teacher: str | None = None  # MLM teacher source; default: teacher.source (before fine-tuning)
    max_samples: PositiveInt | None = None
    lr: PositiveFloat = 5e-4
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.05
    mlm_probability: Annotated[float, Field(gt=0, lt=1)] = 0.15
    temperature: PositiveFloat = 2.0
    alpha_ce: NonNegativeFloat = 5.0
    alpha_mlm: NonNegativeFloat = 2.0
    alpha_cos: NonNegativeFloat = 1.0

    @model_validator(mode="after")
    def _some_loss(self) -> GeneralDistillConfig:
        if self.alpha_ce + self.alpha_mlm + self.alpha_cos == 0:
            raise ValueError("alpha_ce + alpha_mlm + alpha_cos must be > 0")
        if self.early_stopping_patience is not None:
            raise ValueError("early_stopping_patience: general distillation has no dev metric to stop on")
        if self.method != "full":
            raise ValueError("method: general distillation trains every weight (method: full)")
        return self


class StudentConfig(_Strict):
    @property
    def trains(self) -> bool:
        return self.distill is not None

    @property
    def uses_teacher_logits(self) -> bool:
        return self.distill is not None and self.distill.uses_teacher_logits

    @property
    def uses_teacher_internals(self) -> bool:
        return self.distill is not None and self.distill.uses_teacher_internals

    # teacher-layers: copy the listed teacher layers (DistilBERT took [0,2,4,7,9,11] of 12);
    # random: the teacher's config with len(layers) layers and fresh weights;
    # pretrained: start from `source` (any model source, e.g. distilbert-base-uncased).
    init: Literal["teacher-layers", "random", "pretrained"] = "teacher-layers"
    layers: list[Annotated[int, Field(ge=0, le=1000)]] = [0, 2, 4]
    source: str | None = None
    general: GeneralDistillConfig | None = None  # general distillation before the task stage
    # null: `source` (init: pretrained) is a student already trained for the task, measured as it is.
    distill: DistillConfig | None = DistillConfig()

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list[int]) -> list[int]:
        if not layers:
            raise ValueError("needs at least one teacher layer")
        if len(set(layers)) != len(layers) or layers != sorted(layers):
            raise ValueError(f"must be strictly increasing teacher layer indices, got {layers}")
        return layers

    @model_validator(mode="after")
    def _source(self) -> StudentConfig:
        if (self.init == "pretrained") != (self.source is not None):
            raise ValueError("source: required with init: pretrained, and only then")
        if self.init == "pretrained" and self.general is not None:
            raise ValueError("general: general distillation starts from the teacher, not init: pretrained")
        if self.distill is None and (self.init != "pretrained" or self.general is not None):
            raise ValueError("distill: null measures a trained student as it is: it needs init: pretrained with "
                             "its source, and no general distillation")
        n = len(self.layers)
        layer_map = self.distill.layer_map if self.distill is not None else None
        if layer_map is not None and len(layer_map) != n and self.init != "pretrained":
            raise ValueError(f"distill.layer_map: needs one teacher layer per student layer ({n}), "
                             f"got {len(self.distill.layer_map)}")
        return self


def check_student_shapes(cfg: StudentConfig, field: str, teacher: dict | None, student: dict | None) -> None:
    """Layer indices, widths and head counts the distillation needs; shapes are {layers, hidden, heads}
    or None where they are not known without a download (checked again once loaded)."""
    if teacher is None or cfg.distill is None:
        return  # an as-is student is not distilled: no shapes to match
    n = teacher["layers"]
    if cfg.init == "teacher-layers" and cfg.layers[-1] >= n:
        raise BenchError(f"{field}.layers: index {cfg.layers[-1]} is out of range for a {n}-layer teacher")
    d = cfg.distill
    if d.layer_map is not None and max(d.layer_map) >= n:
        raise BenchError(f"{field}.distill.layer_map: index {max(d.layer_map)} is out of range for a {n}-layer teacher")
    if student is None:
        return
    if d.layer_map is not None and len(d.layer_map) != student["layers"]:
        raise BenchError(f"{field}.distill.layer_map: needs one teacher layer per student layer "
                         f"({student['layers']}), got {len(d.layer_map)}")
    if d.alpha_hidden > 0 and student["hidden"] != teacher["hidden"] and not d.hidden_projection:
        raise BenchError(f"{field}.distill.hidden_projection: student width {student['hidden']} differs from the "
                         f"teacher's {teacher['hidden']}; set hidden_projection: true to learn a projection")
    if d.alpha_attn > 0 and student["heads"] != teacher["heads"]:
        raise BenchError(f"{field}.distill.alpha_attn: attention maps need the same number of heads "
                         f"(student {student['heads']}, teacher {teacher['heads']})")
