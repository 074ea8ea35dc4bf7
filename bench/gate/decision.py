"""Which variant to ship under a profile: the report's decision block, and the speed ranking `bench tune`
shares with it.

Verdicts are `bench check`'s (bench/gate/check.py): every budget of the profile, the accuracy drops judged on
the upper end of their paired bootstrap interval (bench/gate/accuracy_drop.py). Among the variants that pass,
the fastest is chosen: by the interleaved speedup over the teacher in PyTorch FP32 where the rows have it
(both sides timed in alternating rounds, so the machine's drift cancels), its interval's low end deciding
equal medians, and the isolated p50 breaking what is left (and ranking rows measured without
`measure.interleave`, which come after those with a speedup).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.gate.accuracy_drop import Drop
from bench.gate.check import DROP_KEYS, CheckResult, Profile, check_run
from bench.store.results import open_run, variant_label

TEACHER_DROP = DROP_KEYS[0]


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass(frozen=True)
class Speed:
    """A row's speed: its interleaved speedup and interval (None without measure.interleave) and the isolated
    latency that ranks rows without one and breaks what ties are left (p50; `bench tune --objective
    latency_p95`: p95)."""

    speedup: float | None
    low: float | None
    high: float | None
    latency_ms: float

    @classmethod
    def of(cls, row: Mapping) -> Speed:
        return cls(_num(row.get("speedup_vs_reference")), _num(row.get("speedup_ci_low")),
                   _num(row.get("speedup_ci_high")), float(row["latency_p50_ms"]))

    @property
    def key(self) -> tuple:
        """Sort key, fastest first."""
        if self.speedup is None:
            return (1, 0.0, 0.0, self.latency_ms)
        return (0, -self.speedup, -(self.low if self.low is not None else self.speedup), self.latency_ms)

    @property
    def text(self) -> str:
        if self.speedup is None:
            return f"p50 {self.latency_ms:.3g} ms (no interleaved speedup)"
        return f"{self.speedup:.3g}× [{self.low:.3g}, {self.high:.3g}]"

    def overlaps(self, other: Speed) -> bool:
        """Both intervals known and overlapping: this machine does not tell the two apart."""
        if None in (self.low, self.high, other.low, other.high):
            return False
        return self.low <= other.high and other.low <= self.high


@dataclass
class Entry:
    """One judged row."""

    row: dict
    speed: Speed
    drop: Drop | None  # vs the teacher, when the profile judges it
    failures: list[str]
    failed_keys: list[str] = field(default_factory=list)  # the budgets it fails
    drops: dict[str, Drop] = field(default_factory=dict)  # every drop budget's estimate

    @property
    def variant(self) -> str:
        return self.row["variant_id"]

    @property
    def label(self) -> str:
        return variant_label(self.row)

    @property
    def passes(self) -> bool:
        return not self.failures


@dataclass
class Decision:
    profile: Profile
    run_dir: Path
    entries: list[Entry]  # every measured row the profile judges, fastest first
    not_measured: list[str] = field(default_factory=list)  # judged rows that failed to measure: why

    @property
    def passing(self) -> list[Entry]:
        return [e for e in self.entries if e.passes]

    @property
    def chosen(self) -> Entry | None:
        return self.passing[0] if self.passing else None

    @property
    def runner_up(self) -> Entry | None:
        return self.passing[1] if len(self.passing) > 1 else None

    def faster_failing(self) -> list[Entry]:
        """Rows ranked above the chosen one (all rows, when nothing passes) that fail a budget."""
        chosen = self.chosen
        return [e for e in self.entries if not e.passes and (chosen is None or e.speed.key < chosen.speed.key)]

    def undecided(self) -> list[Entry]:
        """Rows that fail only drop budgets, each with its point estimate inside the bar: the eval split is
        too small to show the drop is within it, not large enough to show it is not."""
        def only_interval(e: Entry) -> bool:
            return bool(e.failed_keys) and all(k in e.drops and e.drops[k].point <= getattr(self.profile, k) + 1e-9
                                               for k in e.failed_keys)
        return [e for e in self.entries if only_interval(e)]

    def closest(self, n: int = 3) -> list[Entry]:
        """When nothing passes: the rows with the fewest failed budgets, fastest first."""
        return sorted(self.entries, key=lambda e: (len(e.failures), e.speed.key))[:n]


def decide(run_dir: Path, profile: Profile, target: str | None = None) -> Decision:
    """Judge `run_dir`'s rows (those of one cluster `target`, if given) against `profile` (bench check's code)
    and rank the passing ones by speed."""
    result: CheckResult = check_run(run_dir, profile, target=target)
    rows = {(r["variant_id"], _seed(r["seed"])): r
            for r in open_run(run_dir, target=target).frame().to_dict("records")}
    entries, not_measured = [], []
    for i, rec in enumerate(result.table.to_dict("records")):
        row = rows[(rec["variant"], _seed(rec["seed"]))]
        if row.get("status") != "ok":
            not_measured.append(f"{rec['variant']}: {'; '.join(result.reason_lists[i])}")
            continue
        entries.append(Entry(row, Speed.of(row), result.drops[i].get(TEACHER_DROP), list(result.reason_lists[i]),
                             list(result.failed_keys[i]), dict(result.drops[i])))
    entries.sort(key=lambda e: e.speed.key)
    return Decision(profile, Path(run_dir), entries, not_measured)


def _seed(seed) -> int | None:
    return None if seed is None or seed != seed else int(seed)


def _facts(e: Entry, speed: bool = True) -> str:
    row = e.row
    parts = [] if not speed else [f"speedup over the teacher in PyTorch FP32 {e.speed.text}"
                                  if e.speed.speedup is not None else e.speed.text]
    if e.drop is not None:
        parts.append(f"accuracy drop vs the teacher {e.drop.text} pts")
    parts.append(f"{row['size_mb']:.3g} MB on disk")
    if _num(row.get("peak_rss_mb")) is not None:
        parts.append(f"peak RSS {row['peak_rss_mb']:.0f} MB")
    parts.append(f"p95 {row['latency_p95_ms']:.3g} ms at batch 1")
    return ", ".join(parts)


def why_runner_up_lost(chosen: Entry, runner_up: Entry) -> str:
    a, b = chosen.speed, runner_up.speed
    if a.speedup is not None and b.speedup is not None:
        if a.overlaps(b):
            return (f"slower median speedup ({b.text} against {a.text}); the intervals overlap, so on this "
                    "machine the two are not told apart: either ships")
        return f"slower: {b.text} against {a.text}, intervals apart"
    return f"slower: p50 {b.latency_ms:.3g} ms against {a.latency_ms:.3g} ms"


def summary_lines(d: Decision) -> list[str]:
    """The decision in sentences: what to ship and what it costs, the runner-up and why it lost; or, when
    nothing passes, the closest rows and what each fails."""
    p = d.profile
    scope = f"threads={p.threads if p.threads is not None else 'any'}, device={p.device or 'any'}"
    if not d.entries:
        return [f"No measured row for profile `{p.name}` ({scope})."] + [f"Not measured: {n}" for n in d.not_measured]
    chosen = d.chosen
    if chosen is None:
        lines = [f"**Nothing passes profile `{p.name}`** ({len(d.entries)} rows judged, {scope}). The closest:"]
        lines += [f"- `{e.variant}` ({_facts(e)}) fails: {'; '.join(e.failures)}" for e in d.closest()]
        return lines + _undecided_lines(d)
    lines = [f"**Ship `{chosen.variant}`** ({chosen.label}): {_facts(chosen)}. "
             f"{len(d.passing)} of {len(d.entries)} rows judged ({scope}) pass every budget of `{p.name}`."]
    if d.runner_up is not None:
        lines.append(f"- Runner-up `{d.runner_up.variant}`: {why_runner_up_lost(chosen, d.runner_up)}; "
                     f"{_facts(d.runner_up, speed=False)}.")
    for e in d.faster_failing()[:3]:
        lines.append(f"- Faster but fails: `{e.variant}` ({e.speed.text}): {'; '.join(e.failures)}.")
    return lines


def _undecided_lines(d: Decision) -> list[str]:
    """Why a row whose point drops are within the bar still fails: the interval, and what would decide it."""
    undecided = d.undecided()
    if not undecided:
        return []
    e = undecided[0]
    widths = [(k, est.high - est.point) for k, est in e.drops.items() if k in e.failed_keys and est.high is not None]
    n = e.row.get("eval_samples")
    width = max(w for _, w in widths) if widths else None
    return [f"- Undecided, not failed: {', '.join(f'`{x.variant}`' for x in undecided)} "
            f"{'has' if len(undecided) == 1 else 'have'} every accuracy drop's point estimate within its bar, but "
            f"the 95 % interval reaches past it" + (f" (on {n:g} eval examples it reaches {width:.2g} points above "
                                                     "the point)" if width is not None and n else "")
            + ": the eval split cannot show the drop is within the bar. More eval examples would decide it; a "
            "wider bar is a profile of your own (`bench report --profile FILE`)."]


RULE_NOTE = ("How it is decided: `bench check`'s budgets for the profile; an accuracy drop passes when the upper end "
             "of its paired bootstrap 95 % interval (same eval examples, both rows' predictions) is within the "
             "budget, and is shown as point [interval]; dynamic INT8 is scored at batch 1, as deployed. Among the "
             "rows that pass, the fastest ships: by the interleaved speedup over the teacher in PyTorch FP32 "
             "(alternating rounds in one run), its interval's low end for equal medians, then the isolated p50. "
             "`bench tune` ranks the same way.")
