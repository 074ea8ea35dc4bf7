"""`bench check RUN_DIR --profile NAME|FILE [--variant ID ...]`: edge-readiness budgets.

A profile (bench/spec/profiles/<name>.yaml, or any YAML file) sets budgets for size, peak memory, batch-1
p95 latency, accuracy drop, ONNX opset, int8 MatMul coverage, ONNX operator domains, the Server
scenario's max QPS within its p99 bound (`min_server_qps`), cold start, end-to-end p95 and energy per
inference; every key is optional, and a profile is validated like a suite (strict types, unknown keys are
an error, one line naming the file and the key). Each budget is a `Budget`: the row field it reads, its unit, its
direction and how it judges a value. Each judged row gets PASS or FAIL with a reason per failed budget.
A budget whose metric the row does not carry reads "n/a (not measured)": it neither passes nor fails
the row, and the table says so rather than showing a pass.

The two drop budgets keep their names (`max_accuracy_drop_vs_teacher_pts`, `..._vs_fp32_pts`) but judge
the task's primary metric (the row's `score`, bench/tasks/table.py), in points of that metric ×100: accuracy
for SST-2 and rows written before tasks were declared, Matthews correlation for CoLA, F1 for MRPC/QQP,
Pearson for STS-B. The failure reason names the metric.

Exit codes for the CLI (`CheckResult.exit_code`): 0 every requested variant passes, 1 any fails,
2 bad input (`BenchError`: unknown profile or key, no such run or variant). `--json FILE` and
`--annotations` report the same verdicts for machines (bench/gate/json_report.py, docs/ci.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from bench.common.errors import BenchError
from bench.gate.accuracy_drop import BOOTSTRAP_SAMPLES, CONFIDENCE, Drop, DropJudge
from bench.spec.names import REFERENCE
from bench.spec.profile import Profile, load_profile  # noqa: F401  (bench check's profiles)
from bench.store.results import open_run, reference_mask, with_score

NOT_MEASURED = "n/a (not measured)"
_EPS = 1e-9  # float slack: a value exactly at the budget passes


def _num(row: Mapping, key: str) -> float | None:
    value = row.get(key)
    return None if value is None or pd.isna(value) else float(value)


@dataclass(frozen=True)
class Budget:
    """One profile key: the row field it bounds, the unit it is shown in, and its direction ("max": the
    value may be at most the limit, "min": at least); `words` names the metric in a failure reason."""

    key: str
    metric: str
    unit: str
    direction: Literal["max", "min", "in"]  # "in": AllowedSet
    words: str

    def value(self, row: Mapping, rows: RunRows | None = None) -> float | str:
        """The row's value for this budget, or the n/a cell text when it has none."""
        value = _num(row, self.metric)
        return NOT_MEASURED if value is None else value

    def describe(self, row: Mapping) -> str:
        return self.words

    def judge(self, limit, row: Mapping, rows: RunRows | None = None) -> tuple[str, str | None]:
        """(cell text, failure reason or None) for this budget at `limit` on one row; `rows` holds the
        run's measured rows (the reference rows an accuracy drop is computed against)."""
        value = self.value(row, rows)
        if isinstance(value, str):
            return value, None
        if self.direction == "min":
            failed, op = value < limit - _EPS, "<"
        else:
            failed, op = value > limit + _EPS, ">"
        shown = f"{value:.4g}{self.unit}"
        if failed:
            return (f"FAIL: {shown} {op} {limit:g}{self.unit}",
                    f"{self.describe(row)} {shown} {op} {self.direction} {limit:g}{self.unit}")
        return f"pass: {shown}", None


@dataclass
class RunRows:
    """What a budget judges a row against: the run's measured rows and its per-example predictions."""

    ok: pd.DataFrame
    drops: DropJudge


def _scored(row: Mapping) -> tuple[str, float | None]:
    """(primary metric, its value) of a row: `score`, or accuracy for a row without a metric."""
    row = with_score(dict(row))
    return str(row["metric"]), _num(row, "score")


@dataclass(frozen=True)
class AccuracyDrop(Budget):
    """Points of the task's primary metric (×100; accuracy for SST-2 and older rows) below a reference
    row (the format registry's reference, PyTorch FP32) of the same run and seed, preferring the same
    device and threads: the teacher's, or the row's own model's."""

    reference: str = "teacher"  # a model name, or "" for the row's own model

    def _model(self, row: Mapping) -> str:
        return self.reference or row["model"]

    def describe(self, row: Mapping) -> str:
        return self.words.format(model=self._model(row), metric=_scored(row)[0])

    def estimate(self, row: Mapping, rows: RunRows | None = None) -> Drop | str:
        """The drop with its paired interval where both rows kept predictions; the n/a cell text otherwise."""
        (metric, score), model = _scored(row), self._model(row)
        if score is None:
            return NOT_MEASURED
        ok = rows.ok if rows is not None else None
        ref = ok[reference_mask(ok, model) & (ok["seed"] == row["seed"])] if ok is not None and len(ok) else ok
        reference = None
        if ref is not None and len(ref):
            same = ref[(ref["device"] == row["device"]) & (ref["threads"] == row["threads"])]
            reference = (same if len(same) else ref).iloc[-1].to_dict()
        ref_metric, ref_score = _scored(reference) if reference is not None else (metric, None)
        if ref_score is None:
            return f"n/a (no {model} {REFERENCE.format} {REFERENCE.precision} row)"
        if ref_metric != metric:
            return f"n/a ({model} {REFERENCE.format} {REFERENCE.precision} row scored {ref_metric}, not {metric})"
        point = (ref_score - score) * 100
        if reference.get("variant_id") is not None and reference.get("variant_id") == row.get("variant_id"):
            return Drop(0.0, 0.0, 0.0)
        return rows.drops.drop(reference, dict(row), point) if rows is not None else Drop(round(point, 4))

    def value(self, row: Mapping, rows: RunRows | None = None) -> float | str:
        est = self.estimate(row, rows)
        return est if isinstance(est, str) else est.judged

    def judge(self, limit, row: Mapping, rows: RunRows | None = None) -> tuple[str, str | None]:
        """Judged on the paired interval's upper end (bench/gate/accuracy_drop.py), the point shown beside it."""
        est = self.estimate(row, rows)
        if isinstance(est, str):
            return est, None
        reason = est.over(limit)
        if reason:
            return f"FAIL: {est.text} pts > {limit:g} pts", f"{self.describe(row)} {reason}"
        return f"pass: {est.text} pts", None


@dataclass(frozen=True)
class AllowedSet(Budget):
    """Set membership: every item of the row's list field must be in the allowed list (the operator
    domains a graph needs must all be provided by the target runtime; e.g. a fused graph needs ORT's
    com.microsoft contrib ops, which other ONNX runtimes lack)."""

    def judge(self, limit, row: Mapping, rows: RunRows | None = None) -> tuple[str, str | None]:
        items = row.get(self.metric)
        if not isinstance(items, list):
            return NOT_MEASURED, None
        missing = sorted(set(items) - set(limit))
        if missing:
            return (f"FAIL: {', '.join(missing)}",
                    f"graph uses {self.words} {', '.join(missing)} not in {self.key} {list(limit)}")
        return f"pass: {', '.join(items)}", None


@dataclass(frozen=True)
class ServerQps(Budget):
    """The Server scenario's max QPS within its p99 bound (measure.server): a row that was served but met
    the bound at no offered rate has 0; a row that was not served is not measured."""

    def value(self, row: Mapping, rows: RunRows | None = None) -> float | str:
        if not isinstance(row.get("server"), list) or not row["server"]:
            return NOT_MEASURED
        value = _num(row, self.metric)
        return 0.0 if value is None else value

    def describe(self, row: Mapping) -> str:
        bound = _num(row, "server_p99_bound_ms")
        return f"{self.words} (p99 <= {bound:g} ms)" if bound is not None else self.words


DROP_KEYS = ("max_accuracy_drop_vs_teacher_pts", "max_accuracy_drop_vs_fp32_pts")
RULE = ("Accuracy drops: the point estimate, then its paired bootstrap 95 % interval over the same eval examples; "
        "a drop passes when the interval's upper end is within the budget (the same rule as `bench tune` and the "
        "report's decision). Dynamic INT8 rows are scored at batch 1, as deployed (`score_batch_size`).")
_DROP_WORDS = f"{{metric}} drop vs {{model}} {REFERENCE.format} {REFERENCE.precision}"
BUDGETS: dict[str, Budget] = {b.key: b for b in (
    Budget("max_size_mb", "size_mb", " MB", "max", "size"),
    Budget("max_peak_rss_mb", "peak_rss_mb", " MB", "max", "peak RSS"),
    Budget("max_p95_ms_bs1", "latency_p95_ms", " ms", "max", "batch-1 p95 latency"),
    # The task's primary metric (row field `score`; accuracy on older rows), in points ×100.
    AccuracyDrop("max_accuracy_drop_vs_teacher_pts", "score", " pts", "max",
                 _DROP_WORDS, reference="teacher"),
    AccuracyDrop("max_accuracy_drop_vs_fp32_pts", "score", " pts", "max",
                 _DROP_WORDS, reference=""),
    Budget("max_opset", "onnx_opset", "", "max", "ONNX opset"),
    Budget("min_int8_matmul_coverage_pct", "int8_matmul_coverage_pct", "%", "min", "int8 MatMul coverage"),
    AllowedSet("allowed_op_domains", "onnx_op_domains", "", "in", "operator domain(s)"),
    ServerQps("min_server_qps", "server_max_qps", " qps", "min", "Server-scenario max QPS"),
    Budget("max_cold_start_ms", "cold_start_ms", " ms", "max", "cold start (spawn to first answer)"),
    Budget("max_e2e_p95_ms", "e2e_p95_ms", " ms", "max", "end-to-end batch-1 p95 (tokenizer included)"),
    Budget("max_energy_mj_per_inference", "energy_mj_per_inference", " mJ", "max", "energy per inference"),
)}


@dataclass
class CheckResult:
    profile: Profile
    run_dir: Path
    table: pd.DataFrame  # one row per judged variant: verdict, a cell per budget, reasons, not_measured
    reason_lists: list[list[str]] = field(default_factory=list)  # table row i's reasons, one per item
    drops: list[dict[str, Drop]] = field(default_factory=list)  # table row i's accuracy drops, by budget key
    failed_keys: list[list[str]] = field(default_factory=list)  # table row i's failed budget keys
    target: str | None = None  # the cluster target whose rows were judged (`bench run --cluster`)

    @property
    def passed(self) -> bool:
        return bool((self.table["verdict"] == "PASS").all())

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def check_run(run_dir: Path, profile: Profile, variants: list[str] | None = None,
              samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE, target: str | None = None
              ) -> CheckResult:
    """Judge the rows of `run_dir` selected by the profile's threads/device (and `variants`, if given);
    accuracy drops on their paired bootstrap interval (`samples` resamples, `confidence`). A run measured on
    several cluster targets is judged one `target` at a time."""
    run_dir = Path(run_dir)
    run = open_run(run_dir, target=target)
    if target is None and len(run.targets) > 1:
        raise BenchError(f"{run_dir}: measured on targets {', '.join(run.targets)}; each is judged apart: "
                         "pass --target")
    df = run.frame()  # the latest row per (variant, seed): a resumed run re-measures
    ok = df[df["status"] == "ok"]
    rows = RunRows(ok, DropJudge(run_dir, samples, confidence))
    selected = df
    if profile.threads is not None:
        selected = selected[selected["threads"] == profile.threads]
    if profile.device is not None:
        selected = selected[selected["device"] == profile.device]
    scope = f"threads={profile.threads if profile.threads is not None else 'any'}, " \
            f"device={profile.device or 'any'}"
    if variants:
        missing = sorted(set(variants) - set(selected["variant_id"]))
        if missing:
            raise BenchError(f"{run_dir}: variant(s) {', '.join(missing)} not among the rows profile "
                             f"{profile.name} judges ({scope}): {', '.join(sorted(set(selected['variant_id'])))}")
        selected = selected[selected["variant_id"].isin(variants)]
    if selected.empty:
        raise BenchError(f"{run_dir}: no rows with {scope} for profile {profile.name}")

    out = []
    for _, row in selected.iterrows():
        cells, reasons, not_measured, drops, failed = {}, [], [], {}, []
        if row["status"] != "ok":
            error = str(row.get("error") or "").strip().splitlines()
            reasons.append(f"not measured: {row['status']}" + (f" ({error[0]})" if error else ""))
        else:
            for key in profile.budgets():
                cells[key], reason = BUDGETS[key].judge(getattr(profile, key), row, rows)
                if isinstance(BUDGETS[key], AccuracyDrop):
                    estimate = BUDGETS[key].estimate(row, rows)
                    if isinstance(estimate, Drop):
                        drops[key] = estimate
                if reason:
                    reasons.append(reason)
                    failed.append(key)
                elif cells[key].startswith("n/a"):
                    not_measured.append(key)
        out.append({"variant": row["variant_id"], "seed": row["seed"], "verdict": "FAIL" if reasons else "PASS",
                    **cells, "reasons": "; ".join(reasons), "not_measured": ", ".join(not_measured),
                    "reason_list": reasons, "drops": drops, "failed": failed})
    extra = ["reason_list", "drops", "failed"]
    columns = ["variant", "seed", "verdict", *profile.budgets(), "reasons", "not_measured", *extra]
    table = pd.DataFrame(out, columns=columns).sort_values(["variant", "seed"], ignore_index=True)
    reason_lists, drops, failed_keys = (table.pop(c).tolist() for c in extra)
    return CheckResult(profile, run_dir, table, reason_lists, drops, failed_keys, target)


def format_markdown(result: CheckResult) -> str:
    """A Markdown summary: overall verdict, the profile's budgets and a per-variant table."""
    p, t = result.profile, result.table
    n_fail = int((t["verdict"] == "FAIL").sum())
    head = f"**FAIL**: {n_fail} of {len(t)} variants over budget" if n_fail \
        else f"**PASS**: all {len(t)} variants within budget"
    budgets = ", ".join(f"{b} {getattr(p, b):g}" if not isinstance(getattr(p, b), tuple)
                        else f"{b} {list(getattr(p, b))}" for b in p.budgets()) or "none"
    on = f" (target `{result.target}`)" if result.target else ""
    lines = [f"## Edge check: profile `{p.name}` on `{result.run_dir}`{on}", "", head, "",
             f"Rows judged: threads={p.threads if p.threads is not None else 'any'}, device={p.device or 'any'}. "
             f"Budgets: {budgets}.", ""]
    if any(k in p.budgets() for k in DROP_KEYS):
        lines += [RULE, ""]
    disp = t.drop(columns=["reasons", "not_measured"]).fillna("")
    disp["verdict"] = ["**FAIL**" if v == "FAIL" else v for v in disp["verdict"]]
    lines += [disp.to_markdown(index=False, disable_numparse=True), ""]
    failed = t[t["verdict"] == "FAIL"]
    if len(failed):
        lines += ["### Why", ""] + [f"- {r.variant} (seed {r.seed}): {r.reasons}" for r in failed.itertuples()] + [""]
    unmeasured = t[t["not_measured"] != ""]
    if len(unmeasured):
        lines += ["### Not measured (neither pass nor fail)", ""]
        lines += [f"- {r.variant} (seed {r.seed}): {r.not_measured}" for r in unmeasured.itertuples()] + [""]
    return "\n".join(lines)
