"""`bench run`: suite → plan → artifacts → one measured row per variant → results.jsonl + run.json.

A run directory is results/<suite>/<run-id>/. Passing an existing --run-id resumes that run: a
variant whose latest row is ok, from the same artifact and with the same measurement settings, is
not measured again; every other one is (and its new row supersedes the old one).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import __version__
from bench.build.pipeline import Built, build_all, seed_tag
from bench.common.errors import BenchError
from bench.common.paths import confined
from bench.data.load import load_task_data
from bench.plan import Plan, make_plan, shard_plan
from bench.run.bill import Progress
from bench.run.measure_key import measure_config_hash, measure_key
from bench.run.measure_variant import MeasureJob, Stages, measure_variant
from bench.run.rows import log_row, row_for
from bench.scenarios.interleave import reference_dir, reference_drift
from bench.schema import Machine
from bench.schema.child import ChildSpec
from bench.schema.variant import Variant
from bench.spec.suite import Suite, load_suite, suite_to_dict
from bench.store.artifacts import ArtifactStore, cache_root, file_lock, write_json_atomic
from bench.store.envinfo import environment
from bench.store.results import RUN_FILE, SCHEMA_VERSION, append_row, latest_rows, read_rows

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"  # written by `bench calibrate` into the results root


def load_calibration(results_root: Path) -> dict:
    path = Path(results_root) / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class RunContext:
    """What every step of one `bench run` shares: the suite and its plan, where the run writes, the data
    and the artifact cache, and, once the run has started, the machine, this machine's matmul peaks, the
    measurement settings' key, the progress line and run.json's contents."""

    suite: Suite
    suite_path: Path
    plan: Plan
    run_dir: Path
    run_id: str
    results_root: Path
    data: Any
    store_root: Path
    shard: tuple[int, int] | None = None
    cluster: str | None = None  # a Ray cluster's address (bench/run/cluster.py); None: measure here
    targets: list = field(default_factory=list)  # the suite's cluster targets (bench.run.cluster.Target)
    machine: Machine | None = None
    peaks: dict = field(default_factory=dict)
    measure_key: str = ""
    progress: Progress | None = None
    run_info: dict | None = None

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"


def _task(suite: Suite, data):
    """The suite's task (bench.tasks.table.Task): the data's own, else the suite's, else GLUE by name."""
    from bench.tasks.table import GLUE_TASKS

    return getattr(data, "task", None) or getattr(suite, "task_def", None) or GLUE_TASKS[suite.task]


def measure_spec(suite: Suite, variant: Variant, built: Built, data) -> ChildSpec:
    """The child's spec: the variant, the task and every eval split (primary first: latency runs on it)."""
    from bench.data.splits import eval_splits

    return ChildSpec(variant=variant.as_dict(), artifact_dir=built.artifacts[variant.artifact_key].weights_dir,
                     task=ChildSpec.task_fields(_task(suite, data)),
                     eval_sets=[ChildSpec.eval_set_fields(s) for s in eval_splits(data)],
                     max_length=suite.data.max_length, measure=suite.measure)


def run_suite(suite_path: Path, results_root: Path = Path("results"), run_id: str | None = None,
              shard: tuple[int, int] | None = None, cache_dir: Path | None = None,
              variant_ids: list[str] | None = None, suite: Suite | None = None, cluster: str | None = None) -> Path:
    """`cache_dir`: the artifact cache (default <results_root>/artifacts). `variant_ids`: measure only these
    of the plan (`bench tune` measures one candidate at a time into one run directory). `suite`: the suite
    already loaded from `suite_path` (and possibly derived from it). `cluster`: a Ray cluster's address: build
    there once and measure on each of the suite's `cluster.targets` (bench/run/cluster.py)."""
    suite = suite or load_suite(suite_path)
    if cluster is not None and suite.cluster is None:
        raise BenchError(f"--cluster: suite {suite.name} has no cluster.targets section (the machines to measure on)")
    if cluster is not None and shard is not None:
        raise BenchError("--cluster and --shard: a cluster measures every variant on every target; use one of them")
    if suite.measure.server:  # before any build: a missing package is an error now, not after training
        from bench.serve.extra import require_serve_extra

        require_serve_extra("measure.server")
    # On a cluster each target's node says what it cannot run (bench/run/cluster.py), not this machine.
    plan: Plan = make_plan(suite, str(suite_path), here=cluster is None)
    if shard:
        plan = shard_plan(plan, *shard)
    if variant_ids is not None:
        plan = Plan(variants=[v for v in plan.variants if v.id in variant_ids], skipped=plan.skipped)
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S")
    run_dir = confined(results_root, suite.name, run_id)
    store_root = cache_root(results_root, cache_dir)
    # Bad data (a missing file, a malformed line) is an error before anything is written.
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    if cluster is not None:  # an unreachable cluster or artifact URL is an error before anything is written
        from bench.run.cluster import connect
        from bench.store.mirror import check_url

        connect(cluster)
        if suite.cluster.artifact_url:
            check_url(suite.cluster.artifact_url)
    run_dir.mkdir(parents=True, exist_ok=True)
    if suite.trust_remote_code:
        log.warning("trust_remote_code is ON for suite %s: code shipped with %s will run in this process",
                    suite.name, suite.teacher.source)
    # One process per run directory at a time: a second `bench run --run-id` on it waits, then resumes.
    with file_lock(run_dir / ".lock", f"waiting for another bench run on {run_dir}"):
        return _run_locked(RunContext(suite, Path(suite_path), plan, run_dir, run_id, results_root, data, store_root,
                                      shard, cluster))


def _planned(run_dir: Path, plan: Plan) -> list[str]:
    """The run's planned variant ids: this call's, after those of earlier calls on the same run directory
    (a resumed run, or `bench tune` adding one candidate at a time)."""
    path = run_dir / RUN_FILE
    earlier = json.loads(path.read_text()).get("planned", []) if path.is_file() else []
    return list(dict.fromkeys([*earlier, *(v.id for v in plan.variants)]))


def _run_locked(ctx: RunContext) -> Path:
    cluster_info = _join_cluster(ctx) if ctx.cluster else None  # plans per target: ctx.plan changes
    suite, suite_path, plan, run_dir, run_id = ctx.suite, ctx.suite_path, ctx.plan, ctx.run_dir, ctx.run_id
    data, shard, store_root = ctx.data, ctx.shard, ctx.store_root
    store = ArtifactStore(store_root)
    calibration = load_calibration(ctx.results_root)
    # A peak measured on another machine says nothing about this one.
    ctx.peaks = calibration.get("fp32_matmul_peak_gflops", {}) if calibration.get("host") == platform.node() else {}
    started = time.perf_counter()
    env = environment()
    machine = ctx.machine = Machine(host=env["hostname"], cpu_model=env["cpu"]["model"], gpus=env["gpus"],
                                    shard=f"{shard[0]}/{shard[1]}" if shard else None)
    run_info = {
        "schema_version": SCHEMA_VERSION, "bench_version": __version__, "run_id": run_id, "suite": suite.name,
        "suite_file": str(suite_path), "suite_resolved": suite_to_dict(suite), "seeds": suite.training_seeds,
        "trust_remote_code": suite.trust_remote_code,  # model code from the source ran in this process
        "environment": env, "shard": machine.shard, "status": "running",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "calibration": calibration or None, "artifact_cache": str(store_root),
        "planned": _planned(run_dir, plan),
        "skipped": [{"variant": s.variant.id, "reason": s.reason} for s in plan.skipped],
    }
    if cluster_info:
        run_info["cluster"], target_skips = cluster_info
        # A resumed run: a target measured earlier whose nodes are gone now keeps its rows, not a skip.
        measured = {(r["variant_id"], r.get("target")) for r in latest_rows(read_rows(run_dir))
                    if r.get("status") == "ok"}
        run_info["skipped"] += [s for s in target_skips if (s["variant"], s["target"]) not in measured]
    write_json_atomic(run_dir / RUN_FILE, run_info)
    for s in plan.skipped:
        log.info("skip %s: %s", s.variant.id, s.reason)

    run_info["data"] = {"origin": data.origin, "fingerprint": data.fingerprint,
                        "train_rows": len(data.splits["train"]), "eval_rows": len(data.splits["validation"])}
    run_info["stages"] = {}
    planned = set(run_info["planned"])
    ctx.measure_key = measure_key(suite.measure, data.fingerprint)
    per_seed = sum(not t.why_not(v) for v in plan.variants for t in ctx.targets) if ctx.cluster else len(plan.variants)
    ctx.progress = Progress(per_seed * len(suite.training_seeds), started)
    ctx.run_info = run_info
    measure_wall = {}
    for seed in suite.training_seeds:  # train a seed's models, then measure them, then the next seed
        if ctx.cluster:
            from bench.run.cluster import build_on_cluster

            per_target = build_on_cluster(suite, plan, data, store_root, seed, ctx.targets)
            for built in per_target.values():
                run_info["stages"] |= built.stages
            write_json_atomic(run_dir / RUN_FILE, run_info)
            measure_wall |= _measure_seed_on_cluster(ctx, per_target, seed)
        else:
            built = build_all(suite, plan, data, store, seed)
            run_info["stages"] |= built.stages
            write_json_atomic(run_dir / RUN_FILE, run_info)
            measure_wall |= _measure_seed(ctx, built)
    rows = [r for r in latest_rows(read_rows(run_dir)) if r["variant_id"] in planned
            and r.get("seed") in suite.training_seeds]
    run_info["stages"]["measure"] = {"wall_s": round(sum(measure_wall.values()), 2), "per_variant_s": measure_wall,
                                     "config_hash": measure_config_hash(suite.measure)}
    run_info["status"] = "finished" if all(r.get("status") == "ok" for r in rows) else "finished-with-failures"
    run_info["wall_s"] = round(time.perf_counter() - started, 2)
    write_json_atomic(run_dir / RUN_FILE, run_info)
    log.info("results: %s (%d rows, %s)", run_dir / "results.jsonl", len(rows), run_info["status"])
    return run_dir


def _measure_seed(ctx: RunContext, built: Built) -> dict:
    """Measure every planned variant of one training seed; returns wall seconds per variant. With
    measure.interleave, the reference's drift goes into run.json (`ctx.run_info`)."""
    suite, plan, run_dir = ctx.suite, ctx.plan, ctx.run_dir
    ctx.progress = ctx.progress or Progress(len(plan.variants), time.perf_counter())
    done = measured_already(ctx, built)
    tag = seed_tag(suite, built.seed)
    with Stages(suite.measure, run_dir / "logs", tag, built.seed, reference_dir(built)) as stages:
        measure_wall = _measure_variants(ctx, built, {variant_id for variant_id, target in done if target is None},
                                         stages)
    if stages.rounds:
        _record_drift(ctx, stages.rounds.drift())
    return measure_wall


def _record_drift(ctx: RunContext, drift: dict) -> None:
    """The reference's drift over the run (bench/scenarios/interleave.py) into run.json, logged."""
    run_info = ctx.run_info if ctx.run_info is not None else json.loads((ctx.run_dir / RUN_FILE).read_text())
    run_info["reference_drift"] = (run_info.get("reference_drift") or {}) | drift
    write_json_atomic(ctx.run_dir / RUN_FILE, run_info)
    for ref, d in drift.items():
        log.log(logging.WARNING if d["flagged"] else logging.INFO,
                "reference %s drifted %+.1f%% over the run (noise floor %.1f%%)", ref, d["drift_pct"],
                d["noise_floor_pct"])


def _join_cluster(ctx: RunContext) -> tuple[dict, list[dict]]:
    """Join the cluster, find each target's nodes and ask one of them what it cannot run; a variant no target
    can run moves to the plan's skipped. Returns run.json's `cluster` and the per-target skips."""
    from bench.plan import Skipped
    from bench.run.cluster import connect, find_targets, probe_targets

    connect(ctx.cluster)
    ctx.targets = find_targets(ctx.suite.cluster)
    probe_targets(ctx.targets, ctx.plan.variants, ctx.suite.measure)
    info = {"address": ctx.cluster, "targets": {
        t.name: {"resource": t.resource, "hosts": t.hosts, "nodes": [n["NodeID"] for n in t.nodes]}
        for t in ctx.targets}}
    runnable, skipped, target_skips = [], list(ctx.plan.skipped), []
    for variant in ctx.plan.variants:
        reasons = [r for t in ctx.targets if (r := t.why_not(variant))]
        if len(reasons) == len(ctx.targets):
            skipped.append(Skipped(variant, "no target can run it: " + "; ".join(reasons)))
            continue
        runnable.append(variant)
        for target in ctx.targets:
            if reason := target.why_not(variant):
                target_skips.append({"variant": variant.id, "target": target.name, "reason": reason})
                log.info("skip %s on %s: %s", variant.id, target.name, reason)
    for target in ctx.targets:
        log.info("target %s: %d node(s) declaring %r%s", target.name, len(target.nodes), target.resource,
                 f" ({', '.join(target.hosts)})" if target.hosts else "")
    ctx.plan = Plan(variants=runnable, skipped=skipped)
    return info, target_skips


def _measure_seed_on_cluster(ctx: RunContext, per_target: dict[str, Built], seed: int) -> dict:
    """Measure every planned variant of one seed on every target that can run it, in parallel across the
    cluster; rows are written here as measurements return. Returns wall seconds per (variant, target)."""
    from bench.run.cluster import artifact_dirs, measure_on_cluster

    tag, measure_wall, jobs = seed_tag(ctx.suite, seed), {}, []
    for target in ctx.targets:
        built = per_target[target.name]
        done = {variant for variant, on in measured_already(ctx, built) if on == target.name}
        for variant in ctx.plan.variants:
            if target.why_not(variant):
                continue
            if variant.id in done:
                log.info("measured already in this run: %s%s on %s", variant.id, tag, target.name)
                ctx.progress.skip()
                continue
            job = measure_job(ctx, variant, built, f"{tag}@{target.name}")
            jobs.append((job, artifact_dirs(built, variant, job.reference_dir), target))

    # Each measurement's own reference child, its rounds concatenated per node in the order it measured (one
    # measurement at a time): the node's drift over the run, as a local run's reference gives the machine's.
    reference_rounds: dict[str, list[float]] = {}

    def on_row(job: MeasureJob, outcome, machine: Machine) -> None:
        for ref, ms in outcome.reference_ms.items():
            reference_rounds.setdefault(f"{ref}{tag}@{machine.target}/{machine.host}", []).extend(ms)
        row = row_for(ctx, job.variant, per_target[machine.target], outcome.result, outcome.wall_s,
                      outcome.scenarios, machine)
        append_row(ctx.run_dir, row)
        measure_wall[job.variant.id + job.tag] = round(outcome.wall_s, 2)
        ctx.progress.measured(outcome.wall_s)
        where = machine.host or machine.target
        log.info("%s", ctx.progress.line(f"{job.variant.id}{job.tag} measured on {where}", time.perf_counter()))
        log_row(row, outcome.wall_s)

    measure_on_cluster(jobs, ctx.targets, ctx.suite.cluster.retries, on_row, ctx.suite.cluster.artifact_url)
    if drift := {key: reference_drift(ms) for key, ms in reference_rounds.items() if len(ms) >= 6}:
        _record_drift(ctx, drift)
    return measure_wall


def measured_already(ctx: RunContext, built: Built) -> set[tuple[str, str | None]]:
    """(variant id, target) of this seed's variants whose latest row is ok, from the same artifact and with
    the same measurement settings: a resumed run does not measure them again."""
    planned = {v.id: v for v in ctx.plan.variants}

    def current(row: dict) -> bool:
        variant = planned.get(row.get("variant_id"))
        return (variant is not None and row.get("seed") == built.seed and row.get("status") == "ok"
                and row.get("measure_key") == ctx.measure_key
                and row.get("artifact") == built.artifacts[variant.artifact_key].path.name)

    return {(r["variant_id"], r.get("target")) for r in latest_rows(read_rows(ctx.run_dir)) if current(r)}


def measure_job(ctx: RunContext, variant: Variant, built: Built, tag: str) -> MeasureJob:
    spec = measure_spec(ctx.suite, variant, built, ctx.data)
    # The accuracy pass's predictions per example: the Server scenario compares the served answers with
    # them, `bench tune` bootstraps the metric's drop from them (paired over the same examples).
    spec.predictions_path = ctx.logs / f"{variant.id}{tag}.predictions.json"
    return MeasureJob(variant, spec, ctx.logs, tag, built.seed, ctx.suite.measure, reference_dir(built))


def _measure_variants(ctx: RunContext, built: Built, done: set[str], stages: Stages) -> dict:
    suite, plan, run_dir, progress = ctx.suite, ctx.plan, ctx.run_dir, ctx.progress
    tag = seed_tag(suite, built.seed)
    measure_wall = {}
    for variant in plan.variants:
        if variant.id in done:
            log.info("measured already in this run: %s%s", variant.id, tag)
            progress.skip()
            continue
        log.info("%s", progress.line(variant.id + tag, time.perf_counter()))
        outcome = measure_variant(measure_job(ctx, variant, built, tag), stages)
        progress.measured(outcome.wall_s)
        measure_wall[variant.id + tag] = round(outcome.wall_s, 2)
        row = row_for(ctx, variant, built, outcome.result, outcome.wall_s, outcome.scenarios)
        append_row(run_dir, row)
        log_row(row, outcome.wall_s)
    return measure_wall


def train_suite(suite_path: Path, results_root: Path = Path("results"), models: list[str] | None = None,
                cache_dir: Path | None = None) -> dict:
    """`bench train`: build only the trained models (teacher, students) of a suite, for every seed.
    Runs as is, or under `torchrun`/`accelerate launch` with several processes: the Trainer then
    trains with DDP, every rank joins each build, and rank 0 alone publishes the artifacts.
    `bench run` afterwards reuses them. Returns {seed: {model: artifact folder}}."""
    import os

    from bench.build.pipeline import build_models

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState()  # joins the process group torchrun/accelerate set up (gloo on CPU, nccl on GPU)
    suite = load_suite(suite_path)
    plan = make_plan(suite, str(suite_path))
    if models:
        unknown = sorted(set(models) - {"teacher", *suite.all_students})
        if unknown:
            raise BenchError(f"--model: {unknown[0]!r} is not a model of suite {suite.name}")
        plan = Plan(variants=[v for v in plan.variants if v.model in models], skipped=plan.skipped)
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    store = ArtifactStore(cache_root(results_root, cache_dir))
    trained = {}
    for seed in suite.training_seeds:
        built = Built(seed=seed)
        build_models(suite, plan, data, store, seed, built)
        trained[seed] = {name: str(artifact.path) for name, artifact in built.models.items()}
    return trained
