"""Plan → artifacts: fine-tuned teacher, cached teacher logits, (general-distilled and) task-distilled
students, then the deployable artifact of every variant (bench.build.compress), for one training seed.

Each artifact goes through the content-hash cache (bench.store.artifacts): a rerun of the same suite
builds nothing, and changing one field rebuilds only what depends on it. Only what the plan
needs is built (no student without student variants, no export without ONNX variants).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.common.errors import BenchError
from bench.data.load import TaskData
from bench.plan import Plan
from bench.spec.suite import StudentConfig, Suite, student_field
from bench.store.artifacts import Artifact, ArtifactStore
from bench.tasks.sources import load_for_classification, parse_source

log = logging.getLogger(__name__)


@dataclass
class Built:
    """Trained models by name, the artifact each variant measures (by Variant.artifact_key), and the
    wall time of each stage in this run."""

    seed: int = 0
    models: dict[str, Artifact] = field(default_factory=dict)
    artifacts: dict[tuple, Artifact] = field(default_factory=dict)
    stages: dict[str, dict] = field(default_factory=dict)
    dry_run: ClassVar[bool] = False  # True for bench plan's recorder (bench.run.bill): no stage log lines

    def record(self, stage: str, artifact: Artifact, wall_s: float) -> Artifact:
        self.stages[stage] = {"artifact": artifact.path.name, "reused": artifact.reused,
                              "wall_s": round(wall_s, 2), "build_time_s": artifact.build_time_s}
        work = stage_work(artifact.kind, artifact.info)
        if work is not None:
            self.stages[stage]["work"] = work  # `bench plan`'s cost model scales this stage's time by it
        return artifact


def stage_work(kind: str, info: dict) -> float | None:
    """What a built training artifact's time scales with (its manifest's info), for run.json `work`."""
    if kind == "teacher-logits":
        return info.get("rows")
    if kind in ("teacher", "student") and info.get("train_rows") and info.get("epochs"):
        return info["train_rows"] * info["epochs"]
    return None


def _timed(built: Built, stage: str, fn) -> Artifact:
    start = time.perf_counter()
    artifact = fn()
    wall = time.perf_counter() - start
    if built.dry_run:  # bench plan: nothing was built or reused
        pass
    elif any(artifact is m for m in built.models.values()):
        log.info("%s: the trained model itself (no conversion)", stage)
    elif artifact.reused:
        log.info("reused %s (cached, %.1f s)", stage, wall)
    else:
        log.info("built %s in %.1f s", stage, wall)
    return built.record(stage, artifact, wall)


def seed_tag(suite: Suite, seed: int) -> str:
    """Suffix naming a seed in stage names and logs; empty when the suite trains one seed."""
    return f"@seed{seed}" if len(suite.training_seeds) > 1 else ""


def teacher_seed(suite: Suite, seed: int) -> int:
    return suite.teacher.seed if suite.teacher.seed is not None else seed


def build_as_is(suite: Suite, kind: str, spec_text: str, field: str, store: ArtifactStore) -> Artifact:
    """A model already fine-tuned for the task, taken as it is (bench/tasks/onnx_source.py): its head is checked
    against the task, and the artifact holds its safetensors (or its ONNX graph) and tokenizer."""
    from bench.tasks.onnx_source import check_onnx_source, import_onnx, save_as_is

    source = parse_source(spec_text, field, allow_pickle=suite.allow_pickle)
    task = suite.task_def
    spec = {"as_is": True, "task": task.name, "num_labels": task.num_labels, "source": source.identity(),
            "trust_remote_code": suite.trust_remote_code}

    def build(out: Path) -> dict:
        if source.kind == "onnx":
            check_onnx_source(source.graph, task, field)
            return import_onnx(source.graph, out)
        return save_as_is(source, task, field, out, suite.trust_remote_code)

    return store.get_or_build(kind, spec, [], build)


def build_teacher(suite: Suite, data: TaskData, store: ArtifactStore, seed: int) -> Artifact:
    if suite.teacher.finetune is None:  # fine-tuned already: measured and compressed as it is
        return build_as_is(suite, "teacher", suite.teacher.source, "teacher.source", store)
    source = parse_source(suite.teacher.source, allow_pickle=suite.allow_pickle)
    seed = teacher_seed(suite, seed)
    spec = {"task": suite.task_name, "source": source.identity(), "finetune": suite.teacher.finetune.key_fields(),
            "data": data.fingerprint, "max_length": suite.data.max_length, "seed": seed,
            "trust_remote_code": suite.trust_remote_code}

    def build(out: Path, work: Path) -> dict:
        from bench.train.finetune import finetune

        model, tokenizer = load_for_classification(
            source, data.task, corpus=data.sentences("train"), seed=seed,
            trust_remote_code=suite.trust_remote_code,
        )
        return finetune(model, tokenizer, data, suite.teacher.finetune, suite.data.max_length, seed, out, work,
                        field="teacher.finetune")

    return store.get_or_build("teacher", spec, [], build, work_dir=True)


def build_teacher_logits(suite: Suite, data: TaskData, store: ArtifactStore, teacher: Artifact,
                         onnx_teacher: Artifact | None = None) -> Artifact:
    """The teacher's logits on the train split, from the PyTorch teacher or (onnx_teacher) its ONNX export."""
    spec = {"data": data.fingerprint, "max_length": suite.data.max_length}
    if onnx_teacher is not None:
        spec["runtime"] = "onnx"  # only when set: logits computed in PyTorch keep their key

    def build(out: Path) -> dict:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(teacher.path)
        if onnx_teacher is None:
            from transformers import AutoModelForSequenceClassification

            from bench.train.distill import compute_teacher_logits

            model = AutoModelForSequenceClassification.from_pretrained(teacher.path, use_safetensors=True)
            logits = compute_teacher_logits(model, tokenizer, data.texts("train"), suite.data.max_length)
        else:
            from bench.backends.runtime import load_runtime, predict_logits

            runtime = load_runtime("onnx", onnx_teacher.path, "cpu", threads=_cpu_count(), precision="fp32")
            logits = predict_logits(runtime, tokenizer, data.texts("train"), suite.data.max_length, batch_size=128)
        np.save(out / "train_logits.npy", logits.astype(np.float32))
        return {"rows": int(logits.shape[0]), "runtime": "onnx" if onnx_teacher is not None else "pytorch"}

    parents = [teacher] + ([onnx_teacher] if onnx_teacher is not None else [])
    return store.get_or_build("teacher-logits", spec, parents, build)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_general(suite: Suite, name: str, data: TaskData, store: ArtifactStore, seed: int) -> Artifact:
    """DistilBERT-style general distillation of the student on unlabeled text (before the task)."""
    from bench.train.general import text_identity

    cfg = suite.all_students[name]
    general, where = cfg.general, f"{student_field(suite, name)}.general"
    source = parse_source(general.teacher or suite.teacher.source, f"{where}.teacher", allow_pickle=suite.allow_pickle)
    spec = {"init": cfg.init, "layers": cfg.layers, "teacher": source.identity(),
            "general": general.key_fields() | {"text": None, "teacher": None},
            "text": text_identity(general.text, data), "max_length": suite.data.max_length, "seed": seed}

    def build(out: Path, work: Path) -> dict:
        from bench.train.general import general_distill

        return general_distill(source, cfg, data, suite.data.max_length, seed, out, work, where,
                               trust_remote_code=suite.trust_remote_code)

    return store.get_or_build("student-general", spec, [], build, work_dir=True)


def _student_start(cfg: StudentConfig, field_name: str, teacher_model, tokenizer, data: TaskData, seed: int,
                   general: Artifact | None, suite: Suite):
    """(student model, its tokenizer) before task distillation, per the suite's init strategy."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.tasks.sources import head_config
    from bench.train.distill import init_random_student, init_student_from_teacher

    if general is not None:  # the general-distilled encoder with a fresh head for the task
        import torch

        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            general.path, **head_config(data.task), use_safetensors=True)
        return model, AutoTokenizer.from_pretrained(general.path)
    if cfg.init == "teacher-layers":
        return init_student_from_teacher(teacher_model, cfg.layers, f"{field_name}.layers"), tokenizer
    if cfg.init == "random":
        return init_random_student(teacher_model, len(cfg.layers), seed), tokenizer
    source = parse_source(cfg.source, f"{field_name}.source", allow_pickle=suite.allow_pickle)
    return load_for_classification(source, data.task, corpus=data.sentences("train"), seed=seed,
                                   trust_remote_code=suite.trust_remote_code)


def build_student(suite: Suite, name: str, data: TaskData, store: ArtifactStore, teacher: Artifact,
                  logits: Artifact | None, seed: int, general: Artifact | None = None) -> Artifact:
    cfg = suite.all_students[name]
    field_name = student_field(suite, name)
    if not cfg.trains:  # a student trained already (distill: null): measured as it is
        return build_as_is(suite, "student", cfg.source, f"{field_name}.source", store)
    if teacher.info.get("format") == "onnx":
        raise BenchError(f"{field_name}.distill: the teacher is an ONNX model (teacher.source); distillation needs "
                         "a PyTorch teacher (its logits and layers)")
    source = parse_source(cfg.source, f"{field_name}.source", allow_pickle=suite.allow_pickle).identity() \
        if cfg.init == "pretrained" else None
    spec = {"init": cfg.init, "layers": cfg.layers, "distill": cfg.distill.key_fields(), "data": data.fingerprint,
            "max_length": suite.data.max_length, "seed": seed}
    if source is not None:
        spec["source"] = source
    if suite.seed != seed or cfg.distill.max_train_samples:
        spec["subset_seed"] = suite.seed
    parents = [p for p in (teacher, logits, general) if p is not None]

    def build(out: Path, work: Path) -> dict:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bench.spec.suite import check_student_shapes
        from bench.train.distill import distill

        teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher.path, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(teacher.path)
        torch.manual_seed(seed)
        student, student_tokenizer = _student_start(cfg, field_name, teacher_model, tokenizer, data, seed, general,
                                                    suite)
        shape = lambda c: {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads}  # noqa: E731
        check_student_shapes(cfg, field_name, shape(teacher_model.config), shape(student.config))
        if cfg.distill.uses_teacher_internals and student_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise BenchError(f"{field_name}.distill: hidden/attention losses compare token by token and need "
                             "the teacher's tokenizer; this student's vocabulary differs")
        train_logits = np.load(logits.path / "train_logits.npy") if logits is not None else None
        return distill(student, student_tokenizer, data, train_logits, cfg.distill, suite.data.max_length, seed, out,
                       teacher=teacher_model if cfg.distill.uses_teacher_internals else None, work_dir=work,
                       subset_seed=suite.seed, field=f"{field_name}.distill")

    return store.get_or_build("student", spec, parents, build, work_dir=True)


def build_models(suite: Suite, plan: Plan, data: TaskData, store: ArtifactStore, seed: int, built: Built) -> None:
    """The trained models the plan measures (teacher, and each named student), for one seed."""
    names = {v.model for v in plan.variants}
    if not names:
        return
    tag = seed_tag(suite, seed)
    teacher = _timed(built, f"teacher_finetune{tag}", lambda: build_teacher(suite, data, store, seed))
    built.models["teacher"] = teacher
    students = [n for n in suite.all_students if n in names]
    needs_logits = any(suite.all_students[n].uses_teacher_logits for n in students)
    onnx_teacher = None
    if needs_logits and suite.teacher.logits_runtime == "onnx" and teacher.info.get("format") != "onnx":
        from bench.build.compress import Compressor

        onnx_teacher = _timed(built, f"teacher_logits_export{tag}",
                              lambda: Compressor(suite, data, store).onnx_export(teacher))
    logits = _timed(built, f"teacher_logits{tag}",
                    lambda: build_teacher_logits(suite, data, store, teacher, onnx_teacher)) if needs_logits else None
    for name in students:
        cfg = suite.all_students[name]
        stage = "student" if name == "student" else f"student[{name}]"
        general = _timed(built, f"{stage}_general{tag}", partial(build_general, suite, name, data, store, seed)) \
            if cfg.general is not None else None
        built.models[name] = _timed(built, f"{stage}_distill{tag}", partial(
            build_student, suite, name, data, store, teacher, logits if cfg.uses_teacher_logits else None,
            seed, general))


def build_all(suite: Suite, plan: Plan, data: TaskData, store: ArtifactStore, seed: int | None = None,
              built: Built | None = None, models: Plan | None = None) -> Built:
    """The trained models `models` measures (default: `plan`), then the artifact of each of `plan`'s variants."""
    from bench.build.compress import Compressor

    seed = suite.training_seeds[0] if seed is None else seed
    built = Built(seed=seed) if built is None else built
    build_models(suite, models or plan, data, store, seed, built)
    compressor = Compressor(suite, data, store)
    tag = seed_tag(suite, seed)
    for variant in plan.variants:
        key = variant.artifact_key
        if key not in built.artifacts:
            stage = "-".join(x for x in (variant.model, *key[1:-1]) if x and x != "plain")
            stage += (f"+{variant.quant}" if variant.quant else "") + tag
            built.artifacts[key] = _timed(
                built, stage, lambda v=variant: compressor.artifact_for(v, built.models[v.model])
            )
    return built
