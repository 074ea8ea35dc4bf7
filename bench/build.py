"""Plan → artifacts: fine-tuned teacher, cached teacher logits, distilled student, then the
deployable artifact of every variant (bench.compress).

Each artifact goes through the content-hash cache (bench.artifacts): a rerun of the same suite
builds nothing, and changing one field rebuilds only what depends on it. Only what the plan
needs is built (no student without student variants, no export without ONNX variants).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.artifacts import Artifact, ArtifactStore
from bench.data import TaskData
from bench.models import load_for_classification, parse_source
from bench.plan import Plan
from bench.suite import Suite

log = logging.getLogger(__name__)


@dataclass
class Built:
    """Trained models by role, the artifact each variant measures (by Variant.artifact_key), and the
    wall time of each stage in this run."""

    models: dict[str, Artifact] = field(default_factory=dict)
    artifacts: dict[tuple, Artifact] = field(default_factory=dict)
    stages: dict[str, dict] = field(default_factory=dict)

    def record(self, stage: str, artifact: Artifact, wall_s: float) -> Artifact:
        self.stages[stage] = {"artifact": artifact.path.name, "reused": artifact.reused,
                              "wall_s": round(wall_s, 2), "build_time_s": artifact.build_time_s}
        return artifact


def _timed(built: Built, stage: str, fn) -> Artifact:
    start = time.perf_counter()
    artifact = fn()
    return built.record(stage, artifact, time.perf_counter() - start)


def build_teacher(suite: Suite, data: TaskData, store: ArtifactStore) -> Artifact:
    source = parse_source(suite.teacher.source, allow_pickle=suite.allow_pickle)
    spec = {"task": suite.task, "source": source.identity(), "finetune": suite.teacher.finetune.model_dump(),
            "data": data.fingerprint, "max_length": suite.data.max_length, "seed": suite.seed,
            "trust_remote_code": suite.trust_remote_code}

    def build(out: Path) -> dict:
        from bench.train.finetune import finetune

        model, tokenizer = load_for_classification(
            source, num_labels=2, corpus=data.sentences("train"), seed=suite.seed,
            trust_remote_code=suite.trust_remote_code,
        )
        return finetune(model, tokenizer, data, suite.teacher.finetune, suite.data.max_length, suite.seed, out)

    return store.get_or_build("teacher", spec, [], build)


def build_teacher_logits(suite: Suite, data: TaskData, store: ArtifactStore, teacher: Artifact) -> Artifact:
    spec = {"data": data.fingerprint, "max_length": suite.data.max_length}

    def build(out: Path) -> dict:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bench.train.distill import compute_teacher_logits

        model = AutoModelForSequenceClassification.from_pretrained(teacher.path, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(teacher.path)
        logits = compute_teacher_logits(model, tokenizer, data.sentences("train"), suite.data.max_length)
        np.save(out / "train_logits.npy", logits)
        return {"rows": int(logits.shape[0])}

    return store.get_or_build("teacher-logits", spec, [teacher], build)


def build_student(suite: Suite, data: TaskData, store: ArtifactStore, teacher: Artifact, logits: Artifact) -> Artifact:
    cfg = suite.student
    spec = {"init": cfg.init, "layers": cfg.layers, "distill": cfg.distill.model_dump(), "data": data.fingerprint,
            "max_length": suite.data.max_length, "seed": suite.seed}

    def build(out: Path) -> dict:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bench.train.distill import distill, init_student_from_teacher

        teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher.path, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(teacher.path)
        torch.manual_seed(suite.seed)
        student = init_student_from_teacher(teacher_model, cfg.layers)
        del teacher_model
        train_logits = np.load(logits.path / "train_logits.npy")
        return distill(student, tokenizer, data, train_logits, cfg.distill, suite.data.max_length, suite.seed, out)

    return store.get_or_build("student", spec, [teacher, logits], build)


def build_all(suite: Suite, plan: Plan, data: TaskData, store: ArtifactStore) -> Built:
    from bench.compress import Compressor

    built = Built()
    roles = {v.model for v in plan.variants}
    if not roles:
        return built
    teacher = _timed(built, "teacher_finetune", lambda: build_teacher(suite, data, store))
    built.models["teacher"] = teacher
    if "student" in roles:
        logits = _timed(built, "teacher_logits", lambda: build_teacher_logits(suite, data, store, teacher))
        built.models["student"] = _timed(
            built, "student_distill", lambda: build_student(suite, data, store, teacher, logits)
        )
    compressor = Compressor(suite, data, store)
    for variant in plan.variants:
        key = variant.artifact_key
        if key not in built.artifacts:
            stage = "-".join(x for x in (variant.model, *key[1:]) if x and x != "plain")
            built.artifacts[key] = _timed(
                built, stage, lambda v=variant: compressor.artifact_for(v, built.models[v.model])
            )
    return built
