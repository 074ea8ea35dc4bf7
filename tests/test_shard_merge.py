import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.common.errors import BenchError
from bench.plan import make_plan, parse_shard, shard_plan
from bench.spec.suite import load_suite
from bench.store.results import read_rows

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_shards_partition_the_plan(tiny_suite):
    plan = make_plan(load_suite(tiny_suite()))
    shards = [shard_plan(plan, i, 3).variants for i in (1, 2, 3)]
    ids = [v.id for shard in shards for v in shard]
    assert sorted(ids) == sorted(v.id for v in plan.variants) and len(set(ids)) == len(ids)
    assert shard_plan(plan, 2, 3).variants == shards[1]  # deterministic


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard(bad):
    with pytest.raises(BenchError, match="--shard: expected I/N"):
        parse_shard(bad)


def _split(tmp_path):
    rows = [json.loads(x) for x in (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines()]
    dirs = []
    for i, part in enumerate((rows[:2], rows[2:]), start=1):
        d = tmp_path / f"shard{i}"
        d.mkdir()
        (d / "results.jsonl").write_text("".join(json.dumps(r | {"host": f"m{i}", "shard": f"{i}/2"}) + "\n"
                                                 for r in part))
        run = json.loads((GOLDEN / "baseline" / "run.json").read_text())
        run["skipped"] = [{"variant": "student-tensorrt-fp16-cuda-t1", "reason": "cuda: no GPU"}] if i == 1 else []
        (d / "run.json").write_text(json.dumps(run | {"run_id": f"shard{i}"}))
        dirs.append(d)
    return rows, dirs


def test_merge_keeps_every_row_and_its_machine(tmp_path):
    rows, dirs = _split(tmp_path)
    out = tmp_path / "merged"
    assert main(["merge", *map(str, dirs), "-o", str(out)]) == 0
    merged = read_rows(out)
    assert sorted(r["variant_id"] for r in merged) == sorted(r["variant_id"] for r in rows)
    assert {r["host"] for r in merged} == {"m1", "m2"}
    run = json.loads((out / "run.json").read_text())
    assert [s["run_id"] for s in run["merged_from"]] == ["shard1", "shard2"]
    assert run["skipped"][0]["variant"] == "student-tensorrt-fp16-cuda-t1"
    # The merged directory is a normal run: report and compare work on it.
    assert main(["report", str(out), "--out", str(tmp_path / "reports")]) == 0
    assert main(["compare", str(GOLDEN / "baseline"), str(out)]) == 0
    # Merging into a directory that already has results is refused.
    assert main(["merge", str(dirs[0]), "-o", str(out)]) == 2


def test_merge_rejects_different_suites(tmp_path):
    _, dirs = _split(tmp_path)
    other = tmp_path / "other"
    shutil.copytree(dirs[1], other)
    run = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps(run | {"suite": "another"}))
    with pytest.raises(BenchError, match="different suites"):
        from bench.store.merge import merge_runs

        merge_runs([dirs[0], other], tmp_path / "m")
