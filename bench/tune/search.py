"""`bench tune SUITE --profile P`: the fastest (or smallest) variant on this machine that keeps the task's
metric within a bar of the teacher's and fits the profile's budgets, with the evidence.

The search space is a list of `variants:` lines (`tune.space`, or a default over the suite's students).
Every candidate is measured like any `bench run` variant, one at a time, into one run directory
(results/<suite>/<run-id>/), so `bench report` and `bench check` work on it and a rerun with the same
`--run-id` rebuilds and re-measures nothing. The teacher in PyTorch FP32 (the reference) is measured first.

- Order: cheap steps first. PyTorch FP32, ONNX FP32, dynamic INT8, then static INT8 (calibration),
  plain graphs before fused ones, in the order the space lists the models.
- Early rejection: a candidate whose artifact is over the profile's `max_size_mb` is rejected after its
  build, before it is measured (except a model's PyTorch FP32, the reference of the profile's
  `max_accuracy_drop_vs_fp32_pts`: it is measured, and fails the size budget like any row). With the
  `size` objective, a candidate no smaller than the best passing one so far is not measured: it cannot win.
- Sensitivity pass: ONNX INT8 candidates that fail only on accuracy and could still win get their nodes
  ranked (bench/tune/node_ranking.py) and are measured again with the 1, 2, 4 costliest kept in float, until
  one passes; not when the model's own FP32 fails the bar too.
- Stopping: when every candidate is measured or rejected, or when the budget (`--budget`) is spent. The
  budget is checked before each candidate, so the last one can run past it.
- Accuracy: the drop of the primary metric vs the reference, in points ×100, is judged on the upper end
  of a paired bootstrap interval over the same eval examples (bench/gate/accuracy_drop.py), not on the point
  estimate, by `bench check`'s own code, as are the profile's other budgets.
- Ranking: latency objectives rank by the interleaved speedup over the teacher where candidates have it
  (measure.interleave), as the report's decision block does (bench/gate/decision.py); size and throughput by
  the objective.
- Output: tune.json and tune.md in the run directory (every candidate with its objective, drop and
  interval, and verdict; the Pareto front of objective vs metric; the chosen variant and why it beat its
  neighbours), and chosen-suite.yaml, which reproduces exactly the chosen variant. When nothing passes:
  the closest candidates and which budget each failed, and exit code 1.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from bench import backends
from bench.common.errors import BenchError
from bench.gate.check import Profile, check_run, load_profile
from bench.plan import Plan, make_plan
from bench.schema.variant import Variant
from bench.spec.names import REFERENCE, is_reference_variant
from bench.spec.suite import Suite, TuneConfig, VariantSpec, load_suite
from bench.store.results import RUN_FILE
from bench.tune.records import DROP_KEY, OWN_DROP_KEY, Candidate, Settings, TuneResult

log = logging.getLogger(__name__)

def default_space(suite: Suite) -> list[VariantSpec]:
    students = list(suite.all_students) or ["teacher"]
    return [VariantSpec(model=students, format=["pytorch"], precision=["fp32", "int8-dynamic"]),
            VariantSpec(model=students, format=["onnx"], precision=["fp32", "int8-dynamic"],
                        graph=["plain", "optimized"]),
            VariantSpec(model=students, format=["onnx"], precision=["int8-dynamic"], quant=["per-channel"]),
            VariantSpec(model=students, format=["onnx"], precision=["int8-static"], quant=["default", "qoperator"])]


def _scoped(spec: VariantSpec, profile: Profile) -> VariantSpec:
    """A space line at the profile's threads and device, when the profile judges only those."""
    update = {}
    if profile.threads is not None:
        update["threads"] = [profile.threads]
    if profile.device is not None:
        update["device"] = [profile.device]
    return spec.model_copy(update=update)


def search_suite(suite: Suite, config: TuneConfig, profile: Profile) -> Suite:
    """The suite whose variants are the space plus the reference, for the first training seed."""
    space = [_scoped(s, profile) for s in (config.space or default_space(suite))]
    threads = sorted({t for s in space for t in (s.threads or suite.measure.threads)})
    reference = VariantSpec(model=["teacher"], format=["pytorch"], precision=["fp32"],
                            device=[profile.device or "cpu"], threads=threads)
    seeds = [suite.training_seeds[0]] if suite.seeds else None
    return suite.model_copy(update={"variants": [*space, reference], "seeds": seeds})


def cheap_first(variants: list[Variant], models: list[str]) -> list[Variant]:
    return sorted(variants, key=lambda v: (models.index(v.model) if v.model in models else len(models),
                                           backends.get(v.format).search_cost.get(v.precision, 9), v.graph != "plain",
                                           v.quant != "", v.calibration, v.quant, v.threads))


def settings_for(config: TuneConfig, profile: Profile, objective: str | None, budget_s: float | None,
                 max_drop_pts: float | None) -> Settings:
    drop = next((d for d in (max_drop_pts, config.max_drop_pts, getattr(profile, DROP_KEY)) if d is not None), 1.0)
    return Settings(objective or config.objective, drop, config.confidence, config.bootstrap_samples,
                    budget_s if budget_s is not None else config.budget_s, profile)


def on_one_target(suite: Suite, target: str | None) -> Suite:
    """The suite measuring on one of its cluster targets: a tune decides for one kind of machine."""
    if suite.cluster is None:
        raise BenchError(f"--cluster: suite {suite.name} has no cluster.targets section (the machines to measure on)")
    names = list(suite.cluster.targets)
    if target is None and len(names) > 1:
        raise BenchError(f"--cluster: suite {suite.name} has targets {', '.join(names)}; a tune decides for one "
                         "machine: pass --target")
    target = target or names[0]
    if target not in names:
        raise BenchError(f"--target {target}: not a target of suite {suite.name} ({', '.join(names)})")
    targets = {target: suite.cluster.targets[target]}
    return suite.model_copy(update={"cluster": suite.cluster.model_copy(update={"targets": targets})})


def tune(suite_path: Path, profile_name: str, objective: str | None = None, budget_s: float | None = None,
         max_drop_pts: float | None = None, results_root: Path = Path("results"), run_id: str | None = None,
         cache_dir: Path | None = None, cluster: str | None = None, target: str | None = None) -> TuneResult:
    """`cluster`: a Ray cluster's address: the candidates are measured in parallel on the nodes of one of the
    suite's cluster targets (`target`), as one `bench run --cluster` (see Search.try_all_at_once)."""
    suite = load_suite(suite_path)
    if target is not None and cluster is None:
        raise BenchError("--target: only with --cluster (the target a cluster tune measures on)")
    if cluster is not None:
        suite = on_one_target(suite, target)
    profile = load_profile(profile_name)
    settings = settings_for(suite.tune or TuneConfig(), profile, objective, budget_s, max_drop_pts)
    if settings.objective == "samples_per_s" and suite.measure.offline is None:
        raise BenchError(f"{suite_path}: objective samples_per_s needs measure.offline (the Offline scenario)")
    searched = search_suite(suite, suite.tune or TuneConfig(), profile)
    plan = make_plan(searched, str(suite_path), here=cluster is None)  # on a cluster: the target's node says
    references = [v for v in plan.variants if is_reference_variant(v)]
    models = list(dict.fromkeys(m for s in searched.variants[:-1] for m in s.model))
    order = cheap_first([v for v in plan.variants if not is_reference_variant(v)], models)
    if not order:
        raise BenchError(f"{suite_path}: the tune space has no variant this machine can run "
                         f"({len(plan.skipped)} skipped: {plan.skipped[0].reason if plan.skipped else 'empty'})")
    run_id = run_id or time.strftime("tune-%Y%m%d-%H%M%S")
    log.info("tune %s: %d candidates (%d skipped), objective %s, max drop %.2f pts at %g%% confidence%s",
             suite.name, len(order), len(plan.skipped), settings.objective, settings.max_drop_pts,
             100 * settings.confidence, f", budget {settings.budget_s:g} s" if settings.budget_s else "")
    search = Search(suite_path, searched, settings, references, results_root, run_id, cache_dir, cluster)
    if cluster:
        search.try_all_at_once(order)
    else:
        for v in order:
            search.try_candidate(v)
    search.judge()
    from bench.tune.sensitivity import sensitivity_pass

    sensitivity = sensitivity_pass(search, (suite.tune or TuneConfig()).sensitivity)
    result = TuneResult(suite.name, search.run_dir, settings, list(search.candidates.values()), plan.skipped,
                        round(search.spent(), 1), dict(search.suite.quantize.all_recipes), sensitivity)
    from bench.tune.report import write_outputs

    write_outputs(result, suite_path)
    return result


class Search:
    """One tune's state: the suite searched (it grows when the sensitivity pass adds candidates), the run
    directory every candidate is measured into, the candidates so far, the clock."""

    def __init__(self, suite_path: Path, suite: Suite, settings: Settings, references: list[Variant],
                 results_root: Path, run_id: str, cache_dir: Path | None, cluster: str | None = None):
        from bench.data.load import load_task_data
        from bench.run.suite_run import run_suite
        from bench.store.artifacts import ArtifactStore, cache_root

        self.suite_path, self.suite, self.settings, self.references = suite_path, suite, settings, references
        self.started = time.perf_counter()
        self.common = {"results_root": results_root, "run_id": run_id, "cache_dir": cache_dir, "cluster": cluster}
        # On a cluster: the one target measured on (the rows of another, from an earlier tune, are not judged).
        self.target = next(iter(suite.cluster.targets)) if cluster else None
        self.run_dir = run_suite(suite_path, variant_ids=[v.id for v in references], suite=suite, **self.common)
        self.data = load_task_data(suite.data, suite.task_def, suite.seed)
        self.store = ArtifactStore(cache_root(results_root, cache_dir))
        self.candidates: dict[str, Candidate] = {}

    def spent(self) -> float:
        return time.perf_counter() - self.started

    def over_budget(self, c: Candidate) -> bool:
        spent = self.spent()
        if self.settings.budget_s is not None and spent >= self.settings.budget_s:
            c.reason = f"the budget of {self.settings.budget_s:g} s was spent ({spent:.0f} s)"
            return True
        return False

    def built(self, v: Variant):
        from bench.build.pipeline import build_all

        return build_all(self.suite, Plan(variants=[v], skipped=[]), self.data, self.store,
                         self.suite.training_seeds[0])

    def try_candidate(self, v: Variant, origin: str = "") -> Candidate:
        from bench.run.suite_run import run_suite

        c = self.candidates.setdefault(v.id, Candidate(v, origin=origin))
        if self.over_budget(c):
            return c
        reject = _reject_before_measuring(v, self, self.settings, self.candidates)
        if reject:
            c.status, c.reason = "rejected before measuring", reject
            log.info("tune: %s rejected before measuring: %s", v.id, reject)
            return c
        run_suite(self.suite_path, variant_ids=[v.id], suite=self.suite, **self.common)
        c.status = "measured"
        if self.settings.objective == "size" or origin:  # size pruning and the exclusion steps need verdicts
            self.judge()
        return c

    def try_all_at_once(self, variants: list[Variant]) -> None:
        """On a cluster: every candidate not rejected on its built artifact (over max_size_mb) is measured in one
        run, in parallel across the target's nodes. The size objective's pruning (no smaller than the best
        passing candidate so far) is not applied: it only skips candidates that cannot win, so the choice is
        the serial tune's; the budget is checked once, before."""
        from bench.run.suite_run import run_suite

        to_measure = []
        for v in variants:
            c = self.candidates.setdefault(v.id, Candidate(v))
            if self.over_budget(c):
                continue
            # A CUDA candidate is built on the target's node: its size is known once measured.
            reject = None if v.device == "cuda" else _reject_before_measuring(v, self, self.settings, {})
            if reject:
                c.status, c.reason = "rejected before measuring", reject
                log.info("tune: %s rejected before measuring: %s", v.id, reject)
                continue
            to_measure.append(v)
        if to_measure:
            run_suite(self.suite_path, variant_ids=[v.id for v in to_measure], suite=self.suite, **self.common)
        info = json.loads((self.run_dir / RUN_FILE).read_text())
        cannot = {s["variant"]: s["reason"] for s in info["skipped"] if s.get("target") in (None, self.target)}
        for v in to_measure:
            c = self.candidates[v.id]
            c.status, c.reason = ("not run", cannot[v.id]) if v.id in cannot else ("measured", c.reason)

    def judge(self) -> None:
        judge(self.run_dir, list(self.candidates.values()), self.references, self.settings, self.target)

    def could_win(self, c: Candidate) -> bool:
        """Better on the objective than every passing candidate so far (or none passes yet)."""
        best = [p for p in self.candidates.values() if p.passes and p.objective is not None]
        return c.objective is not None and all(self.settings.rank_key(c) < self.settings.rank_key(p) for p in best)


def _reject_before_measuring(v: Variant, search: Search, settings: Settings,
                             candidates: dict[str, Candidate]) -> str | None:
    """A reason not to measure `v` once it is built: over the size budget, or (size objective) no smaller
    than the best passing candidate so far."""
    if settings.profile.max_size_mb is None and settings.objective != "size":
        return None
    own_reference = (v.format, v.precision) == (REFERENCE.format, REFERENCE.precision)
    if own_reference and settings.profile.max_accuracy_drop_vs_fp32_pts is not None:
        return None  # the model's own FP32 reference for that budget: measured whatever its size
    if backends.get(v.format).converts_at_load(v.precision):
        return None  # converted at load: its size is known only once measured
    artifact = search.built(v).artifacts[v.artifact_key]
    size_mb = backends.get(v.format).size_bytes(artifact.weights_dir) / 2**20
    limit = settings.profile.max_size_mb
    if limit is not None and size_mb > limit:
        return f"size {size_mb:.4g} MB > max {limit:g} MB (max_size_mb), known from the artifact"
    best = [c.objective for c in candidates.values() if c.passes and c.objective is not None]
    if settings.objective == "size" and best and size_mb >= min(best):
        return f"size {size_mb:.4g} MB is no smaller than the best passing candidate's {min(best):.4g} MB"
    return None



def judge(run_dir: Path, candidates: list[Candidate], references: list[Variant], settings: Settings,
          target: str | None = None) -> None:
    """Fill each measured candidate's objective, score, drop interval and budget failures from the rows, judged
    by `bench check`'s own code (one rule: a drop passes on its paired interval's upper end)."""
    from bench.store.results import open_run

    frame = open_run(run_dir, target=target).frame()
    rows = {r["variant_id"]: r for r in frame.to_dict("records")}
    profile = settings.profile.model_copy(update={DROP_KEY: settings.max_drop_pts, "threads": None, "device": None})
    checked = check_run(run_dir, profile, samples=settings.bootstrap_samples, confidence=settings.confidence,
                        target=target)
    at = {variant: i for i, variant in enumerate(checked.table["variant"])}
    accuracy_keys = {DROP_KEY, OWN_DROP_KEY}
    for c in candidates:
        row = rows.get(c.variant.id)
        if c.status not in ("measured", "failed") or row is None:
            continue
        if row.get("status") != "ok":
            c.status, c.reason = "failed", f"{row.get('status')}: {row.get('error')}"
            continue
        i = at[c.variant.id]
        c.status, c.score = "measured", row.get("score")
        c.objective = _objective(row, settings.field)
        if _objective(row, "speedup_vs_reference") is not None:  # measure.interleave
            c.speedup = (row["speedup_vs_reference"], row["speedup_ci_low"], row["speedup_ci_high"])
        keys = checked.failed_keys[i]
        c.failures = list(checked.reason_lists[i])
        c.accuracy_failed = any(k in accuracy_keys for k in keys)
        c.accuracy_only = all(k in accuracy_keys for k in keys)
        drop = checked.drops[i].get(DROP_KEY)
        if drop is None:
            c.accuracy_failed = True
            c.failures.append(f"accuracy drop vs teacher not judged: {checked.table.at[i, DROP_KEY]}")
            continue
        c.drop_pts, c.drop_low, c.drop_high = drop.point, drop.low, drop.high


def _objective(row: dict, name: str) -> float | None:
    if name == "offline_samples_per_s":
        entries = row.get("offline") if isinstance(row.get("offline"), list) else []
        return max((e["samples_per_s"] for e in entries), default=None)
    value = row.get(name)
    return None if value is None or pd.isna(value) else float(value)
