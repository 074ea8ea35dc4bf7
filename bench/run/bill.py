"""`bench plan`'s bill: what a run of the suite will train, export, optimize and quantize per seed
(each step `cached` or `build`), the rows it will write, and a wall-time estimate from earlier runs.

The bill comes from the same code as a real run (bench.build.pipeline.build_all) on a dry-run artifact store
(bench.store.artifacts.DryRunStore): same cache keys, same cache lookups, nothing built or written. So a
step marked `cached` is exactly one `bench run` would reuse.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.build.pipeline import Built, build_all
from bench.data.load import TaskData
from bench.plan import Plan
from bench.run.cost_model import SEED_TAG, TRAINING_KINDS, Estimate, first, predict, read_history
from bench.run.measure_key import measure_config_hash
from bench.spec.suite import Suite
from bench.store.artifacts import DryRunStore, Planned

# Build steps by artifact kind (model artifacts end in -teacher / -student): what the bill calls them.
ACTIONS = [  # (kind prefix, action, singular, plural)
    ("teacher-logits", "logits", "teacher logits pass", "teacher logits passes"),
    ("teacher", "train", "teacher fine-tune", "teacher fine-tunes"),
    ("student-general", "train", "general distillation", "general distillations"),
    ("student", "train", "student training", "student trainings"),
    ("onnx-opt", "optimize", "graph optimization", "graph optimizations"),
    ("onnx-int8", "quantize", "quantization", "quantizations"),
    ("onnx-fp16", "convert", "conversion", "conversions"),
    ("onnx", "export", "ONNX export", "ONNX exports"),
    ("pytorch", "convert", "conversion", "conversions"),
    ("tensorrt", "engine", "TensorRT engine", "TensorRT engines"),
    ("openvino-int8", "quantize", "NNCF quantization", "NNCF quantizations"),
    ("openvino", "convert", "OpenVINO IR conversion", "OpenVINO IR conversions"),
]
TRAINED = ("teacher", "teacher-logits", "student-general", "student")


def fmt_duration(seconds: float) -> str:
    """mm:ss (minutes unbounded), or h:mm:ss from an hour on."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


@dataclass
class Step:
    seed: int
    stage: str  # the build stage (run.json `stages` name, without the seed tag)
    model: str  # teacher or the student's name
    planned: Planned
    final: bool  # the artifact the stage is for (not a parent it needs)

    @property
    def action(self) -> tuple[str, str, str]:
        kind = self.planned.kind if self.planned.kind in TRAINED else self.planned.kind.rsplit("-", 1)[0]
        return next((a, one, many) for prefix, a, one, many in ACTIONS if kind.startswith(prefix))

    @property
    def label(self) -> str:
        kind = self.planned.kind
        if kind in TRAINED:
            return {"teacher": "teacher fine-tune", "teacher-logits": "teacher logits (train split)",
                    "student-general": f"{self.model} general distillation",
                    "student": f"{self.model} distillation"}[kind]
        graph = " (optimized graph)" if self.final and self.stage.endswith("-optimized") and \
            not kind.startswith("onnx-opt") else ""
        return f"{self.model} -> {kind.rsplit('-', 1)[0]}{graph}"


@dataclass
class _Recorder(Built):
    """A Built that assigns each dry-run get_or_build call to the stage it happened in."""

    dry_run = True
    store: DryRunStore | None = None
    models_named: tuple[str, ...] = ()
    steps: list[Step] = field(default_factory=list)
    _seen: int = 0

    def __post_init__(self):
        self._seen = len(self.store.planned)  # the store is shared by every seed's recorder

    def record(self, stage: str, artifact, wall_s: float):
        base = SEED_TAG.sub("", stage)
        for p in self.store.planned[self._seen:]:
            self.steps.append(Step(self.seed, base, _model_of(base, self.models_named), p,
                                   final=p.name == artifact.path.name))
        self._seen = len(self.store.planned)
        return super().record(stage, artifact, wall_s)


def _model_of(stage: str, names: tuple[str, ...]) -> str:
    """teacher_finetune / student[x]_distill / <model>-onnx-... -> the model's name."""
    m = re.fullmatch(r"student\[(.+)\]_(general|distill)", stage)
    if m:
        return m.group(1)
    if stage.startswith(("teacher_", "student_")):
        return stage.split("_", 1)[0]
    return max((n for n in names if stage.startswith(n + "-")), key=len, default=stage)


@dataclass
class Bill:
    suite: Suite
    plan: Plan
    steps: list[Step]
    estimate: Estimate | None  # None: no earlier runs on this machine

    @property
    def rows(self) -> int:
        return len(self.plan.variants) * len(self.suite.training_seeds)

    def to_build(self) -> list[Step]:
        """Each artifact the run builds, once (a real run builds it once and then reuses it)."""
        return [s for s in self.steps if not s.planned.cached]  # the store marks later requests cached

    def format(self) -> str:
        seeds = self.suite.training_seeds
        out = [f"rows: {self.rows} ({len(self.plan.variants)} variant(s) x {len(seeds)} seed(s))"]
        for seed in seeds:
            out.append(f"seed {seed}:")
            shown = set()
            for s in (s for s in self.steps if s.seed == seed):
                if s.planned.name in shown:
                    continue
                shown.add(s.planned.name)
                mark = "cached" if s.planned.cached else "build"
                note = "  (built earlier in this run)" if s.planned.earlier else ""
                out.append(f"  {mark:<7} {s.action[0]:<9}{s.label:<44} {s.planned.name}{note}")
            if not shown:
                out.append("  nothing to build")
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for s in self.to_build():
            counts[s.action[1:]] += 1
        cached = len({s.planned.name for s in self.steps}) - len(self.to_build())
        listed = ", ".join(f"{n} {one if n == 1 else many}" for (one, many), n in counts.items())
        out.append(f"to build: {listed or 'nothing'}; {cached} artifact(s) cached")
        out.append(f"estimated wall time: {format_estimate(self.estimate)}")
        return "\n".join(out)


def make_bill(suite: Suite, plan: Plan, data: TaskData, cache_dir: Path, results_root: Path) -> Bill:
    """Dry-run every seed's build against the cache at `cache_dir`; estimate from `results_root`."""
    store = DryRunStore(cache_dir)
    names = ("teacher", *suite.all_students)
    steps = []
    for seed in suite.training_seeds:
        recorder = _Recorder(seed=seed, store=store, models_named=names)
        build_all(suite, plan, data, store, seed, built=recorder)
        steps += recorder.steps
    return Bill(suite, plan, steps, estimate(suite, plan, steps, results_root, data))


def planned_work(suite: Suite, step: Step, train_rows: int) -> float | None:
    """The cost model's work for a training step: train rows x epochs (the logits pass: train rows)."""
    kind = step.planned.kind
    if kind == "teacher" and suite.teacher.finetune is not None:
        return train_rows * suite.teacher.finetune.epochs
    if kind == "teacher-logits":
        return float(train_rows)
    if kind == "student" and step.model in suite.all_students:
        distill = suite.all_students[step.model].distill
        if distill is not None:
            return min(distill.max_train_samples or train_rows, train_rows) * distill.epochs
    return None


def estimate(suite: Suite, plan: Plan, steps: list[Step], results_root: Path, data: TaskData) -> Estimate | None:
    """The cost model (bench/run/cost_model.py) over this bill's steps and rows; None without earlier runs here."""
    history = read_history(results_root)
    if not history.runs:
        return None
    train_rows, eval_rows = len(data.splits["train"]), len(data.splits["validation"])
    training = builds = measure = 0.0
    unknown_build = unknown_measure = 0
    for s in steps:
        if s.planned.cached:
            continue
        kind = s.planned.kind
        found = first(history, *((("stage", suite.name, s.stage),) if s.final else ()),
                      ("kind", suite.name, kind), ("kind", "*", kind))
        if found is None:
            unknown_build += 1
        elif kind in TRAINING_KINDS:
            training += predict(found, planned_work(suite, s, train_rows))
        else:
            builds += predict(found, None)
    config = measure_config_hash(suite.measure)
    for v in plan.variants:
        found = first(history, ("variant", suite.name, v.id, config), ("variant", "*", v.id, config),
                      ("variant", suite.name, v.id), ("variant", "*", v.id))
        if found is None:
            unknown_measure += len(suite.training_seeds)
        else:
            measure += predict(found, eval_rows) * len(suite.training_seeds)
    overhead = float(np.mean(history.overhead_s)) if history.overhead_s else 0.0
    return Estimate(training, builds, measure, overhead, history.runs, unknown_build, unknown_measure)


def format_estimate(e: Estimate | None) -> str:
    if e is None:
        return "no earlier runs on this machine (docs/cost-model.md has times for one machine class)"
    text = (f"{fmt_duration(e.total_s)} (training {fmt_duration(e.training_s)}, other builds "
            f"{fmt_duration(e.builds_s)}, measure {fmt_duration(e.measure_s)}, overhead {fmt_duration(e.overhead_s)}; "
            f"cost model fitted to {e.runs} earlier run(s) on this machine)")
    if e.unknown_builds or e.unknown_measurements:
        text += (f"; no earlier timing for {e.unknown_builds} build step(s) and {e.unknown_measurements} "
                 "measurement(s), not counted")
    return text


class Progress:
    """`measure <variant> (i/N, elapsed mm:ss, ETA mm:ss)`: N counts every variant x seed of the run, the
    ETA is the mean measured wall per variant so far times what is left."""

    def __init__(self, total: int, started: float):
        self.total, self.started, self.done, self.walls = total, started, 0, []

    def line(self, label: str, now: float) -> str:
        """The next variant's line; the ETA covers it and every one after it."""
        self.done += 1
        left = self.total - self.done + 1
        eta = fmt_duration(sum(self.walls) / len(self.walls) * left) if self.walls else "--:--"
        return f"measure {label} ({self.done}/{self.total}, elapsed {fmt_duration(now - self.started)}, ETA {eta})"

    def skip(self) -> None:
        """A variant measured already (a resumed run): counted, not timed."""
        self.done += 1

    def measured(self, wall_s: float) -> None:
        self.walls.append(wall_s)
