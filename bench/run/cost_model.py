"""`bench plan`'s wall-time estimate: a cost model fitted to this machine's earlier runs (their run.json).

A run's wall time is the sum of
- training stages (teacher fine-tune, teacher logits, task distillation): `a + b x work`, work = train
  rows x epochs (the logits pass: train rows). With earlier builds at two or more sizes, `a` (loading,
  tokenising, the final dev evaluation) and `b` are a least-squares line; with one size, time per row.
- other builds (exports, graph optimizations, quantizations, general distillation): the mean of that
  kind's builds in the most recent run that built it. They scale with the model, not with the rows, and
  change with the code: a faster conversion in this version should not be averaged with the old one.
- each variant's measurement: `a + b x eval rows`, fitted the same way, from earlier measurements of the
  same variant id with the same `measure:` settings first (any settings when there are none). Only
  measurements whose row is `ok` count: a variant that failed at load took seconds, not its cost.
- the run's own overhead (loading data, the machine facts): the mean of earlier runs'.
Only runs on this host count: absolute times differ several-fold between machines (docs/cost-model.md
has the model checked against three suite sizes).
"""

from __future__ import annotations

import json
import platform
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.store.results import RUN_FILE

SEED_TAG = re.compile(r"@seed\d+$")  # a stage or variant id's training-seed suffix
TRAINING_KINDS = ("teacher", "teacher-logits", "student")


@dataclass(frozen=True)
class Sample:
    seconds: float
    work: float | None  # rows x epochs (training), eval rows (measurement); None: not recorded
    at: str = ""  # the run's started_at (ISO 8601): which of two samples is the more recent


@dataclass
class History:
    runs: int
    samples: dict[tuple, list[Sample]]
    overhead_s: list[float]


def _failed_variants(run_dir: Path) -> set[str]:
    """Variant ids whose latest row in the run is not `ok` (any seed)."""
    from bench.store.results import latest_rows, read_rows

    return {r["variant_id"] for r in latest_rows(read_rows(run_dir)) if r.get("status") != "ok"}


def read_history(results_root: Path, host: str | None = None) -> History:
    """Samples by key from the run.json files of runs on this host under results_root. Keys:
    ("stage", suite, stage) and ("kind", suite|"*", kind) for built steps; ("variant", suite|"*", variant
    id[, measure settings hash]) for measurements."""
    host = host or platform.node()
    samples: dict[tuple, list[Sample]] = defaultdict(list)
    runs, overhead = 0, []
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
        eval_rows, at = (run.get("data") or {}).get("eval_rows"), run.get("started_at") or ""
        seen, stage_wall = set(), 0.0  # a stage whose artifact is the trained model itself repeats its build
        for name, s in stages.items():
            if not isinstance(s, dict):
                continue
            stage_wall += s.get("wall_s") or 0.0
            if name == "measure":
                cfg, failed = s.get("config_hash"), _failed_variants(path.parent)
                for vid, wall in (s.get("per_variant_s") or {}).items():
                    vid = SEED_TAG.sub("", vid)
                    if vid in failed:
                        continue
                    keys = [("variant", suite, vid), ("variant", "*", vid)]
                    keys += [k + (cfg,) for k in keys] if cfg else []
                    for key in keys:
                        samples[key].append(Sample(wall, eval_rows, at))
            elif s.get("artifact") and s["artifact"] not in seen and not s.get("reused") \
                    and s.get("build_time_s") is not None:
                seen.add(s["artifact"])
                kind = s["artifact"].rsplit("-", 1)[0]
                sample = Sample(s["build_time_s"], s.get("work"), at)
                for key in (("stage", suite, SEED_TAG.sub("", name)), ("kind", suite, kind), ("kind", "*", kind)):
                    samples[key].append(sample)
            else:
                seen.add(s.get("artifact"))
        if run.get("wall_s") and run.get("status", "").startswith("finished"):
            overhead.append(max(0.0, run["wall_s"] - stage_wall))
    return History(runs, samples, overhead)


def predict(samples: list[Sample], work: float | None) -> float:
    """Seconds for `work` from earlier samples: a least-squares line through two or more sizes, time per
    unit from one size; when the work is unknown on either side, the mean of the most recent run's."""
    sized = [(s.work, s.seconds) for s in samples if s.work]
    if work is None or not sized:
        latest = max(s.at for s in samples)
        return float(np.mean([s.seconds for s in samples if s.at == latest]))
    w, t = np.array(sized, dtype=np.float64).T
    if len(set(w)) >= 2:
        b, a = np.polyfit(w, t, 1)
        if a >= 0 and b >= 0:
            return float(a + b * work)
    return float(np.mean(t / w) * work)


@dataclass(frozen=True)
class Estimate:
    training_s: float
    builds_s: float
    measure_s: float
    overhead_s: float
    runs: int
    unknown_builds: int
    unknown_measurements: int

    @property
    def total_s(self) -> float:
        return self.training_s + self.builds_s + self.measure_s + self.overhead_s




def first(history: History, *keys) -> list[Sample] | None:
    return next((history.samples[k] for k in keys if history.samples.get(k)), None)
