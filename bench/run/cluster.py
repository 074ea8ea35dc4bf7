"""`bench run --cluster ADDRESS`: build once, measure every variant on every target, on a Ray cluster.

Ray is the engine (`ray start` on each machine; `auto` joins the cluster this machine is part of); bench only
says what each task needs:
- the plan is made per target: one node of each target answers what it cannot run (no GPU, no TensorRT, no
  onnxruntime CUDA provider), by the plan's own rules, so a CPU-only driver plans GPU rows for a GPU target;
- a seed's builds (training, export, quantization) are one task, on a node declaring the suite's
  `cluster.build_resource` when set; then each target's CUDA variants are built on a node of that target, on
  its GPU. They write into the artifact cache, the only thing tasks share (a folder every node mounts at the
  same path, like the results folder, or a local cache per node mirrored at `cluster.artifact_url`, where a
  build node fetches what was published rather than building it again);
- each (variant, target) measurement is one task asking for one unit of the target's resource, which each
  of its nodes declares once: one measurement holds a node at a time. The node checks the artifact's files
  against their sha256 in its manifest before measuring, then measures exactly as `bench run` does (the
  measuring child, its isolation, the scenarios), the speedup's reference included;
- the driver (this process) alone writes results.jsonl, one row as each measurement returns, so a killed
  driver resumes like a local run: what has a row is not measured again.
A measurement whose node or worker died runs again on a node of the same target, `cluster.retries` times at
most; its row lists the attempts that died. A target no alive node declares is skipped with the reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.build.pipeline import Built, build_all, seed_tag
from bench.common.errors import BenchError
from bench.plan import Plan
from bench.schema import Machine
from bench.schema.child import ChildFailure
from bench.schema.variant import Variant
from bench.spec.cluster import ClusterConfig
from bench.spec.suite import Suite
from bench.store.artifacts import ArtifactStore, folder_problem
from bench.store.mirror import MirroredStore, fetch

log = logging.getLogger(__name__)

NODE_FILE = ".node"  # logs/<variant><tag>.node: the node measuring it, written when the task starts


@dataclass
class Target:
    """A suite target, the alive nodes that declare its resource, and what one of them cannot run (its
    probe: the plan's own skip reasons, answered on that node)."""

    name: str
    resource: str
    nodes: list[dict]
    cannot_run: dict[str, str] = field(default_factory=dict)  # variant id -> the node's reason

    @property
    def hosts(self) -> list[str]:
        return sorted({n["NodeManagerHostname"] for n in self.nodes})

    @property
    def has_gpu(self) -> bool:
        return any(n["Resources"].get("GPU", 0) >= 1 for n in self.nodes)

    def why_not(self, variant: Variant) -> str | None:
        """Why this target cannot measure the variant, or None when it can."""
        if not self.nodes:
            return f"target {self.name}: no alive node declares the resource {self.resource!r}"
        if variant.id in self.cannot_run:
            return f"target {self.name}: {self.cannot_run[variant.id]}"
        if variant.device == "cuda" and not self.has_gpu:  # a GPU torch sees but `ray start` did not declare
            return f"target {self.name}: its nodes declare no GPU to Ray (ray start --num-gpus=1)"
        return None


def connect(address: str) -> None:
    """Join the Ray cluster at `address` (`auto`: the one this machine belongs to) as its driver."""
    try:
        import ray
    except ImportError:
        raise BenchError("--cluster needs Ray: pip install 'bench-bert[cluster]'") from None
    if ray.is_initialized():
        return
    try:
        # The driver's offline switches reach the tasks; a node's own environment is left alone otherwise.
        env = {k: v for k in ("HF_HUB_OFFLINE", "BENCH_OFFLINE") if (v := os.environ.get(k)) is not None}
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True,
                 runtime_env={"env_vars": env} if env else None)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BenchError(f"--cluster {address}: cannot join a Ray cluster there: {str(exc).splitlines()[0]}") \
            from None


def find_targets(config: ClusterConfig) -> list[Target]:
    """The suite's targets and their alive nodes; a node declaring a target's resource other than once is an
    error (two units would let two measurements share its cores)."""

    alive = _alive_nodes()
    if config.build_resource and not any(config.build_resource in n["Resources"] for n in alive):
        raise BenchError(f"cluster.build_resource: no alive node declares {config.build_resource!r} "
                         f"(ray start --resources='{{\"{config.build_resource}\": 1}}' on the build node)")
    for node in alive:
        declared = [name for name in config.targets if config.resource_of(name) in node["Resources"]]
        if len(declared) > 1:  # two targets' measurements would share its cores
            raise BenchError(f"cluster.targets: node {node['NodeManagerHostname']} ({node['NodeID'][:8]}) declares "
                             f"the resources of targets {', '.join(declared)}; a node is one target")
    targets = []
    for name in config.targets:
        resource = config.resource_of(name)
        nodes = [n for n in alive if resource in n["Resources"]]
        for node in nodes:
            units = node["Resources"][resource]
            if units != 1:
                raise BenchError(
                    f"cluster.targets.{name}: node {node['NodeManagerHostname']} ({node['NodeID'][:8]}) declares "
                    f"{resource}={units:g}; declare it once per node (ray start --resources='{{\"{resource}\": 1}}') "
                    "so that one measurement holds a node at a time")
        targets.append(Target(name, resource, nodes))
    return targets


def _probe_task(variants: list[Variant], measure) -> dict[str, str]:
    """On a node of a target: what this node cannot run, by the plan's own rules (its GPU, its packages)."""
    from bench.plan import skip_reason

    return {v.id: reason for v in variants if (reason := skip_reason(v, measure))}


def probe_targets(targets: list[Target], variants: list[Variant], measure) -> None:
    """Ask one node of each target (they run in parallel) what it cannot run: a target's nodes are one kind of
    machine, so the plan is made per target there, not on the driver (which may have no GPU)."""
    import ray

    # With the node's GPU (Ray hides it from a task that asks for none), in a fresh worker (torch caches
    # what it found at its first CUDA call for the life of the process).
    probes = {t.name: ray.remote(max_calls=1)(_probe_task).options(
        num_cpus=0, num_gpus=1 if t.has_gpu else 0, resources={t.resource: 1},
        name=f"bench-probe {t.name}").remote(variants, measure) for t in targets if t.nodes}
    for target in targets:
        if target.name in probes:
            try:
                target.cannot_run = ray.get(probes[target.name])
            except ray.exceptions.RayError as exc:
                raise BenchError(f"cluster.targets.{target.name}: asking a node what it can run failed: "
                                 f"{str(exc).strip().splitlines()[-1]}") from None


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _build_task(suite: Suite, models: Plan, plan: Plan, data, store_root: Path, seed: int) -> Built:
    """On a build node: the trained models `models` measures and the artifacts of `plan`, into the cache (reused
    when there, or fetched from `cluster.artifact_url` when published there, and published there)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # Ray sets OMP_NUM_THREADS to the task's num_cpus
    url = suite.cluster.artifact_url
    store = MirroredStore(store_root, url) if url else ArtifactStore(store_root)
    return build_all(suite, plan, data, store, seed, models=models)  # a MirroredStore publishes as it goes


def built_folders(built: Built) -> list[Path]:
    return list(dict.fromkeys(a.path for a in [*built.models.values(), *built.artifacts.values()]))


def build_on_cluster(suite: Suite, plan: Plan, data, store_root: Path, seed: int, targets: list[Target]
                     ) -> dict[str, Built]:
    """One seed's builds, each once: the models and every CPU variant's artifact on a build node; then each
    target's CUDA variants on a node of that target, on its GPU (a TensorRT engine is built for the GPU that runs
    it, an FP16 graph checks its parity on CUDA), from the models the build node trained. Returns what each
    target measures."""
    import ray

    cfg = suite.cluster
    on_gpu = {t.name: Plan([v for v in plan.variants if v.device == "cuda" and not t.why_not(v)], [])
              for t in targets}
    common = Plan([v for v in plan.variants if v.device != "cuda"], [])
    resources = {cfg.build_resource: 1} if cfg.build_resource else {}
    log.info("building on the cluster%s (seed %d)",
             f" (a node declaring {cfg.build_resource!r})" if cfg.build_resource else "", seed)
    built = task_result(ray.remote(_build_task).options(
        num_cpus=1, resources=resources, max_retries=cfg.retries, name=f"bench-build{seed_tag(suite, seed)}"
    ).remote(suite, plan, common, data, store_root, seed))
    gpu_builds = {t.name: ray.remote(max_calls=1)(_build_task).options(
        num_cpus=0, num_gpus=1, resources={t.resource: 1}, max_retries=cfg.retries,
        name=f"bench-build{seed_tag(suite, seed)}@{t.name}").remote(suite, on_gpu[t.name], on_gpu[t.name], data,
                                                                   store_root, seed)
        for t in targets if on_gpu[t.name].variants}
    if gpu_builds:
        log.info("building the CUDA variants on a node of target(s) %s", ", ".join(gpu_builds))
    per_target = {}
    for target in targets:
        own = Built(seed=seed, models=dict(built.models), artifacts=dict(built.artifacts), stages=dict(built.stages))
        if target.name in gpu_builds:
            on_node = task_result(gpu_builds[target.name])
            own.artifacts |= on_node.artifacts
            own.stages |= {f"{stage}@{target.name}": info for stage, info in on_node.stages.items()
                           if stage not in built.stages}
        per_target[target.name] = own
    if cfg.artifact_url:  # the driver's rows read the artifacts' facts (size on disk) from its own cache
        for own in per_target.values():
            for folder in built_folders(own):
                fetch(folder, cfg.artifact_url)
    return per_target


def task_result(ref):
    """ray.get, raising bench's own error in the task (a BenchError) again here as it would be raised locally."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        raise (cause.cause if isinstance(getattr(cause, "cause", None), BenchError) else cause) from None


def _measure_task(job, artifact_dirs: list[Path], artifact_url: str | None):
    """On a node of the target: fetch (from `artifact_url`) and check what it reads, then measure as `bench run`
    does. Returns the outcome, where it was measured, and the measurement's files in `logs` (spec, predictions,
    child logs) for the driver's run directory when the nodes share no folder."""
    import ray

    from bench.run.measure_variant import MeasureOutcome, Stages, measure_variant
    from bench.schema import Speedup
    from bench.store.envinfo import environment

    job.logs.mkdir(parents=True, exist_ok=True)
    (job.logs / f"{job.variant.id}{job.tag}{NODE_FILE}").write_text(ray.get_runtime_context().get_node_id())
    env = environment()
    machine = Machine(host=env["hostname"], cpu_model=env["cpu"]["model"], gpus=env["gpus"])
    try:
        for folder in artifact_dirs if artifact_url else []:
            fetch(folder, artifact_url)
        bad = next(filter(None, map(folder_problem, artifact_dirs)), None)
    except BenchError as exc:
        bad = str(exc)
    if bad:
        failure = ChildFailure(status="failed", error=f"artifact check on {machine.host}: {bad}")
        return MeasureOutcome(failure, Speedup(), None, None, 0.0), machine, {}
    with Stages.for_job(job) as stages:
        outcome = measure_variant(job, stages)
    outcome.reference_ms = dict(stages.rounds.reference_ms) if stages.rounds else {}
    return outcome, machine, _own_files(job)


def _own_files(job) -> dict[str, bytes]:
    """This measurement's files in `logs`: its own (`<variant><tag>.*`) and its reference child's."""
    mine, its_reference = f"{job.variant.id}{job.tag}.", f"{job.tag}-for-{job.variant.id}."
    return {p.name: p.read_bytes() for p in job.logs.iterdir() if p.is_file() and (
        p.name.startswith(mine) or p.name.startswith("reference-") and its_reference in p.name)}


def artifact_dirs(built: Built, variant: Variant, reference_dir: Path | None) -> list[Path]:
    """The published folders a measurement reads: the variant's artifact (and the model it converts at load
    time), and the speedup's reference."""
    artifact = built.artifacts[variant.artifact_key]
    dirs = [artifact.path, built.models[variant.model].path]
    if reference_dir is not None:
        dirs.append(built.models["teacher"].path)
    return list(dict.fromkeys(dirs))


POLL_S = 5.0  # how often the driver looks for targets left without an alive node while it waits


def measure_on_cluster(jobs: list, targets: list[Target], retries: int, on_row, artifact_url: str | None = None
                       ) -> None:
    """Run every (job, artifact dirs, target) measurement, in parallel across the targets' nodes; `on_row(job,
    outcome, machine)` is called in this process as each one returns. A measurement whose target has no alive
    node left fails instead of waiting for one forever."""
    import ray

    remote = ray.remote(_measure_task)
    # A CUDA measurement in a fresh worker: the machine record's GPU list is read through torch, which keeps
    # what it found at its first CUDA call (a CPU task before it on that worker saw no GPU).
    on_gpu = ray.remote(max_calls=1)(_measure_task)
    pending: dict = {}

    def submit(job, dirs, target: Target, died: list[dict]) -> None:
        options = dict(num_cpus=0, resources={target.resource: 1}, max_retries=0,
                       name=f"bench-measure {job.variant.id}{job.tag}")
        task = on_gpu if job.variant.device == "cuda" else remote
        if job.variant.device == "cuda":
            options["num_gpus"] = 1
        pending[task.options(**options).remote(job, dirs, artifact_url)] = (job, dirs, target, died)

    def row(job, target: Target, outcome, machine: Machine | None, died: list[dict]) -> None:
        machine = (machine or Machine(host=_host_of(died[-1]["node"]) if died else None)).model_copy(
            update={"target": target.name, "cluster_attempts": died or None})
        on_row(job, outcome, machine)

    for job, dirs, target in jobs:
        submit(job, dirs, target, [])
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
        if not ready:
            declared = {resource for n in _alive_nodes() for resource in n["Resources"]}
            for ref in [r for r, (_, _, target, _) in pending.items() if target.resource not in declared]:
                job, _, target, died = pending.pop(ref)
                ray.cancel(ref, force=True)
                row(job, target, _failed(f"target {target.name}: no alive node declares {target.resource!r} any "
                                         "more; not measured"), None, died)
            continue
        ref = ready[0]
        job, dirs, target, died = pending.pop(ref)
        try:
            outcome, machine, files = ray.get(ref)
            for name, data in files.items():  # a node with a folder of its own: its files land here too
                if not (job.logs / name).exists():
                    (job.logs / name).write_bytes(data)
        except ray.exceptions.RayTaskError as exc:  # bench's own code raised: the same error on any node
            cause = str(exc.as_instanceof_cause()).strip().splitlines()[-1]
            outcome, machine = _failed(f"on the cluster: {cause}"), None
        except ray.exceptions.RayError as exc:  # the node, its raylet or the worker died
            node_file = job.logs / f"{job.variant.id}{job.tag}{NODE_FILE}"
            died = [*died, {"node": node_file.read_text() if node_file.is_file() else None,
                            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"}]
            node_file.unlink(missing_ok=True)  # the next attempt writes its own
            left = _alive_nodes_of(target)
            if len(died) <= retries and left:
                log.warning("%s%s: %s died (%s); again on a node of target %s (attempt %d of %d, %d node(s) alive)",
                            job.variant.id, job.tag, died[-1]["node"] or "its node", died[-1]["error"], target.name,
                            len(died) + 1, retries + 1, len(left))
                submit(job, dirs, target, died)
                continue
            why = f"retries: {retries}" if left else "no alive node of the target left"
            outcome, machine = _failed(f"the measurement's node or worker died {len(died)} time(s) on target "
                                       f"{target.name} ({why}); last: {died[-1]['error']}"), None
        row(job, target, outcome, machine, died)


def _alive_nodes_of(target: Target) -> list[dict]:
    return [n for n in _alive_nodes() if target.resource in n["Resources"]]


def _host_of(node_id: str | None) -> str | None:
    """The host name of a Ray node, dead or alive (Ray keeps dead nodes in its table)."""
    import ray

    return next((n["NodeManagerHostname"] for n in ray.nodes() if node_id and n["NodeID"] == node_id), None)


def _failed(error: str):
    from bench.run.measure_variant import MeasureOutcome
    from bench.schema import Speedup

    return MeasureOutcome(ChildFailure(status="failed", error=error), Speedup(), None, None, 0.0)
