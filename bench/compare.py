"""`bench compare BASELINE CURRENT`: the CI regression gate between two run directories.

Rows are joined on `bench.results.IDENTITY`, never by position. Latency regresses only when the p50
slowdown exceeds its tolerance AND the raw samples say the slowdown is real (one-sided Mann-Whitney U,
p < 0.01), so run-to-run noise on a shared CI machine does not fail the build. Accuracy regresses when
its drop in points exceeds the tolerance.

Exit codes for the CLI (`Comparison.exit_code`): 0 no regression, 1 a regression, 2 bad input
(`BenchError`: a missing run directory, an unparsable tolerance).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bench.errors import BenchError
from bench.results import IDENTITY, RESULTS_FILE, Run, open_run

ALPHA = 0.01  # significance level of the one-sided Mann-Whitney U test
_EPS = 1e-9  # float slack, so that a change exactly at the tolerance is not a regression


@dataclass(frozen=True)
class Tolerance:
    """How much worse the current run may be than the baseline on one metric: `value` in `unit` ("%":
    relative, for latency; "pt": percentage points of a fraction, for accuracy). `metric` is the row
    field and `direction` which way it may move: "max", at most `value` above the baseline (latency),
    "min", at most `value` below it (accuracy). Two tolerances are equal when value and unit are."""

    value: float
    unit: str
    metric: str = field(default="", compare=False)
    direction: Literal["max", "min"] = field(default="max", compare=False)

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"

    def change(self, base: float, cur: float) -> float:
        """current vs baseline in this tolerance's unit (NaN when either is missing)."""
        if self.unit == "%":
            return (cur / base - 1) * 100 if base > 0 else math.nan
        return (cur - base) * 100

    def judge(self, base: float, cur: float) -> str:
        """ "ok", "regressed" (worse than the baseline by more than the tolerance) or "n/a"."""
        change = self.change(base, cur)
        if math.isnan(change):
            return "n/a"
        worse = change if self.direction == "max" else -change
        return "regressed" if worse > self.value + _EPS else "ok"


# Metric name -> its default tolerance, which also fixes the unit, the row field and the direction.
DEFAULT_TOLERANCES = {"latency_p50": Tolerance(10.0, "%", "latency_p50_ms", "max"),
                      "accuracy": Tolerance(0.5, "pt", "accuracy", "min")}
UNITS = {name: tol.unit for name, tol in DEFAULT_TOLERANCES.items()}

_TOL_RE = re.compile(r"^\s*([a-z0-9_]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%|pts?)\s*$")


def _bind(name: str, value: float, unit: str, item: str) -> Tolerance:
    """The tolerance for metric `name`: the default's metric and direction with this value."""
    if name not in DEFAULT_TOLERANCES:
        raise BenchError(f"bad tolerance {item!r}: unknown metric {name!r} (known: {', '.join(UNITS)})")
    if unit != UNITS[name]:
        raise BenchError(f"bad tolerance {item!r}: {name} takes a tolerance in {UNITS[name]}, not {unit}")
    return replace(DEFAULT_TOLERANCES[name], value=value)


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """`["latency_p50=10%", "accuracy=0.5pt"]` -> tolerances, over the defaults for metrics not given."""
    out = dict(DEFAULT_TOLERANCES)
    for item in items or []:
        m = _TOL_RE.match(item)
        if not m:
            raise BenchError(f"bad tolerance {item!r}: expected METRIC=NUMBER% or METRIC=NUMBERpt, "
                             f"e.g. latency_p50=10% or accuracy=0.5pt")
        name, value, unit = m.group(1), float(m.group(2)), m.group(3)
        out[name] = _bind(name, value, "pt" if unit.startswith("pt") else unit, item)
    return out


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

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0


TABLE_COLUMNS = ["variant", *IDENTITY, "baseline_p50_ms", "current_p50_ms", "latency_ratio", "latency_p_value",
                 "latency_verdict", "baseline_accuracy", "current_accuracy", "accuracy_delta_pts",
                 "accuracy_verdict", "note"]


def _first_line(text) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def _label(row) -> str:
    return f"{row['variant_id']} seed={row['seed']}"


def _frame(run: Run, side: str, metrics: list[str]) -> pd.DataFrame:
    """The latest row per variant and seed (a resumed run re-measures), raw latency samples kept."""
    df = run.frame(raw=True)
    missing = [c for c in [*IDENTITY, "status"] if c not in df.columns]
    if missing:
        raise BenchError(f"{side} {run.path / RESULTS_FILE}: rows lack identity columns {missing}")
    for col in ["latency_raw_ms", "error", *metrics]:
        if col not in df.columns:
            df[col] = None
    df["variant"] = df.apply(_label, axis=1)
    return df


def _samples(value) -> np.ndarray | None:
    if not isinstance(value, list | tuple | np.ndarray) or len(value) == 0:
        return None
    return np.asarray(value, dtype=float)


def _num(value) -> float:
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _compare_row(r, tolerances: dict[str, Tolerance]) -> dict:
    lat_tol, acc_tol = tolerances["latency_p50"], tolerances["accuracy"]
    base_p50, cur_p50 = _num(r[f"{lat_tol.metric}_base"]), _num(r[f"{lat_tol.metric}_cur"])
    ratio = cur_p50 / base_p50 if base_p50 > 0 else math.nan
    base_raw, cur_raw = _samples(r["latency_raw_ms_base"]), _samples(r["latency_raw_ms_cur"])
    p_value, note = math.nan, ""
    if base_raw is not None and cur_raw is not None:
        # alternative="greater": is the current distribution stochastically larger (slower)?
        p_value = float(mannwhitneyu(cur_raw, base_raw, alternative="greater").pvalue)
    else:
        note = "no raw latency samples: latency judged on the tolerance alone"
    lat_verdict = lat_tol.judge(base_p50, cur_p50)
    if lat_verdict == "regressed" and not (math.isnan(p_value) or p_value < ALPHA):
        lat_verdict = "not significant"

    base_acc, cur_acc = _num(r[f"{acc_tol.metric}_base"]), _num(r[f"{acc_tol.metric}_cur"])
    return {
        "variant": r["variant"], **{c: r[c] for c in IDENTITY},
        "baseline_p50_ms": base_p50, "current_p50_ms": cur_p50, "latency_ratio": ratio,
        "latency_p_value": p_value, "latency_verdict": lat_verdict,
        "baseline_accuracy": base_acc, "current_accuracy": cur_acc,
        "accuracy_delta_pts": acc_tol.change(base_acc, cur_acc), "accuracy_verdict": acc_tol.judge(base_acc, cur_acc),
        "note": note,
    }


def compare_runs(baseline_dir: Path, current_dir: Path, tolerances: dict[str, Tolerance] | None = None) -> Comparison:
    """Compare every variant measured "ok" on both sides; list those on one side only and current failures."""
    tolerances = {**DEFAULT_TOLERANCES, **{name: tol if tol.metric else _bind(name, tol.value, tol.unit, str(tol))
                                           for name, tol in (tolerances or {}).items()}}
    base_run, cur_run = open_run(baseline_dir, side="baseline"), open_run(current_dir, side="current")
    metrics = [t.metric for t in tolerances.values()]
    base_all, cur_all = _frame(base_run, "baseline", metrics), _frame(cur_run, "current", metrics)
    base, cur = base_all[base_all["status"] == "ok"], cur_all[cur_all["status"] == "ok"]
    cols = list(dict.fromkeys([*IDENTITY, "variant", "latency_raw_ms", *metrics]))
    joined = base[cols].merge(cur[cols].drop(columns="variant"), on=IDENTITY, how="outer",
                              suffixes=("_base", "_cur"), indicator=True)
    both = joined[joined["_merge"] == "both"]
    rows = [_compare_row(r, tolerances) for _, r in both.iterrows()]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS).sort_values("variant", ignore_index=True)

    key = base_all.set_index(IDENTITY)["variant"].to_dict() | cur_all.set_index(IDENTITY)["variant"].to_dict()
    one_side = joined[joined["_merge"] != "both"]
    baseline_only = sorted(key[tuple(r[c] for c in IDENTITY)] for _, r in one_side.iterrows()
                           if r["_merge"] == "left_only")
    current_only = sorted(key[tuple(r[c] for c in IDENTITY)] for _, r in one_side.iterrows()
                          if r["_merge"] == "right_only")
    bad = cur_all[cur_all["status"] != "ok"]
    failed = sorted(f"{r['variant']}: {r['status']}" + (f": {_first_line(r['error'])}" if r["error"] else "")
                    for _, r in bad.iterrows())

    notes = []
    base_cpu, cur_cpu = base_run.cpu_model, cur_run.cpu_model
    if base_cpu and cur_cpu and base_cpu != cur_cpu:
        notes.append(f"baseline ran on {base_cpu!r}, current on {cur_cpu!r}: latency ratios compare machines too")
    regressed = bool(table[["latency_verdict", "accuracy_verdict"]].eq("regressed").any().any())
    return Comparison(table, baseline_only, current_only, failed, regressed, tolerances, notes,
                      Path(baseline_dir), Path(current_dir))


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "—" if value is None or pd.isna(value) else f"{value:{spec}}{suffix}"


def _fmt_p(p: float) -> str:
    return "—" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _verdict(v: str) -> str:
    return "**REGRESSED**" if v == "regressed" else v


def format_markdown(comparison: Comparison) -> str:
    """A Markdown summary for a CI job: verdict, per-variant table, one-sided and failed variants."""
    c, t = comparison, comparison.tolerances
    n_bad = int(c.table[["latency_verdict", "accuracy_verdict"]].eq("regressed").any(axis=1).sum())
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
    lines += [head, "",
              f"Tolerances: latency p50 +{t['latency_p50']} and one-sided Mann-Whitney U p < {ALPHA:g} "
              f"on the raw samples; accuracy −{t['accuracy']}.", ""]
    if len(c.table):
        disp = pd.DataFrame({
            "variant": c.table["variant"],
            "p50 baseline ms": [_fmt(v, ".3g") for v in c.table["baseline_p50_ms"]],
            "p50 current ms": [_fmt(v, ".3g") for v in c.table["current_p50_ms"]],
            "ratio": [_fmt(v, ".3f", "×") for v in c.table["latency_ratio"]],
            "p (MWU)": [_fmt_p(v) for v in c.table["latency_p_value"]],
            "latency": [_verdict(v) for v in c.table["latency_verdict"]],
            "acc baseline %": [_fmt(v * 100, ".2f") for v in c.table["baseline_accuracy"]],
            "acc current %": [_fmt(v * 100, ".2f") for v in c.table["current_accuracy"]],
            "Δ pts": [_fmt(v, "+.2f") for v in c.table["accuracy_delta_pts"]],
            "accuracy": [_verdict(v) for v in c.table["accuracy_verdict"]],
        })
        lines += [disp.to_markdown(index=False, disable_numparse=True), ""]  # keep our number formats
    notes = [f"{v}: {n}" for v, n in zip(c.table["variant"], c.table["note"], strict=True) if n]
    for title, items in [("Only in baseline (not compared)", c.baseline_only),
                         ("Only in current (not compared)", c.current_only),
                         ("Failed in current", c.failed), ("Notes", c.notes + notes)]:
        if items:
            lines += [f"### {title}", ""] + [f"- {i}" for i in items] + [""]
    return "\n".join(lines)
