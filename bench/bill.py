"""`bench plan`'s bill: what a run of the suite will train, export, optimize and quantize per seed
(each step `cached` or `build`), the rows it will write, and a wall-time estimate from earlier runs.

The bill comes from the same code as a real run (bench.build.build_all) on a dry-run artifact store
(bench.artifacts.DryRunStore): same cache keys, same cache lookups, nothing built or written. So a
step marked `cached` is exactly one `bench run` would reuse.
"""

from __future__ import annotations

import json
import platform
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.artifacts import DryRunStore, Planned
from bench.build import Built, build_all
from bench.data import TaskData
from bench.plan import Plan
from bench.results import RUN_FILE
from bench.suite import Suite

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
]
TRAINED = ("teacher", "teacher-logits", "student-general", "student")
_TAG = re.compile(r"@seed\d+$")


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
        base = _TAG.sub("", stage)
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
    estimate: str

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
        out.append(f"estimated wall time: {self.estimate}")
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
    return Bill(suite, plan, steps, estimate(suite, plan, steps, results_root))


def history(results_root: Path, host: str | None = None) -> tuple[int, dict]:
    """(number of runs, {key: [seconds]}) from run.json files of runs on this host under results_root.
    Keys: ("stage", suite, stage) and ("kind", suite|"*", kind) for built steps; ("variant", suite|"*",
    variant id) for measurements."""
    host = host or platform.node()
    times: dict[tuple, list[float]] = defaultdict(list)
    runs = 0
    for path in sorted(Path(results_root).glob(f"*/*/{RUN_FILE}")):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(run, dict) or (run.get("environment") or {}).get("hostname") != host:
            continue
        stages, suite = run.get("stages") or {}, run.get("suite")
        if not stages:
            continue
        runs += 1
        seen = set()  # a stage whose artifact is the trained model itself repeats the model's build time
        for name, s in stages.items():
            if not isinstance(s, dict) or (s.get("artifact") and s["artifact"] in seen):
                continue
            seen.add(s.get("artifact"))
            if name == "measure":
                for vid, wall in (s.get("per_variant_s") or {}).items():
                    for key in (("variant", suite, _TAG.sub("", vid)), ("variant", "*", _TAG.sub("", vid))):
                        times[key].append(wall)
            elif not s.get("reused") and s.get("build_time_s") is not None and s.get("artifact"):
                kind = s["artifact"].rsplit("-", 1)[0]
                for key in (("stage", suite, _TAG.sub("", name)), ("kind", suite, kind), ("kind", "*", kind)):
                    times[key].append(s["build_time_s"])
    return runs, times


def _mean(times: dict, *keys) -> float | None:
    found = next((times[k] for k in keys if times.get(k)), None)
    return sum(found) / len(found) if found else None


def estimate(suite: Suite, plan: Plan, steps: list[Step], results_root: Path) -> str:
    runs, times = history(results_root)
    if not runs:
        return "no earlier runs on this machine"
    build_s, measure_s, unknown_build, unknown_measure = 0.0, 0.0, 0, 0
    for s in steps:
        if s.planned.cached:
            continue
        kind = s.planned.kind
        keys = ((("stage", suite.name, s.stage),) if s.final else ()) + (("kind", suite.name, kind),
                                                                          ("kind", "*", kind))
        t = _mean(times, *keys)
        build_s += t or 0.0
        unknown_build += t is None
    for v in plan.variants:
        t = _mean(times, ("variant", suite.name, v.id), ("variant", "*", v.id))
        measure_s += (t or 0.0) * len(suite.training_seeds)
        unknown_measure += (t is None) * len(suite.training_seeds)
    text = (f"{fmt_duration(build_s + measure_s)} (build {fmt_duration(build_s)}, measure {fmt_duration(measure_s)}; "
            f"mean times of {runs} earlier run(s) on this machine)")
    if unknown_build or unknown_measure:
        text += (f"; no earlier timing for {unknown_build} build step(s) and {unknown_measure} measurement(s), "
                 "not counted")
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
