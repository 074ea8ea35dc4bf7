"""`bench compare BASELINE CURRENT`: the CI regression gate between two run directories.

Rows are joined on `bench.store.results.IDENTITY`, never by position. Latency regresses only when the
slowdown exceeds its tolerance AND the raw samples say the slowdown is real (one-sided Mann-Whitney
U on `latency_raw_ms`, p < 0.01), so run-to-run noise on a shared CI machine does not fail the build;
every percentile (p50, p90, p95, p99) and the mean are computed from those samples and share that
test. Accuracy regresses when its drop in points exceeds the tolerance: the task's primary metric
(`score`; accuracy for SST-2 and older rows, Matthews correlation for CoLA, ...), named after that
metric in the Markdown and JSON, and not compared on a variant whose two sides were scored on
different metrics. Any other metric of
bench.gate.metrics.METRICS (size, peak RSS, throughput, ...) is judged, on its tolerance alone,
when a tolerance is given for it.

Exit codes for the CLI (`Comparison.exit_code`): 0 no regression, 1 a regression, 2 bad input
(`BenchError`: a missing run directory, an unparsable tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bench.common.errors import BenchError
from bench.gate.metrics import (
    ALPHA,
    DEFAULT_TOLERANCES,
    LATENCY_DEFAULTS,
    METRICS,
    PRIMARY,
    UNITS,
    Tolerance,
    format_change,
    parse_tolerances,
    primary_tolerances,
    resolve,
)
from bench.store.results import IDENTITY, RESULTS_FILE, Run, open_run

# Rows pair on their identity and the cluster target they were measured on ("" on one machine): a row of
# target a is never compared with one of target b.
JOIN = [*IDENTITY, "target"]

__all__ = ["ALPHA", "DEFAULT_TOLERANCES", "DETAIL_COLUMNS", "METRICS", "TABLE_COLUMNS", "UNITS", "Comparison",
           "Tolerance", "compare_runs", "format_markdown", "parse_tolerances"]

_PLANTED = "+planted-"  # latency_input of rows measured with BENCH_TEST_SLOWDOWN_MS (bench/child/worker.py)


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per variant present on both sides, with ratio, delta, p-value, verdicts
    baseline_only: list[str]
    current_only: list[str]
    failed: list[str]  # current rows whose status is not "ok", with their error
    regressed: bool
    tolerances: dict[str, Tolerance]
    notes: list[str] = field(default_factory=list)
    baseline_dir: Path | None = None
    current_dir: Path | None = None
    # One row per (variant, judged metric): DETAIL_COLUMNS. What --json and --annotations report.
    details: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DETAIL_COLUMNS))
    # The task's primary metric the `accuracy` tolerance judged (the details name it so); "score" when
    # the rows mix metrics.
    primary_metric: str = PRIMARY

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    @property
    def incomplete(self) -> bool:
        """What `--fail-on-missing` fails on: a failed or missing variant, or nothing compared."""
        return bool(self.failed or self.baseline_only or self.table.empty)

    def gate_exit_code(self, fail_on_missing: bool = False) -> int:
        return 1 if self.regressed or (fail_on_missing and self.incomplete) else 0

    @property
    def extra_metrics(self) -> list[str]:
        """The metrics judged because a tolerance was given for them, beyond the defaults."""
        return [name for name in self.tolerances if name not in DEFAULT_TOLERANCES]


# baseline_accuracy ... accuracy_verdict: the primary score (Comparison.primary_metric), whatever the task's metric.
TABLE_COLUMNS = ["variant", *IDENTITY, "baseline_p50_ms", "current_p50_ms", "latency_ratio", "latency_p_value",
                 "latency_verdict", "baseline_speedup", "current_speedup", "speedup_change", "speedup_p_value",
                 "speedup_verdict", "baseline_accuracy", "current_accuracy", "accuracy_delta_pts",
                 "accuracy_verdict", "note"]
DETAIL_COLUMNS = ["variant", "metric", "field", "baseline", "current", "change", "unit", "tolerance", "p_value",
                  "verdict"]


def _extra_columns(name: str) -> list[str]:
    p = [f"{name}_p_value"] if METRICS[name].sampled else []
    return [f"baseline_{name}", f"current_{name}", f"{name}_change", *p, f"{name}_verdict"]


def _first_line(text) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def _label(row) -> str:
    return f"{row['variant_id']}{'@' + row['target'] if row['target'] else ''} seed={row['seed']}"


def _frame(run: Run, side: str, metrics: list[str]) -> pd.DataFrame:
    """The latest row per variant and seed (a resumed run re-measures), raw latency samples kept."""
    df = run.frame(raw=True)
    missing = [c for c in [*IDENTITY, "status"] if c not in df.columns]
    if missing:
        raise BenchError(f"{side} {run.path / RESULTS_FILE}: rows lack identity columns {missing}")
    df["target"] = df["target"].fillna("") if "target" in df else ""
    for col in ["latency_input", "error", *metrics]:
        if col not in df.columns:  # a task metric with no row field of its own: from `metrics` (primary split)
            df[col] = [m.get(col) if isinstance(m, dict) else None for m in df.get("metrics", [None] * len(df))]
    df["variant"] = df.apply(_label, axis=1)
    return df


def _samples(value) -> np.ndarray | None:
    if not isinstance(value, list | tuple | np.ndarray) or len(value) == 0:
        return None
    return np.asarray(value, dtype=float)


def _num(value) -> float:
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _primary(*frames: pd.DataFrame) -> str:
    """The primary metric of the measured rows of both sides; "score" when they mix metrics."""
    names = {str(m) for df in frames for m in df.loc[df["status"] == "ok", "metric"].dropna()}
    return names.pop() if len(names) == 1 else "score" if names else PRIMARY


def _compare_row(r, tolerances: dict[str, Tolerance], primary: str = PRIMARY) -> tuple[dict, list[dict]]:
    """The wide table row of one variant, and its per-metric detail rows (the `accuracy` tolerance's
    named `primary`)."""
    # One test per samples field: every latency percentile shares latency_raw_ms (and its p-value).
    p_values = {m.samples: _p_value(r, m) for m in map(METRICS.get, tolerances) if m.sampled}
    p_value, notes = p_values["latency_raw_ms"], []
    if math.isnan(p_value):
        notes.append("no raw latency samples: latency judged on the tolerance alone")
    speed = _default_speed(r)
    by, unjudged = {}, set()
    for name, tol in tolerances.items():
        metric = METRICS[name]
        base, cur = _num(r[f"{tol.metric}_base"]), _num(r[f"{tol.metric}_cur"])
        if name in LATENCY_DEFAULTS and name != speed and not tol.given:
            unjudged.add(name)  # the variant's speed is judged on the other one
        verdict, p = tol.judge(base, cur), p_values[metric.samples] if metric.sampled else math.nan
        if verdict == "regressed" and not (math.isnan(p) or p < ALPHA):
            verdict = "not significant"
        if name in unjudged:
            verdict = "not judged"
        elif verdict == "n/a" and name not in DEFAULT_TOLERANCES:
            side = " and ".join(s for s, v in (("baseline", base), ("current", cur)) if math.isnan(v))
            notes.append(f"{name} not compared: " + (f"not measured in {side}" if side else "baseline is 0"))
        change = tol.change(base, cur)
        scored = (r.get("metric_base"), r.get("metric_cur"))
        if name == PRIMARY and all(isinstance(m, str) for m in scored) and scored[0] != scored[1]:
            verdict, change = "n/a", math.nan  # two different metrics: no drop to judge
            notes.append(f"primary metric differs (baseline {scored[0]}, current {scored[1]}): score not compared")
        batches = [_batch(r.get(f"score_batch_size{side}")) for side in ("_base", "_cur")]
        if name == PRIMARY and (batches[0] == 1) != (batches[1] == 1):  # dynamic INT8 scored as deployed on one side
            notes.append("score predicted at batch {} in baseline, {} in current: the change includes what the "
                         "batch does to dynamic INT8".format(*(b or "eval_batch_size" for b in batches)))
        by[name] = {"variant": r["variant"], "metric": primary if name == PRIMARY else name, "field": tol.metric,
                    "baseline": base, "current": cur, "change": change, "unit": tol.unit,
                    "tolerance": tol.value, "p_value": p, "verdict": verdict}
    details = [d for name, d in by.items() if name not in unjudged]
    lat, acc, up = by["latency_p50"], by[PRIMARY], by["speedup"]
    wide = {
        "variant": r["variant"], **{c: r[c] for c in IDENTITY},
        "baseline_p50_ms": lat["baseline"], "current_p50_ms": lat["current"],
        "latency_ratio": lat["current"] / lat["baseline"] if lat["baseline"] > 0 else math.nan,
        "latency_p_value": p_value, "latency_verdict": lat["verdict"],
        "baseline_speedup": up["baseline"], "current_speedup": up["current"], "speedup_change": up["change"],
        "speedup_p_value": up["p_value"], "speedup_verdict": up["verdict"],
        "baseline_accuracy": acc["baseline"], "current_accuracy": acc["current"],
        "accuracy_delta_pts": acc["change"], "accuracy_verdict": acc["verdict"],
        "note": "; ".join(notes),
    }
    for name in tolerances:
        if name not in DEFAULT_TOLERANCES:
            d = by[name]
            wide |= {f"baseline_{name}": d["baseline"], f"current_{name}": d["current"],
                     f"{name}_change": d["change"], f"{name}_verdict": d["verdict"]}
            if METRICS[name].sampled:
                wide[f"{name}_p_value"] = d["p_value"]
    return wide, details


def _p_value(r, metric) -> float:
    """One-sided Mann-Whitney U p-value that the current samples are worse than the baseline's (NaN
    without samples on both sides): stochastically larger for latency, smaller for a speedup."""
    base, cur = _samples(r.get(f"{metric.samples}_base")), _samples(r.get(f"{metric.samples}_cur"))
    if base is None or cur is None:
        return math.nan
    return float(mannwhitneyu(cur, base, alternative="greater" if metric.direction == "max" else "less").pvalue)


def _default_speed(r) -> str:
    """The speed metric a variant is judged on by default: the first of LATENCY_DEFAULTS both sides have."""
    for name in LATENCY_DEFAULTS:
        m = METRICS[name]
        if not (math.isnan(_num(r.get(f"{m.field}_base"))) or math.isnan(_num(r.get(f"{m.field}_cur")))):
            return name
    return LATENCY_DEFAULTS[-1]


def _batch(value) -> int | None:
    return None if value is None or value != value else int(value)


def _input_notes(both: pd.DataFrame) -> list[str]:
    """A baseline and a current measured on different inputs (a planted test slowdown among them)."""
    pairs: dict[tuple[str, str], int] = {}
    for _, r in both.iterrows():
        b, c = r["latency_input_base"], r["latency_input_cur"]
        if isinstance(b, str) and isinstance(c, str) and b != c:
            pairs[(b, c)] = pairs.get((b, c), 0) + 1
    notes = []
    for (b, c), n in pairs.items():
        planted = " (a planted test slowdown, BENCH_TEST_SLOWDOWN_MS)" if _PLANTED in b + c else ""
        notes.append(f"latency_input differs in {n} of {len(both)} variants: baseline {b!r}, current {c!r}{planted}")
    return notes


def compare_runs(baseline_dir: Path, current_dir: Path, tolerances: dict[str, Tolerance] | None = None) -> Comparison:
    """Compare every variant measured "ok" on both sides; list those on one side only and current failures."""
    tolerances = resolve(tolerances)
    base_run, cur_run = open_run(baseline_dir, side="baseline"), open_run(current_dir, side="current")
    metrics = ["metric", "score", "score_batch_size", *(t.metric for t in tolerances.values()),
               *(METRICS[n].samples for n in tolerances if METRICS[n].samples)]
    base_all, cur_all = _frame(base_run, "baseline", metrics), _frame(cur_run, "current", metrics)
    primary = _primary(base_all, cur_all)
    tolerances = primary_tolerances(tolerances, primary)
    base, cur = base_all[base_all["status"] == "ok"], cur_all[cur_all["status"] == "ok"]
    cols = list(dict.fromkeys([*JOIN, "variant", "latency_input", *metrics]))
    joined = base[cols].merge(cur[cols].drop(columns="variant"), on=JOIN, how="outer",
                              suffixes=("_base", "_cur"), indicator=True)
    both = joined[joined["_merge"] == "both"]
    rows, details = [], []
    for _, r in both.iterrows():
        wide, detail = _compare_row(r, tolerances, primary)
        rows.append(wide)
        details += detail
    extra = [c for name in tolerances if name not in DEFAULT_TOLERANCES for c in _extra_columns(name)]
    table = pd.DataFrame(rows, columns=[*TABLE_COLUMNS[:-1], *extra, "note"]).sort_values("variant", ignore_index=True)
    detail = pd.DataFrame(details, columns=DETAIL_COLUMNS).sort_values("variant", kind="stable", ignore_index=True)

    key = base_all.set_index(JOIN)["variant"].to_dict() | cur_all.set_index(JOIN)["variant"].to_dict()
    one_side = joined[joined["_merge"] != "both"]
    baseline_only = sorted(key[tuple(r[c] for c in JOIN)] for _, r in one_side.iterrows()
                           if r["_merge"] == "left_only")
    current_only = sorted(key[tuple(r[c] for c in JOIN)] for _, r in one_side.iterrows()
                          if r["_merge"] == "right_only")
    bad = cur_all[cur_all["status"] != "ok"]
    failed = sorted(f"{r['variant']}: {r['status']}" + (f": {_first_line(r['error'])}" if r["error"] else "")
                    for _, r in bad.iterrows())

    notes = []
    base_cpu, cur_cpu = base_run.cpu_model, cur_run.cpu_model
    if base_cpu and cur_cpu and base_cpu != cur_cpu:
        notes.append(f"baseline ran on {base_cpu!r}, current on {cur_cpu!r}: latency ratios compare machines too")
    notes += _input_notes(both)
    regressed = bool(detail["verdict"].eq("regressed").any())
    return Comparison(table, baseline_only, current_only, failed, regressed, tolerances, notes,
                      Path(baseline_dir), Path(current_dir), detail, primary)


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "—" if value is None or pd.isna(value) else f"{value:{spec}}{suffix}"


def _fmt_p(p: float) -> str:
    return "—" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _verdict(v: str) -> str:
    return "**REGRESSED**" if v == "regressed" else v


def describe_tolerance(name: str, tol: Tolerance) -> str:
    """`latency_p95 +10% with p < 0.01`, `size_mb +0%`, `gflops_per_s −5%`."""
    sign = "+" if tol.direction == "max" else "−"
    test = f" with p < {ALPHA:g}" if METRICS[name].sampled else ""
    return f"{name} {sign}{tol}{test}"


def _fmt_value(name: str, value: float) -> str:
    m = METRICS[name]
    return _fmt(value * m.scale if m.unit == "pt" else value, ".2f" if m.unit == "pt" else ".6g")


def _fmt_change(value: float, unit: str) -> str:
    return "—" if pd.isna(value) else format_change(value, unit)


def _extra_table(c: Comparison) -> list[str]:
    d = c.details[c.details["metric"].isin(c.extra_metrics)]
    if d.empty:
        return []
    disp = pd.DataFrame({
        "variant": d["variant"], "metric": d["metric"],
        "baseline": [_fmt_value(n, v) for n, v in zip(d["metric"], d["baseline"], strict=True)],
        "current": [_fmt_value(n, v) for n, v in zip(d["metric"], d["current"], strict=True)],
        "change": [_fmt_change(v, u) for v, u in zip(d["change"], d["unit"], strict=True)],
        "p (MWU)": [_fmt_p(v) for v in d["p_value"]],
        "verdict": [_verdict(v) for v in d["verdict"]],
    })
    return ["### Other metrics", "", disp.to_markdown(index=False, disable_numparse=True), ""]


def format_markdown(comparison: Comparison) -> str:
    """A Markdown summary for a CI job: verdict, per-variant table, one-sided and failed variants."""
    c, t = comparison, comparison.tolerances
    n_bad = c.details.loc[c.details["verdict"] == "regressed", "variant"].nunique()
    head = f"**REGRESSED**: {n_bad} of {len(c.table)} variants" if c.regressed \
        else f"**No regression** in {len(c.table)} variants compared"
    # Say up front what was not compared: an all-failed current run must not read as a clean pass.
    extra = [f"{len(items)} {what}" for items, what in [(c.baseline_only, "only in baseline"),
                                                        (c.current_only, "only in current"),
                                                        (c.failed, "failed in current")] if items]
    head += f"; {', '.join(extra)}" if extra else ""
    lines = ["## Benchmark comparison", ""]
    if c.baseline_dir and c.current_dir:
        lines += [f"Baseline `{c.baseline_dir}`, current `{c.current_dir}`.", ""]
    score = c.primary_metric
    both = c.table["baseline_speedup"].notna() & c.table["current_speedup"].notna()
    interleaved = bool(len(c.table)) and both.any()  # some variant is judged on its speedup
    speed = (f"speedup over the reference −{t['speedup']} and one-sided Mann-Whitney U p < {ALPHA:g} on the "
             f"interleaved rounds where both sides measured it, else " if interleaved else "")
    lines += [head, "",
              f"Tolerances: {speed}latency p50 +{t['latency_p50']} and one-sided Mann-Whitney U p < {ALPHA:g} "
              f"on the raw samples; {score} −{t[PRIMARY]}.", ""]
    if c.extra_metrics:
        lines += ["Also judged: " + "; ".join(describe_tolerance(n, t[n]) for n in c.extra_metrics) + ".", ""]
    if len(c.table):
        disp = pd.DataFrame({
            "variant": c.table["variant"],
            "p50 baseline ms": [_fmt(v, ".3g") for v in c.table["baseline_p50_ms"]],
            "p50 current ms": [_fmt(v, ".3g") for v in c.table["current_p50_ms"]],
            "ratio": [_fmt(v, ".3f", "×") for v in c.table["latency_ratio"]],
            "p (MWU)": [_fmt_p(v) for v in c.table["latency_p_value"]],
            "latency": [_verdict(v) for v in c.table["latency_verdict"]],
            **({"speedup baseline": [_fmt(v, ".3f", "×") for v in c.table["baseline_speedup"]],
                "speedup current": [_fmt(v, ".3f", "×") for v in c.table["current_speedup"]],
                "p (rounds)": [_fmt_p(v) for v in c.table["speedup_p_value"]],
                "speedup": [_verdict(v) for v in c.table["speedup_verdict"]]} if interleaved else {}),
            "acc baseline %" if score == PRIMARY else f"{score} baseline ×100":
                [_fmt(v * 100, ".2f") for v in c.table["baseline_accuracy"]],
            "acc current %" if score == PRIMARY else f"{score} current ×100":
                [_fmt(v * 100, ".2f") for v in c.table["current_accuracy"]],
            "Δ pts": [_fmt(v, "+.2f") for v in c.table["accuracy_delta_pts"]],
            score: [_verdict(v) for v in c.table["accuracy_verdict"]],
        })
        lines += [disp.to_markdown(index=False, disable_numparse=True), ""]  # keep our number formats
        lines += _extra_table(c)
    notes = [f"{v}: {n}" for v, n in zip(c.table["variant"], c.table["note"], strict=True) if n]
    for title, items in [("Only in baseline (not compared)", c.baseline_only),
                         ("Only in current (not compared)", c.current_only),
                         ("Failed in current", c.failed), ("Notes", c.notes + notes)]:
        if items:
            lines += [f"### {title}", ""] + [f"- {i}" for i in items] + [""]
    return "\n".join(lines)
