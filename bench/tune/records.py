"""`bench tune`'s records: the objectives, a candidate and how it fared, the search's settings and its
result. The search (search.py), the sensitivity pass (sensitivity.py) and the report (report.py) share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.gate.accuracy_drop import Drop
from bench.gate.decision import Speed
from bench.schema.variant import Variant
from bench.spec.profile import Profile

# objective -> (row field or derived column, "min" or "max", unit)
OBJECTIVES = {"latency_p50": ("latency_p50_ms", "min", " ms"), "latency_p95": ("latency_p95_ms", "min", " ms"),
              "size": ("size_mb", "min", " MB"), "samples_per_s": ("offline_samples_per_s", "max", " samples/s")}
SPEED_OBJECTIVES = ("latency_p50", "latency_p95")  # ranked by the interleaved speedup where measured
DROP_KEY = "max_accuracy_drop_vs_teacher_pts"  # the bar: --max-drop / tune.max_drop_pts replace the profile's
OWN_DROP_KEY = "max_accuracy_drop_vs_fp32_pts"  # an accuracy failure too: the sensitivity pass may mend it

@dataclass
class Candidate:
    variant: Variant
    status: str = "not run"  # measured | failed | rejected before measuring | not run
    reason: str = ""
    objective: float | None = None
    score: float | None = None
    drop_pts: float | None = None
    drop_low: float | None = None
    drop_high: float | None = None
    failures: list[str] = field(default_factory=list)  # each budget it failed, with the values
    speedup: tuple[float, float, float] | None = None  # interleaved speedup over the teacher and its interval
    accuracy_failed: bool = False  # it fails the accuracy bar, or the profile's drop vs its own FP32
    accuracy_only: bool = False  # ... and nothing else (the sensitivity pass's bases)
    origin: str = ""  # how the tune made it, when not from the space (the sensitivity pass)

    @property
    def drop_text(self) -> str:
        return "—" if self.drop_pts is None else Drop(self.drop_pts, self.drop_low, self.drop_high).text

    @property
    def passes(self) -> bool:
        return self.status == "measured" and not self.failures

    def as_dict(self) -> dict:
        return {"variant": self.variant.id, "status": self.status, "reason": self.reason,
                "objective": self.objective, "score": self.score, "drop_pts": self.drop_pts,
                "drop_interval": [self.drop_low, self.drop_high] if self.drop_low is not None else None,
                "passes": self.passes, "failures": self.failures,
                "speedup_vs_reference": list(self.speedup) if self.speedup else None, "origin": self.origin}


@dataclass
class Settings:
    objective: str
    max_drop_pts: float
    confidence: float
    bootstrap_samples: int
    budget_s: float | None
    profile: Profile

    @property
    def field(self) -> str:
        return OBJECTIVES[self.objective][0]

    @property
    def maximise(self) -> bool:
        return OBJECTIVES[self.objective][1] == "max"

    def rank_key(self, c: Candidate) -> tuple:
        """Best first. Latency objectives rank by the interleaved speedup where candidates have it, as the
        report's decision does (bench/gate/decision.py: its interval decides equal medians, the isolated latency
        the rest); size and throughput by the objective. The smaller drop breaks a tie."""
        if self.objective in SPEED_OBJECTIVES:
            low, high = (c.speedup[1], c.speedup[2]) if c.speedup else (None, None)
            speed = Speed(c.speedup[0] if c.speedup else None, low, high, c.objective)
            return (*speed.key, c.drop_pts or 0.0)
        return (-c.objective if self.maximise else c.objective, c.drop_pts or 0.0)


@dataclass
class TuneResult:
    suite: str
    run_dir: Path
    settings: Settings
    candidates: list[Candidate]
    skipped: list
    wall_s: float
    recipes: dict = field(default_factory=dict)  # every quantize recipe of the searched suite, by name
    # base variant id -> its node ranking (NodeCost list), or why the pass did not rank it (a string)
    sensitivity: dict = field(default_factory=dict)

    @property
    def measured(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == "measured" and c.objective is not None]

    @property
    def ranked(self) -> list[Candidate]:
        return sorted(self.measured, key=self.settings.rank_key)

    @property
    def chosen(self) -> Candidate | None:
        return next((c for c in self.ranked if c.passes), None)

    @property
    def exit_code(self) -> int:
        return 0 if self.chosen else 1
