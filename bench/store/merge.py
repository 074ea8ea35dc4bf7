"""`bench merge RUN_DIR... -o OUT`: one run directory from several (shards of a CI matrix, runs on
different machines). Rows keep their own machine fields (host, cpu_model, gpus, shard); run.json
lists every source run with its environment. A variant measured in two inputs keeps the later row."""

from __future__ import annotations

from pathlib import Path

from bench.common.errors import BenchError
from bench.store.artifacts import write_json_atomic
from bench.store.results import RESULTS_FILE, RUN_FILE, SCHEMA_VERSION, append_row, open_run


def merge_runs(run_dirs: list[Path], out: Path) -> Path:
    if (out / RESULTS_FILE).exists():
        raise BenchError(f"{out}: already holds {RESULTS_FILE}; merge into a new directory")
    runs = [open_run(run_dir) for run_dir in run_dirs]
    suites = {run.suite for run in runs} - {None}
    if len(suites) > 1:
        raise BenchError(f"cannot merge runs of different suites: {', '.join(sorted(suites))}")
    rows, sources = {}, []
    for run in runs:
        sources.append({"run_dir": str(run.path), **{k: run.info.get(k) for k in ("run_id", "shard", "environment",
                                                                                      "skipped", "stages")}})
        for row in run.rows:  # every row, not only the latest: the later measurement wins across inputs
            key = (row["variant_id"], row.get("seed"), row.get("target"))  # a cluster run: one row per target
            if key not in rows or (row.get("measured_at") or "") >= (rows[key].get("measured_at") or ""):
                rows[key] = row
    out.mkdir(parents=True, exist_ok=True)
    for row in sorted(rows.values(), key=lambda r: (r["variant_id"], r.get("seed"), r.get("target") or "")):
        append_row(out, row)
    first = runs[0].info
    skipped = {(s["variant"], s.get("target")): s for run in runs for s in run.skipped}
    measured = {key[0] for key in rows} | {(key[0], key[2]) for key in rows}  # a variant; a (variant, target)
    write_json_atomic(out / RUN_FILE, {
        "schema_version": SCHEMA_VERSION, "run_id": out.name, "suite": first.get("suite"),
        "suite_resolved": first.get("suite_resolved"), "environment": first.get("environment"),
        "data": first.get("data"), "merged_from": sources, "status": "merged",
        # A variant skipped on one machine (no GPU) but measured on another is not "skipped".
        # A cluster target's skip stands unless that target measured the variant.
        "skipped": [s for (v, t), s in skipped.items() if (v, t) not in measured if t is not None or v not in measured],
    })
    return out
