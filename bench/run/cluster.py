"""`bench run --cluster ADDRESS`: build once, measure every variant on every target, on a Ray cluster.

Ray is the engine (`ray start` on each machine; `auto` joins the cluster this machine is part of); bench only
says what each task needs:
- a seed's builds (training, export, quantization) are one task, on a node declaring the suite's
  `cluster.build_resource` when set; they write into the artifact cache, the only thing tasks share
  (a folder every node mounts at the same path, like the results folder);
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
from dataclasses import dataclass
from pathlib import Path

from bench.build.pipeline import Built, build_all, seed_tag
from bench.common.errors import BenchError
from bench.schema import Machine
from bench.schema.child import ChildFailure
from bench.schema.variant import Variant
from bench.spec.cluster import ClusterConfig
from bench.spec.suite import Suite
from bench.store.artifacts import MANIFEST, ArtifactStore, file_sha256

log = logging.getLogger(__name__)

NODE_FILE = ".node"  # logs/<variant><tag>.node: the node measuring it, written when the task starts


@dataclass
class Target:
    """A suite target and the alive nodes that declare its resource."""

    name: str
    resource: str
    nodes: list[dict]

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
        if variant.device == "cuda" and not self.has_gpu:
            return f"target {self.name}: its nodes have no GPU"
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
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BenchError(f"--cluster {address}: cannot join a Ray cluster there: {str(exc).splitlines()[0]}") \
            from None


def find_targets(config: ClusterConfig) -> list[Target]:
    """The suite's targets and their alive nodes; a node declaring a target's resource other than once is an
    error (two units would let two measurements share its cores)."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
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


def _build_task(suite: Suite, plan, data, store_root: Path, seed: int) -> Built:
    """On the build node: every artifact of one seed, into the shared cache (reused when already there)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # Ray sets OMP_NUM_THREADS to the task's num_cpus
    return build_all(suite, plan, data, ArtifactStore(store_root), seed)


def build_on_cluster(suite: Suite, plan, data, store_root: Path, seed: int) -> Built:
    import ray

    cfg = suite.cluster
    resources = {cfg.build_resource: 1} if cfg.build_resource else {}
    task = ray.remote(_build_task).options(num_cpus=1, resources=resources, max_retries=cfg.retries,
                                           name=f"bench-build{seed_tag(suite, seed)}")
    log.info("building on the cluster%s (seed %d)",
             f" (a node declaring {cfg.build_resource!r})" if cfg.build_resource else "", seed)
    try:
        return ray.get(task.remote(suite, plan, data, store_root, seed))
    except ray.exceptions.RayTaskError as exc:  # the build's own error, raised again here as it would locally
        cause = exc.as_instanceof_cause()
        raise (cause.cause if isinstance(getattr(cause, "cause", None), BenchError) else cause) from None


def corrupt_artifact_file(folder: Path) -> str | None:
    """The first file of a published artifact folder that does not match the sha256 its manifest records."""
    import json

    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"{folder}: no {MANIFEST} on this node (is the artifact cache shared with it?)"
    for name, expected in json.loads(manifest.read_text()).get("files", {}).items():
        path = folder / name
        if not path.is_file() or file_sha256(path) != expected:
            return f"{path} does not match its sha256 in {MANIFEST}"
    return None


def _measure_task(job, artifact_dirs: list[Path]):
    """On a node of the target: check what arrived, then measure as `bench run` does. Returns the outcome and
    where it was measured."""
    import ray

    from bench.run.measure_variant import MeasureOutcome, Stages, measure_variant
    from bench.schema import Speedup
    from bench.store.envinfo import environment

    job.logs.mkdir(parents=True, exist_ok=True)
    (job.logs / f"{job.variant.id}{job.tag}{NODE_FILE}").write_text(ray.get_runtime_context().get_node_id())
    env = environment()
    machine = Machine(host=env["hostname"], cpu_model=env["cpu"]["model"], gpus=env["gpus"])
    bad = next(filter(None, map(corrupt_artifact_file, artifact_dirs)), None)
    if bad:
        failure = ChildFailure(status="failed", error=f"artifact check on {machine.host}: {bad}")
        return MeasureOutcome(failure, Speedup(), None, None, 0.0), machine
    with Stages.for_job(job) as stages:
        return measure_variant(job, stages), machine


def artifact_dirs(built: Built, variant: Variant, reference_dir: Path | None) -> list[Path]:
    """The published folders a measurement reads: the variant's artifact (and the model it converts at load
    time), and the speedup's reference."""
    artifact = built.artifacts[variant.artifact_key]
    dirs = [artifact.path, built.models[variant.model].path]
    if reference_dir is not None:
        dirs.append(built.models["teacher"].path)
    return list(dict.fromkeys(dirs))


def measure_on_cluster(jobs: list, targets: list[Target], retries: int, on_row) -> None:
    """Run every (job, artifact dirs, target) measurement, in parallel across the targets' nodes; `on_row(job,
    target, outcome, machine)` is called in this process as each one returns."""
    import ray

    remote = ray.remote(_measure_task)
    pending: dict = {}

    def submit(job, dirs, target: Target, died: list[dict]) -> None:
        options = dict(num_cpus=0, resources={target.resource: 1}, max_retries=0,
                       name=f"bench-measure {job.variant.id}{job.tag}")
        if job.variant.device == "cuda":
            options["num_gpus"] = 1
        pending[remote.options(**options).remote(job, dirs)] = (job, dirs, target, died)

    for job, dirs, target in jobs:
        submit(job, dirs, target, [])
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        job, dirs, target, died = pending.pop(ref)
        try:
            outcome, machine = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # bench's own code raised: the same error on any node
            cause = str(exc.as_instanceof_cause()).strip().splitlines()[-1]
            outcome, machine = _failed(f"on the cluster: {cause}"), None
        except ray.exceptions.RayError as exc:  # the node, its raylet or the worker died
            node_file = job.logs / f"{job.variant.id}{job.tag}{NODE_FILE}"
            died = [*died, {"node": node_file.read_text() if node_file.is_file() else None,
                            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"}]
            if len(died) <= retries:
                log.warning("%s%s: %s died (%s); again on a node of target %s (attempt %d of %d)", job.variant.id,
                            job.tag, died[-1]["node"] or "its node", died[-1]["error"], target.name, len(died) + 1,
                            retries + 1)
                submit(job, dirs, target, died)
                continue
            outcome, machine = _failed(f"the measurement's node or worker died {len(died)} times on target "
                                       f"{target.name} (retries: {retries}); last: {died[-1]['error']}"), None
        machine = (machine or Machine()).model_copy(update={"target": target.name, "cluster_attempts": died or None})
        on_row(job, outcome, machine)


def _failed(error: str):
    from bench.run.measure_variant import MeasureOutcome
    from bench.schema import Speedup

    return MeasureOutcome(ChildFailure(status="failed", error=error), Speedup(), None, None, 0.0)
