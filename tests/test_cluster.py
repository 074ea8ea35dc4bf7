"""`bench run --cluster` on a real local multi-node Ray cluster (Ray's own ray.cluster_utils.Cluster: a head
and nodes that are separate raylets on this machine), two targets declared as different resources.

The fast tests need no cluster (the suite section and the CLI's refusals); the cluster tests are in the slow
step: each starts its own cluster (about 15 s) and runs `bench run` as a separate driver process, as a user
would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.cli import main
from bench.store.results import read_rows

# The tiny suite (tests/conftest.py) with the cluster section: two targets, a measurement long enough to kill.
CLUSTER_SUITE = TINY_SUITE.replace("name: tiny", "name: tiny-cluster").replace(
    "min_seconds: 0.1", "min_seconds: {min_seconds}") + """cluster:
  targets: {{a: {{resource: tgt-a}}, b: {{resource: tgt-b}}{extra_targets}}}
  retries: 1
"""
VARIANTS = [f"{m}-{f}-fp32-cpu-t1" for m in ("teacher", "student") for f in ("pytorch", "onnx")]


def cluster_suite(write_suite, min_seconds: float = 0.1, extra_targets: str = "") -> Path:
    return write_suite(CLUSTER_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64,
                                            min_seconds=min_seconds, extra_targets=extra_targets))


# --- without a cluster ---------------------------------------------------------------------------------------

def test_cluster_section_is_validated(write_suite, tmp_path, capsys):
    suite = cluster_suite(write_suite)
    suite.write_text(suite.read_text().replace("b: {resource: tgt-b}", "b: {resource: tgt-a}"))
    assert main(["plan", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cluster.targets" in err and "'tgt-a' is target 'a'" in err

    suite.write_text(cluster_suite(write_suite).read_text().replace("retries: 1", "retries: -1"))
    assert main(["plan", str(suite)]) == 2
    assert "cluster.retries" in capsys.readouterr().err


def test_cluster_flag_needs_targets_and_excludes_shard(tiny_suite, write_suite, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", str(tiny_suite()), "--results-dir", str(results), "--cluster", "auto"]) == 2
    assert "suite tiny has no cluster.targets section" in capsys.readouterr().err
    suite = cluster_suite(write_suite)
    assert main(["run", str(suite), "--results-dir", str(results), "--cluster", "auto", "--shard", "1/2"]) == 2
    assert "--cluster and --shard" in capsys.readouterr().err
    assert not results.exists()  # refused before anything is written


GOLDEN = Path(__file__).resolve().parent / "golden"
SST2_TASK = {"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy", "f1"]}


def two_target_run(tmp_path: Path) -> Path:
    """The golden baseline's rows as measured on two cluster targets, with the predictions a run keeps per
    target: on `a` the student ONNX misses 3 examples the teacher gets (1.5 points), on `b` 30 (15 points),
    as an INT8 graph can on a CPU without VNNI."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text((GOLDEN / "baseline" / "run.json").read_text())
    (run / "logs").mkdir()
    rows, labels, teacher = [], [1] * 200, [1] * 183 + [0] * 17
    for target, wrong in (("a", 3), ("b", 30)):
        for line in (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines():
            row = json.loads(line) | {"target": target, "host": f"node-{target}"}
            preds = [0] * wrong + [1] * (183 - wrong) + [0] * 17 if row["variant_id"] == STUDENT_ONNX else teacher
            row["accuracy"] = sum(p == 1 for p in preds) / 200
            rows.append(row)
            spec = {"variant": {k: row[k] for k in ("model", "format", "precision", "device", "threads")},
                    "artifact_dir": ".", "task": SST2_TASK, "max_length": 8,
                    "eval_sets": [{"name": "validation", "first": ["x"] * 200, "labels": labels}]}
            (run / "logs" / f"{row['variant_id']}@{target}.spec.json").write_text(json.dumps(spec))
            (run / "logs" / f"{row['variant_id']}@{target}.predictions.json").write_text(json.dumps(preds))
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


STUDENT_ONNX = "student-onnx-fp32-cpu-t1"


def test_check_report_and_compare_judge_each_target_apart(tmp_path, capsys):
    run = two_target_run(tmp_path)
    profile = tmp_path / "p.yaml"
    profile.write_text("threads: 1\nmax_accuracy_drop_vs_teacher_pts: 5\n")

    assert main(["check", str(run), "--profile", str(profile)]) == 1  # b's student ONNX fails, a's passes
    out = capsys.readouterr().out
    a, b = out.split("(target `b`)")
    assert "(target `a`)" in a and "**PASS**" in a and "**FAIL**: 1 of 4" in b and STUDENT_ONNX in b
    assert main(["check", str(run), "--profile", str(profile), "--target", "a"]) == 0
    assert main(["check", str(run), "--profile", str(profile), "--json", str(tmp_path / "c.json")]) == 2
    assert "pass --target for each" in capsys.readouterr().err and not (tmp_path / "c.json").exists()

    assert main(["report", str(run), "--out", str(tmp_path / "reports"), "--profile", str(profile)]) == 0
    top = (tmp_path / "reports" / "baseline" / "index.md").read_text()
    decision_a = top[top.index("## a: Decision"):top.index("## Target b")]
    decision_b = top[top.index("## b: Decision"):]
    assert f"**Ship `{STUDENT_ONNX}`**" in decision_a  # each target's own rows decide
    assert "**Ship `student-pytorch-fp32-cpu-t1`**" in decision_b
    assert "Target `b`: measured on host(s) node-b" in top
    for target in ("a", "b"):
        sub = (tmp_path / "reports" / "baseline" / target / "index.md").read_text()
        assert sub.startswith(f"# golden — baseline, target {target}\n")
        assert f"Target `{target}`: measured on host(s) node-{target}" in sub

    # `bench merge` keeps every target's rows (a row per variant, seed and target).
    assert main(["merge", str(run), "-o", str(tmp_path / "merged")]) == 0
    merged = read_rows(tmp_path / "merged")
    assert Counter(r["target"] for r in merged) == {"a": 4, "b": 4}

    from bench.gate.compare import compare_runs

    table = compare_runs(run, run).table  # a row of target a is paired with a's row only
    assert sorted(table["variant"]) == sorted(f"{json.loads(x)['variant_id']}@{t} seed=42" for t in "ab"
                                              for x in (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines())


def _artifact(folder: Path, files: dict[str, bytes]) -> Path:
    from bench.store.artifacts import MANIFEST, file_sha256

    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / MANIFEST).write_text(json.dumps({"files": {n: file_sha256(folder / n) for n in files}}))
    return folder


def test_a_measurement_node_checks_each_artifact_file_against_its_sha256(tmp_path):
    from bench.store.artifacts import MANIFEST, folder_problem

    folder = _artifact(tmp_path / "onnx-student-abc", {"model.onnx": b"graph bytes"})
    assert folder_problem(folder) is None
    (folder / "model.onnx").write_bytes(b"graph bytes, cut shor")  # what a half-synced share holds
    assert folder_problem(folder) == f"{folder / 'model.onnx'} does not match its sha256 in {MANIFEST}"
    assert "is the cache shared with it, or cluster.artifact_url set?" in folder_problem(tmp_path / "not-synced")


def test_the_artifact_mirror_publishes_once_and_fetches_checked_copies(tmp_path):
    from bench.common.errors import BenchError
    from bench.store.artifacts import MANIFEST
    from bench.store.mirror import check_url, fetch, publish

    url = f"file://{tmp_path / 'bucket' / 'cache'}"  # any fsspec URL: s3:// with s3fs, gs:// with gcsfs
    check_url(url)
    built = _artifact(tmp_path / "build-node" / "onnx-student-abc",
                      {"model.onnx": b"graph", "tokenizer/tokenizer.json": b"{}"})
    assert publish(built, url) and not publish(built, url)  # a complete copy there: not uploaded again
    remote = tmp_path / "bucket" / "cache" / "onnx-student-abc"
    assert sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()) == \
        [MANIFEST, "model.onnx", "tokenizer/tokenizer.json"]

    local = tmp_path / "target-node" / "cache" / "onnx-student-abc"
    assert fetch(local, url) and (local / "tokenizer" / "tokenizer.json").read_bytes() == b"{}"
    assert not fetch(local, url)  # here and whole: nothing downloaded
    (local / "model.onnx").write_bytes(b"stale")
    assert fetch(local, url) and (local / "model.onnx").read_bytes() == b"graph"  # a bad local copy is replaced

    (remote / "model.onnx").write_bytes(b"tampered")
    (local / "model.onnx").unlink()
    with pytest.raises(BenchError, match=r"onnx-student-abc/model.onnx does not match its sha256"):
        fetch(local, url)
    assert not list(local.parent.glob(".tmp-fetch-*"))  # nothing half-fetched stays
    with pytest.raises(BenchError, match=r"not published there"):
        fetch(tmp_path / "target-node" / "cache" / "teacher-xyz", url)
    with pytest.raises(BenchError, match=r"^cluster.artifact_url: nosuchscheme://x: "):
        check_url("nosuchscheme://x")


def test_a_node_declaring_a_target_twice_is_refused(monkeypatch):
    ray = pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    from bench.common.errors import BenchError
    from bench.run.cluster import find_targets
    from bench.spec.cluster import ClusterConfig

    nodes = [{"Alive": True, "NodeID": "f" * 56, "NodeManagerHostname": "box", "Resources": {"avx2": 2.0}},
             {"Alive": False, "NodeID": "e" * 56, "NodeManagerHostname": "gone", "Resources": {"vnni": 1.0}}]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    config = ClusterConfig(targets={"avx2": {}, "vnni": {}})
    with pytest.raises(BenchError, match=r"declares avx2=2; declare it once per node"):
        find_targets(config)
    nodes[0]["Resources"]["avx2"] = 1.0
    avx2, vnni = find_targets(config)
    assert avx2.hosts == ["box"] and vnni.nodes == []  # a dead node is no node
    assert "no alive node declares the resource 'vnni'" in vnni.why_not(SimpleNamespace(device="cpu", id="v"))
    # What its node's probe said it cannot run comes first; a GPU Ray was not told about, after.
    avx2.cannot_run = {"gpu-v": "cuda: no GPU (torch.cuda.is_available() is False)"}
    assert avx2.why_not(SimpleNamespace(device="cuda", id="gpu-v")) == \
        "target avx2: cuda: no GPU (torch.cuda.is_available() is False)"
    assert avx2.why_not(SimpleNamespace(device="cuda", id="other")) == \
        "target avx2: its nodes declare no GPU to Ray (ray start --num-gpus=1)"
    assert avx2.why_not(SimpleNamespace(device="cpu", id="cpu-v")) is None


# --- on a local multi-node Ray cluster -----------------------------------------------------------------------

ray_cluster_utils = pytest.importorskip("ray.cluster_utils", reason="the cluster extra (ray) is not installed")


class LocalCluster:
    """A head (the build node: 1 CPU, resource `build`) and target nodes, each declaring one unit of its
    target's resource, as `ray start --resources` would."""

    def __init__(self, targets: dict[str, int], gpus: dict[str, int] | None = None):
        self.cluster = ray_cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "resources": {"build": 1},
                                                  "include_dashboard": False})
        # num_gpus: what `ray start --num-gpus` declares (0 unless given: Ray would detect this machine's GPUs).
        self.nodes = {resource: [self.cluster.add_node(num_cpus=0, num_gpus=(gpus or {}).get(resource, 0),
                                                       resources={resource: 1}) for _ in range(count)]
                      for resource, count in targets.items()}
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    def kill(self, node_id: str) -> None:
        node = next(n for nodes in self.nodes.values() for n in nodes if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def shutdown(self) -> None:
        self.cluster.shutdown()


DRIVERS: list[subprocess.Popen] = []


@pytest.fixture
def local_cluster():
    started = []

    def start(gpus: dict[str, int] | None = None, **targets: int) -> LocalCluster:
        started.append(LocalCluster(targets, gpus))
        return started[-1]

    yield start
    for driver in DRIVERS:  # a failed test leaves no driver behind
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    DRIVERS.clear()
    for cluster in started:
        cluster.shutdown()


def bench_run(suite: Path, results: Path, address: str, run_id: str = "r") -> subprocess.Popen:
    """`bench run --cluster` as its own driver process (its own process group: a test kills it whole)."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    with open(results.parent / f"driver-{run_id}.log", "a") as log:
        DRIVERS.append(subprocess.Popen(
            [sys.executable, "-m", "bench", "run", str(suite), "--results-dir", str(results), "--run-id", run_id,
             "--cluster", address], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
    return DRIVERS[-1]


def driver_log(results: Path, run_id: str = "r") -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", (results.parent / f"driver-{run_id}.log").read_text())


def finished(proc: subprocess.Popen, results: Path, run_id: str = "r", timeout: float = 600) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        print((results.parent / f"driver-{run_id}.log").read_text()[-4000:])


@pytest.mark.slow
def test_every_variant_on_every_target_built_once(write_suite, tmp_path, local_cluster):
    cluster = local_cluster(**{"tgt-a": 1, "tgt-b": 1})
    suite = cluster_suite(write_suite, extra_targets=", c: {resource: tgt-c}")
    bucket = tmp_path / "bucket"  # the fsspec mirror nodes without a shared folder fetch from
    # With interleaved speedups: each measurement's reference runs on its node, and each node's drift is kept.
    suite.write_text(suite.read_text().replace(
        "timeout_s: 300,", "timeout_s: 300, interleave: {rounds: 6, calls_per_round: 15, warmup: 2},")
        + f"  artifact_url: file://{bucket}\n")
    results = tmp_path / "results"
    assert finished(bench_run(suite, results, cluster.address), results) == 0
    run_dir = results / "tiny-cluster" / "r"
    rows = read_rows(run_dir)
    assert Counter((r["variant_id"], r["target"]) for r in rows) == Counter(
        (v, t) for v in VARIANTS for t in ("a", "b"))
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert all(r["host"] and r["cluster_attempts"] is None for r in rows)
    # The same artifact measured on two targets: the same predictions on every eval example.
    by_key = {(r["variant_id"], r["target"]): r for r in rows}
    for variant in VARIANTS:
        assert by_key[variant, "a"]["artifact"] == by_key[variant, "b"]["artifact"]
        assert by_key[variant, "a"]["confusion_matrix"] == by_key[variant, "b"]["confusion_matrix"]

    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished"
    assert all(r["speedup_vs_reference"] > 0 and len(r["speedup_rounds"]) == 6 for r in rows)
    # The reference's drift per node, over every measurement it made (4 variants x 6 rounds), in order.
    (host,) = {r["host"] for r in rows}
    assert {key: d["rounds"] for key, d in run["reference_drift"].items()} == {
        f"teacher-pytorch-fp32-cpu-t1@{t}/{host}": 4 * 6 for t in ("a", "b")}
    assert set(run["cluster"]["targets"]) == {"a", "b", "c"} and run["cluster"]["targets"]["c"]["nodes"] == []
    skipped_c = [s for s in run["skipped"] if s.get("target") == "c"]
    assert sorted(s["variant"] for s in skipped_c) == sorted(VARIANTS)
    assert all("no alive node declares the resource 'tgt-c'" in s["reason"] for s in skipped_c)
    # Built once, by the one build task, though each artifact is measured on two targets: every stage built
    # (none reused), each artifact's build logged once, one cache folder per artifact.
    stages = {name: s for name, s in run["stages"].items() if "artifact" in s}
    assert stages and not any(s["reused"] for s in stages.values())
    artifacts = {s["artifact"] for s in stages.values()}
    builds = re.findall(r"\((bench-build) pid=\d+\).* INFO build (\S+)", driver_log(results))
    assert Counter(name for _, name in builds) == Counter(artifacts)
    assert {p.parent.name for p in (results / "artifacts").rglob("manifest.json")} == artifacts
    # Each published once, as it was built (the teacher's logits too: a build node with an empty cache fetches
    # every artifact rather than building it again).
    assert {p.parent.name for p in bucket.rglob("manifest.json")} == artifacts
    assert driver_log(results).count("INFO published ") == len(artifacts)

    # `bench report` judges each target apart.
    assert main(["report", str(run_dir), "--out", str(tmp_path / "reports")]) == 0
    report = (tmp_path / "reports" / "r" / "index.md").read_text()
    assert "Target a" in report and "Target b" in report


def _node_files(logs: Path, target: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in logs.glob(f"*@{target}.node")} if logs.is_dir() else {}


GPU_VARIANTS = """  - {{model: student, format: pytorch, precision: fp32, device: cpu}}
  - {{model: student, format: [pytorch, onnx, tensorrt], precision: fp16, device: cuda}}
"""


@pytest.mark.slow
def test_each_target_plans_its_own_variants_and_a_build_node_fetches_what_was_published(write_suite, tmp_path,
                                                                                        local_cluster):
    """Target a declares a GPU to Ray, b none, and one node of each says what it cannot run, so the driver's own
    machine decides nothing. Where torch sees a GPU (a GPU machine), a builds its CUDA variants on its node and
    measures them there; on a CPU machine a's node finds no GPU and they are skipped on both targets with that
    reason. Then a build node with an empty cache fetches every artifact from the mirror, building none."""
    import shutil

    import torch

    gpu = torch.cuda.is_available()
    cluster = local_cluster(gpus={"tgt-a": 1}, **{"tgt-a": 1, "tgt-b": 1})
    text = cluster_suite(write_suite).read_text()
    text = re.sub(r"variants:\n  - .*\n", "variants:\n" + GPU_VARIANTS.replace("{{", "{").replace("}}", "}"), text)
    bucket = tmp_path / "bucket"
    suite = write_suite(text + f"  artifact_url: file://{bucket}\n")
    results = tmp_path / "results"
    assert finished(bench_run(suite, results, cluster.address), results) == 0
    run_dir = results / "tiny-cluster" / "r"
    rows, run = read_rows(run_dir), json.loads((run_dir / "run.json").read_text())
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    cpu_variant, cuda = "student-pytorch-fp32-cpu-t1", [f"student-{f}-fp16-cuda-t1" for f in ("pytorch", "onnx",
                                                                                              "tensorrt")]
    on = {(r["variant_id"], r["target"]): r for r in rows}
    assert (cpu_variant, "a") in on and (cpu_variant, "b") in on  # a GPU node measures CPU variants too
    skips = {(s["variant"], s.get("target")): s["reason"] for s in run["skipped"]}
    for variant in cuda:
        assert (variant, "b") in skips or (variant, None) in skips  # b declares no GPU
    if gpu:
        # a's node measured the PyTorch CUDA variant, on its GPU, after building it there (a stage of its own).
        assert on["student-pytorch-fp16-cuda-t1", "a"]["gpus"], on["student-pytorch-fp16-cuda-t1", "a"]
        assert "student-pytorch-fp16@a" in run["stages"], sorted(run["stages"])
        assert skips["student-pytorch-fp16-cuda-t1", "b"].startswith("target b: ")
        for variant in cuda:  # each measured on a, or skipped on a (or on both) with what a's node said
            skipped_on_a = skips.get((variant, "a")) or skips.get((variant, None), "")
            assert ((variant, "a") in on) != ("target a: " in skipped_on_a)
    else:
        # On a CPU machine no target can run them: each skipped once, with each target's reason.
        for variant in cuda:
            reason = skips[variant, None]
            assert reason.startswith("no target can run it: ") and \
                "target a: cuda: no GPU (torch.cuda.is_available() is False)" in reason, reason
        assert not any(r["device"] == "cuda" for r in rows)

    shutil.rmtree(results / "artifacts")  # a build node whose cache is empty: the mirror has it all
    assert finished(bench_run(suite, results, cluster.address, run_id="again"), results, "again") == 0
    assert " INFO build " not in driver_log(results, "again")
    again = json.loads((results / "tiny-cluster" / "again" / "run.json").read_text())
    assert all(s["reused"] for s in again["stages"].values() if "artifact" in s)
    assert {(r["variant_id"], r["target"]): r["confusion_matrix"] for r in read_rows(run_dir.parent / "again")} \
        == {key: r["confusion_matrix"] for key, r in on.items()}


@pytest.mark.slow
def test_node_killed_mid_measurement_is_retried_on_another_node(write_suite, tmp_path, local_cluster):
    cluster = local_cluster(**{"tgt-a": 2, "tgt-b": 1})
    suite = cluster_suite(write_suite, min_seconds=3.0)  # long enough to kill a node while it measures
    results = tmp_path / "results"
    driver = bench_run(suite, results, cluster.address)
    logs = results / "tiny-cluster" / "r" / "logs"
    deadline = time.monotonic() + 300
    while not (started := _node_files(logs, "a")) and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert started, "no measurement started on target a"
    node_file, killed = next(iter(started.items()))
    time.sleep(1.0)  # into the measurement
    cluster.kill(killed)
    assert finished(driver, results) == 0

    rows = read_rows(results / "tiny-cluster" / "r")
    assert Counter((r["variant_id"], r["target"]) for r in rows) == Counter(
        (v, t) for v in VARIANTS for t in ("a", "b"))  # nothing lost, nothing twice
    assert all(r["status"] == "ok" for r in rows)
    variant = node_file.removesuffix("@a.node")
    retried = next(r for r in rows if r["variant_id"] == variant and r["target"] == "a")
    assert [a["node"] for a in retried["cluster_attempts"]] == [killed]
    assert (logs / node_file).read_text() != killed  # measured again on the other node of target a
    assert all(r["cluster_attempts"] is None for r in rows if r is not retried)


@pytest.mark.slow
def test_killed_driver_resumes_without_measuring_twice(write_suite, tmp_path, local_cluster):
    cluster = local_cluster(**{"tgt-a": 1, "tgt-b": 1})
    suite = cluster_suite(write_suite, min_seconds=1.0)
    results = tmp_path / "results"
    run_dir = results / "tiny-cluster" / "r"
    driver = bench_run(suite, results, cluster.address)
    deadline = time.monotonic() + 300
    while len(read_rows(run_dir) if (run_dir / "results.jsonl").is_file() else []) < 2:
        assert time.monotonic() < deadline and driver.poll() is None, "the driver wrote no rows"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = read_rows(run_dir)
    assert 2 <= len(before) < 2 * len(VARIANTS)

    assert finished(bench_run(suite, results, cluster.address), results) == 0
    rows = read_rows(run_dir)
    assert rows[:len(before)] == before  # kept as they were
    assert Counter((r["variant_id"], r["target"]) for r in rows) == Counter(
        (v, t) for v in VARIANTS for t in ("a", "b"))  # the resumed driver measured only what had no row
    assert all(r["status"] == "ok" for r in rows)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and all(s["reused"] for s in run["stages"].values() if "artifact" in s)


TUNED = CLUSTER_SUITE.replace("  - {{model: [teacher, student], format: [pytorch, onnx], precision: fp32, device: cpu}}",
                              "  - {{model: teacher, format: pytorch, precision: fp32}}") + """tune:
  space:
    - {{model: student, format: [pytorch, onnx], precision: fp32}}
    - {{model: student, format: pytorch, precision: int8-dynamic}}
  max_drop_pts: 50
"""


@pytest.mark.slow
def test_a_cluster_tune_chooses_what_a_serial_tune_chooses(write_suite, tmp_path, local_cluster):
    cluster = local_cluster(**{"tgt-a": 2})
    suite = write_suite(TUNED.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64, min_seconds=0.5,
                                     extra_targets=""))
    suite.write_text(suite.read_text().replace(", b: {resource: tgt-b}", ""))
    profile = tmp_path / "p.yaml"
    profile.write_text("threads: 1\nmax_size_mb: 100\n")
    tunes = {}
    for how, extra in (("serial", []), ("cluster", ["--cluster", cluster.address])):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bench", "tune", str(suite), "--profile", str(profile),
                               "--results-dir", str(tmp_path / how), "--run-id", "t", *extra],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        tunes[how] = json.loads((tmp_path / how / "tiny-cluster" / "t" / "tune.json").read_text())
        print(f"{how} tune: {time.perf_counter() - started:.1f} s wall")
    serial, parallel = tunes["serial"], tunes["cluster"]
    assert parallel["chosen"] == serial["chosen"] == "student-onnx-fp32-cpu-t1"  # ~8x faster than the others
    assert [c["variant"] for c in parallel["candidates"]] == [c["variant"] for c in serial["candidates"]]
    assert all(c["status"] == "measured" for c in parallel["candidates"])
    rows = read_rows(tmp_path / "cluster" / "tiny-cluster" / "t")
    assert {r["target"] for r in rows} == {"a"} and len(rows) == 4  # the reference and three candidates
