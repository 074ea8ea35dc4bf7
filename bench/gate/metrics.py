"""The metrics `bench compare` can gate on, and their tolerances (`--tolerance METRIC=VALUE`).

Every metric is a numeric row field with a known direction. Its name is the row field, with a
latency field's `_ms` dropped (`latency_p95`); either spelling is accepted (`latency_p95_ms`).

Units, one per metric (a tolerance in the other unit is an error):

- `%`: relative change vs the baseline. Latency, load time, size, memory, throughput.
- `pt`: absolute percentage points. Shares: fields in 0..1 (accuracy, f1: 1 pt = 0.01) and fields
  already in percent (int8_matmul_coverage_pct: 1 pt = 1).
- a bare `0` (`size_mb=0`) is zero in the metric's own unit: no change for the worse at all.

Sampled metrics regress only when the change exceeds the tolerance AND a one-sided Mann-Whitney U test
on their samples has p < ALPHA: the latency percentiles and mean (from `latency_raw_ms`) and `speedup`
(the interleaved speedup over the reference, from `speedup_rounds`, measure.interleave). Every other
metric is judged on its tolerance alone. By default a variant's speed is judged once: on `speedup` at
10 % when both sides measured it in interleaved rounds (a drifting machine moves both sides of every
round's ratio alike), else on `latency_p50` at 10 %; `accuracy` at 0.5 pt always (DEFAULT_TOLERANCES).
Any other metric, and either speed metric wherever it was measured, when a tolerance is given for it.

`accuracy` is the task's primary score (the row's `score`, bench/tasks/table.py): accuracy for SST-2 and
rows written before tasks were declared, Matthews correlation for CoLA, F1 for MRPC, Pearson for STS-B,
in points ×100. `score=0.5pt` is the same tolerance, and so is the primary metric's own name
(`matthews_correlation=1pt` on a CoLA run: `primary_tolerances`), which wins over `accuracy=`.
A metric's own name on a run whose primary it is not judges that metric on the primary eval split
(`f1` on SST-2; `matthews_correlation`, `pearson`, `spearmanr` from the row's `metrics`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from bench.common.errors import BenchError

ALPHA = 0.01  # significance level of the one-sided Mann-Whitney U test
_EPS = 1e-9  # float slack, so that a change exactly at the tolerance is not a regression


@dataclass(frozen=True)
class Metric:
    """A row field the gate can judge: "max" = lower is better (it may rise by at most the
    tolerance), "min" = higher is better. `scale`: points per unit of the field, for "pt"."""

    name: str
    field: str
    direction: Literal["max", "min"]
    unit: Literal["%", "pt"]
    label: str  # how the Markdown names it
    samples: str | None = None  # the row field of the samples it summarises: the Mann-Whitney test applies
    scale: float = 100.0

    @property
    def sampled(self) -> bool:
        return self.samples is not None


def _latency(q: str) -> Metric:
    return Metric(f"latency_{q}", f"latency_{q}_ms", "max", "%", f"latency {q} ms", samples="latency_raw_ms")


METRICS: dict[str, Metric] = {m.name: m for m in (
    *(_latency(q) for q in ("p50", "p90", "p95", "p99", "mean")),
    # measure.interleave: the median of per-round speedups over the reference, tested on those rounds.
    Metric("speedup", "speedup_vs_reference", "min", "%", "speedup ×", samples="speedup_rounds"),
    Metric("first_call", "first_call_ms", "max", "%", "first call ms"),
    Metric("load_time_s", "load_time_s", "max", "%", "load s"),
    # measure.cold_start, measure.end_to_end and the energy counters: judged on their tolerance alone (a few
    # starts are too few samples for the rank test).
    Metric("cold_start", "cold_start_ms", "max", "%", "cold start ms"),
    Metric("e2e_p50", "e2e_p50_ms", "max", "%", "end-to-end p50 ms"),
    Metric("e2e_p95", "e2e_p95_ms", "max", "%", "end-to-end p95 ms"),
    Metric("energy_mj_per_inference", "energy_mj_per_inference", "max", "%", "energy mJ/inference"),
    Metric("gflops_per_s", "gflops_per_s", "min", "%", "GFLOP/s"),
    Metric("size_mb", "size_mb", "max", "%", "size MB"),
    Metric("peak_rss_mb", "peak_rss_mb", "max", "%", "peak RSS MB"),
    Metric("peak_rss_all_phases_mb", "peak_rss_all_phases_mb", "max", "%", "peak RSS all phases MB"),
    Metric("accuracy", "accuracy", "min", "pt", "accuracy %"),
    Metric("f1", "f1", "min", "pt", "F1 %"),
    Metric("precision_score", "precision_score", "min", "pt", "precision %"),
    Metric("recall", "recall", "min", "pt", "recall %"),
    Metric("parity_label_agreement", "parity_label_agreement", "min", "pt", "parity label agreement %"),
    Metric("int8_matmul_coverage_pct", "int8_matmul_coverage_pct", "min", "pt", "int8 MatMul coverage %",
           scale=1.0),
    # Task metrics that are no row field of their own: read from the row's `metrics` (primary eval split).
    Metric("matthews_correlation", "matthews_correlation", "min", "pt", "matthews_correlation ×100"),
    Metric("pearson", "pearson", "min", "pt", "pearson ×100"),
    Metric("spearmanr", "spearmanr", "min", "pt", "spearmanr ×100"),
)}
PRIMARY = "accuracy"  # the tolerance of the task's primary score, whatever the task's metric
SCORE_FIELD = "score"  # the row field it judges (bench.store.results.with_score: accuracy on older rows)
_ALIASES = {m.field: m.name for m in METRICS.values()} | {SCORE_FIELD: PRIMARY}


@dataclass(frozen=True)
class Tolerance:
    """How much worse the current run may be than the baseline on one metric: `value` in `unit` ("%":
    relative; "pt": percentage points of a share). `metric` is the row field and `direction` which way
    it may move: "max", at most `value` above the baseline (latency), "min", at most `value` below it
    (accuracy); `scale` turns the field into points. Two tolerances are equal when value and unit are."""

    value: float
    unit: str
    metric: str = field(default="", compare=False)
    direction: Literal["max", "min"] = field(default="max", compare=False)
    scale: float = field(default=100.0, compare=False)
    given: bool = field(default=True, compare=False)  # False: a default nobody asked for

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"

    def change(self, base: float, cur: float) -> float:
        """current vs baseline in this tolerance's unit (NaN when either is missing)."""
        if self.unit == "%":
            return (cur / base - 1) * 100 if base > 0 else math.nan
        return (cur - base) * self.scale

    def judge(self, base: float, cur: float) -> str:
        """ "ok", "regressed" (worse than the baseline by more than the tolerance) or "n/a"."""
        change = self.change(base, cur)
        if math.isnan(change):
            return "n/a"
        worse = change if self.direction == "max" else -change
        return "regressed" if worse > self.value + _EPS else "ok"


def format_change(change: float, unit: str) -> str:
    """`+12.34%`, `-0.50 pts`; a change under 0.01 keeps two significant digits, so that a size growth a
    `size_mb=0` tolerance fails never reads +0.00%."""
    text = f"{change:+.2g}" if 0 < abs(change) < 0.01 else f"{change:+.2f}"
    return text + ("%" if unit == "%" else " pts")


def tolerance_for(metric: Metric, value: float) -> Tolerance:
    return Tolerance(value, metric.unit, metric.field, metric.direction, metric.scale)


# Metric name -> its default tolerance, which also fixes the unit, the row field and the direction.
# Speed is judged once per variant: on the interleaved speedup when both sides measured it, else on the
# p50 (LATENCY_DEFAULTS). A tolerance given for either judges it wherever it was measured.
DEFAULT_TOLERANCES = {name: replace(tolerance_for(METRICS[name], value), given=False)
                      for name, value in (("latency_p50", 10.0), ("speedup", 10.0), ("accuracy", 0.5))}
LATENCY_DEFAULTS = ("speedup", "latency_p50")  # by default the first one both sides have is judged
UNITS = {name: m.unit for name, m in METRICS.items()}

_TOL_RE = re.compile(r"^\s*([a-z0-9_]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%|pts?)?\s*$")


def metric_named(name: str, item: str = "") -> Metric:
    """The metric for a name or its row field (`latency_p95` or `latency_p95_ms`)."""
    found = METRICS.get(name) or METRICS.get(_ALIASES.get(name, ""))
    if found is None:
        raise BenchError(f"bad tolerance {item or name!r}: unknown metric {name!r} (known: {', '.join(METRICS)})")
    return found


def bind(name: str, value: float, unit: str | None, item: str) -> tuple[str, Tolerance]:
    """(canonical name, tolerance) for metric `name` at `value`; unit None (a bare 0) takes the metric's."""
    metric = metric_named(name, item)
    if unit is not None and unit != metric.unit:
        raise BenchError(f"bad tolerance {item!r}: {metric.name} takes a tolerance in {metric.unit}, not {unit}")
    return metric.name, tolerance_for(metric, value)


def parse_tolerances(items: list[str] | None) -> dict[str, Tolerance]:
    """`["latency_p50=10%", "accuracy=0.5pt", "size_mb=0"]` -> tolerances, over the defaults."""
    out = dict(DEFAULT_TOLERANCES)
    for item in items or []:
        m = _TOL_RE.match(item)
        if not m or (m.group(3) is None and float(m.group(2)) != 0):
            raise BenchError(f"bad tolerance {item!r}: expected METRIC=NUMBER% or METRIC=NUMBERpt "
                             f"(or METRIC=0), e.g. latency_p50=10% or accuracy=0.5pt")
        unit = m.group(3) and ("pt" if m.group(3).startswith("pt") else "%")
        name, tol = bind(m.group(1), float(m.group(2)), unit, item)
        out[name] = tol
    return out


def primary_tolerances(tolerances: dict[str, Tolerance], primary: str) -> dict[str, Tolerance]:
    """The tolerances of a comparison whose rows are scored on `primary`: the `accuracy` entry judges the
    row's `score`, at the tolerance given under the primary metric's own name if there is one (that entry
    then goes: `matthews_correlation=1pt` on a CoLA run is the score tolerance, judged once)."""
    own = tolerances.get(primary) if primary != PRIMARY else None
    out = {}
    for name, tol in tolerances.items():
        if name == PRIMARY:
            out[name] = replace(tol if own is None else own, metric=SCORE_FIELD, direction="min")
        elif own is None or name != primary:
            out[name] = tol
    return out


def resolve(tolerances: dict[str, Tolerance] | None) -> dict[str, Tolerance]:
    """The defaults overlaid with `tolerances`, keyed by canonical name; a bare `Tolerance(0.5, "pt")`
    gets its metric's field, direction and scale (and an error if its unit is not the metric's)."""
    out = dict(DEFAULT_TOLERANCES)
    for name, tol in (tolerances or {}).items():
        key, bound = bind(name, tol.value, tol.unit, str(tol))
        out[key] = bound if not tol.metric else replace(bound, metric=tol.metric, direction=tol.direction,
                                                        given=tol.given)
    return out
