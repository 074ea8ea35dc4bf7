"""Machine-readable output of the two CI gates: `bench compare --json` and `bench check --json`, and
GitHub annotations (`--annotations`).

The JSON documents are pydantic models; their JSON Schemas are committed as docs/compare.schema.json
and docs/check.schema.json (tests/test_gate.py fails when they differ from the models):

    python -m bench.gate.json_report --write    # regenerate both schema files
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.gate.metrics import ALPHA, DEFAULT_TOLERANCES, METRICS, PRIMARY, format_change

SCHEMA_VERSION = 1
DOCS = Path(__file__).resolve().parents[2] / "docs"
Verdict = Literal["ok", "regressed", "not significant", "n/a"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ bench compare --json
class ToleranceInfo(_Model):
    metric: str = Field(description="metric name (bench/gate/metrics.py), e.g. latency_p95, size_mb; the "
                                    "default score tolerance is named after the task's primary metric (accuracy, "
                                    "matthews_correlation, f1, pearson, ...)")
    field: str = Field(description="the results-row field it reads, e.g. latency_p95_ms")
    value: float = Field(description="how much worse the current run may be, in `unit`")
    unit: Literal["%", "pt"] = Field(description="%: relative to the baseline; pt: absolute percentage points")
    better: Literal["lower", "higher"] = Field(description="which way is better for this metric")
    significance: Literal["mann-whitney-u"] | None = Field(
        description="latency metrics also need a one-sided Mann-Whitney U test on latency_raw_ms with p < alpha")
    default: bool = Field(description="judged by default (latency_p50, accuracy) rather than asked for")


class MetricResult(_Model):
    baseline: float | None = Field(description="the baseline row's value (null: not measured)")
    current: float | None = Field(description="the current row's value")
    change: float | None = Field(description="current vs baseline in `unit`: % relative change, or points")
    unit: Literal["%", "pt"]
    tolerance: float
    p_value: float | None = Field(description="one-sided Mann-Whitney U p-value (latency metrics with raw samples)")
    verdict: Verdict = Field(description="ok; regressed; not significant (over the tolerance, p >= alpha); "
                                         "n/a (missing on a side)")


class VariantResult(_Model):
    variant: str = Field(description="`variant_id seed=N`, how the Markdown names it")
    variant_id: str
    seed: int | None
    verdict: Literal["ok", "regressed"]
    metrics: dict[str, MetricResult] = Field(description="metric name -> result, for every judged metric")
    note: str | None = Field(description="e.g. no raw latency samples, a requested metric not measured")


class Regression(_Model):
    variant: str
    metric: str
    message: str = Field(description="one line, as in the annotation")


class CompareReport(_Model):
    """`bench compare BASELINE CURRENT --json FILE`."""

    kind: Literal["bench-compare"] = "bench-compare"
    schema_version: Literal[1] = SCHEMA_VERSION
    verdict: Literal["pass", "regressed", "incomplete"] = Field(
        description="regressed: a metric regressed; incomplete: only with --fail-on-missing, a variant failed "
                    "or is missing, or nothing was compared; pass otherwise")
    exit_code: int = Field(description="what the command exits with: 0 pass, 1 regressed or incomplete")
    baseline: str
    current: str
    alpha: float = Field(description="significance level of the Mann-Whitney U test")
    primary_metric: str = Field(description="the task's primary metric the default score tolerance judged (the "
                                            "rows' `score`): accuracy for SST-2 and older rows, "
                                            "matthews_correlation for CoLA, ...; `score` when the rows mix metrics")
    tolerances: list[ToleranceInfo]
    variants: list[VariantResult] = Field(description="every variant measured ok on both sides")
    regressions: list[Regression] = Field(description="one entry per regressed (variant, metric)")
    baseline_only: list[str] = Field(description="variants only in the baseline (not compared)")
    current_only: list[str] = Field(description="variants only in the current run (not compared)")
    failed: list[str] = Field(description="current variants not measured ok: `variant: status: error`")
    notes: list[str] = Field(description="e.g. different CPU models, a planted test slowdown")


def _f(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _num_text(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.6g}{unit}"


def regression_message(variant: str, metric: str, r: MetricResult) -> str:
    m = METRICS.get(metric, METRICS[PRIMARY])  # a primary metric's name ("score": mixed) judges like accuracy
    change = "—" if r.change is None else format_change(r.change, r.unit)
    limit = f"{'+' if m.direction == 'max' else '−'}{r.tolerance:g}{r.unit}"
    p = "" if r.p_value is None else f", p={r.p_value:.2g}"
    return (f"{variant}: {metric} regressed: baseline {_num_text(r.baseline)}, current {_num_text(r.current)} "
            f"({change}{p}; tolerance {limit})")


def compare_report(c, fail_on_missing: bool = False) -> CompareReport:
    """The JSON document of a `bench.gate.compare.Comparison`."""
    primary = getattr(c, "primary_metric", PRIMARY)
    tolerances = [ToleranceInfo(metric=primary if name == PRIMARY else name, field=t.metric, value=t.value, unit=t.unit,
                                better="lower" if t.direction == "max" else "higher",
                                significance="mann-whitney-u" if METRICS[name].sampled else None,
                                default=name in DEFAULT_TOLERANCES) for name, t in c.tolerances.items()]
    notes = dict(zip(c.table["variant"], c.table["note"], strict=True))
    variants, regressions = [], []
    for variant, d in c.details.groupby("variant", sort=True):
        metrics = {r.metric: MetricResult(baseline=_f(r.baseline), current=_f(r.current), change=_f(r.change),
                                          unit=r.unit, tolerance=r.tolerance, p_value=_f(r.p_value),
                                          verdict=r.verdict) for r in d.itertuples()}
        bad = [name for name, r in metrics.items() if r.verdict == "regressed"]
        regressions += [Regression(variant=variant, metric=name,
                                   message=regression_message(variant, name, metrics[name])) for name in bad]
        variant_id, _, seed = variant.rpartition(" seed=")
        variants.append(VariantResult(variant=variant, variant_id=variant_id.partition("@")[0],  # "@target"
                                      seed=int(seed) if seed.lstrip("-").isdigit() else None,
                                      verdict="regressed" if bad else "ok", metrics=metrics,
                                      note=notes.get(variant) or None))
    exit_code = c.gate_exit_code(fail_on_missing)
    verdict = "regressed" if c.regressed else "incomplete" if exit_code else "pass"
    return CompareReport(verdict=verdict, exit_code=exit_code, baseline=str(c.baseline_dir),
                         current=str(c.current_dir), alpha=ALPHA, primary_metric=primary, tolerances=tolerances,
                         variants=variants,
                         regressions=regressions, baseline_only=c.baseline_only, current_only=c.current_only,
                         failed=c.failed, notes=c.notes)


# ------------------------------------------------------------------ bench check --json
class BudgetCell(_Model):
    status: Literal["pass", "fail", "n/a"] = Field(description="n/a: not measured, neither pass nor fail")
    cell: str = Field(description="the Markdown table's cell, e.g. `FAIL: 45.2 MB > 40 MB`")


class DropEstimate(_Model):
    point: float = Field(description="the drop in points (x100) of the task's primary metric")
    low: float | None = Field(description="its paired bootstrap interval, low end (null: no predictions kept)")
    high: float | None = Field(description="... high end: what the budget judges (the point when null)")
    confidence: float


class CheckVariant(_Model):
    variant_id: str
    seed: int | None
    verdict: Literal["PASS", "FAIL"]
    cells: dict[str, BudgetCell] = Field(description="budget key -> cell (empty when the row was not measured)")
    reasons: list[str] = Field(description="one per failed budget, or why the variant was not measured")
    not_measured: list[str] = Field(description="budget keys the row carries no value for")
    accuracy_drops: dict[str, DropEstimate] = Field(default_factory=dict,
                                                    description="drop budget key -> the drop it judged")


class ProfileInfo(_Model):
    name: str
    threads: int | None = Field(description="rows judged: this thread count (null: any)")
    device: str | None = Field(description="rows judged: this device (null: any)")
    budgets: dict[str, float | list[str]] = Field(description="budget key -> limit, for the keys the profile sets")


class CheckReport(_Model):
    """`bench check RUN --profile P --json FILE`."""

    kind: Literal["bench-check"] = "bench-check"
    schema_version: Literal[1] = SCHEMA_VERSION
    verdict: Literal["PASS", "FAIL"]
    exit_code: int
    run_dir: str
    profile: ProfileInfo
    variants: list[CheckVariant]


def _status(cell: str) -> str:
    return "fail" if cell.startswith("FAIL") else "pass" if cell.startswith("pass") else "n/a"


def check_report(result) -> CheckReport:
    """The JSON document of a `bench.gate.check.CheckResult`."""
    p = result.profile
    budgets = {k: list(v) if isinstance(v, tuple) else float(v) for k in p.budgets() for v in [getattr(p, k)]}
    variants = []
    for i, row in enumerate(result.table.to_dict("records")):
        cells = {k: BudgetCell(status=_status(str(row[k])), cell=str(row[k])) for k in p.budgets()
                 if isinstance(row.get(k), str)}
        seed = row["seed"]
        variants.append(CheckVariant(
            variant_id=row["variant"], seed=None if seed is None or seed != seed else int(seed),
            verdict=row["verdict"], cells=cells, reasons=list(result.reason_lists[i]),
            not_measured=[k for k in str(row["not_measured"]).split(", ") if k],
            accuracy_drops={k: DropEstimate(point=d.point, low=d.low, high=d.high, confidence=d.confidence)
                            for k, d in (result.drops[i] if result.drops else {}).items()}))
    return CheckReport(verdict="PASS" if result.passed else "FAIL", exit_code=result.exit_code,
                       run_dir=str(result.run_dir),
                       profile=ProfileInfo(name=p.name, threads=p.threads, device=p.device, budgets=budgets),
                       variants=variants)


# ------------------------------------------------------------------ output
def write_json(model: BaseModel, path: str | Path) -> None:
    Path(path).write_text(model.model_dump_json(indent=2) + "\n")


def _escape(text: str, prop: bool = False) -> str:
    """GitHub workflow-command escaping (actions/toolkit): % CR LF always, and : , in properties."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def annotation(level: Literal["error", "warning"], title: str, message: str) -> str:
    return f"::{level} title={_escape(title, prop=True)}::{_escape(message)}"


def compare_annotations(report: CompareReport) -> list[str]:
    """`::error` per regressed (variant, metric) and per failed variant; `::warning` per note and per
    variant compared on one side only."""
    lines = [annotation("error", f"bench compare: {r.metric} regressed", r.message) for r in report.regressions]
    lines += [annotation("error", "bench compare: variant failed", f) for f in report.failed]
    lines += [annotation("warning", "bench compare: not compared", f"{v}: only in {side}")
              for side, items in (("baseline", report.baseline_only), ("current", report.current_only))
              for v in items]
    lines += [annotation("warning", "bench compare", n) for n in report.notes]
    lines += [annotation("warning", "bench compare", f"{v.variant}: {v.note}") for v in report.variants if v.note]
    return lines


def check_annotations(report: CheckReport) -> list[str]:
    """`::error` per failed variant (its reasons), `::warning` per variant with unmeasured budgets."""
    name = report.profile.name
    lines = [annotation("error", f"bench check {name}: {v.variant_id} over budget",
                        f"{v.variant_id} (seed {v.seed}): " + "; ".join(v.reasons))
             for v in report.variants if v.verdict == "FAIL"]
    lines += [annotation("warning", f"bench check {name}: not measured",
                         f"{v.variant_id} (seed {v.seed}): {', '.join(v.not_measured)} not measured")
              for v in report.variants if v.not_measured]
    return lines


SCHEMAS = {"compare.schema.json": CompareReport, "check.schema.json": CheckReport}


def schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    for name, model in SCHEMAS.items():
        if "--write" in argv:
            (DOCS / name).write_text(schema_text(model))
            print(DOCS / name)
        else:
            print(schema_text(model))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
