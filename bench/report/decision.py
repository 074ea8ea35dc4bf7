"""The top of every report: the decision for a profile (bench/gate/decision.py, `bench check`'s verdicts and
`bench tune`'s speed ranking) and the short table of the variants on the speed/accuracy Pareto front.

The profile is the suite's `profile:` key (recorded in run.json) unless `bench report --profile` names
another; without one the block says how to get a decision and shows the Pareto table.
"""

from __future__ import annotations

import pandas as pd

from bench.common.errors import BenchError
from bench.gate.check import load_profile
from bench.store.results import Run, pareto_mask, reference_mask


def suite_profile(run: Run) -> str | None:
    return (run.info.get("suite_resolved") or {}).get("profile")


def speed_column(summary: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(speedup over the teacher in PyTorch FP32, its source) per summary line: the interleaved median where
    the row has one, 1 for the reference itself, else the ratio of isolated p50s (labelled as such)."""
    interleaved = summary["speedup_vs_reference"]
    is_ref = reference_mask(summary, "teacher")
    speed = interleaved.where(interleaved.notna(), summary["speedup"].where(~is_ref, 1.0))
    source = pd.Series(["interleaved" if pd.notna(v) else "reference" if r else "p50 ratio"
                        for v, r in zip(interleaved, is_ref, strict=True)], index=summary.index)
    return speed, source


def pareto_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The variants no other beats on both speed and the task's metric, fastest first, in 7 columns."""
    speed, source = speed_column(summary)
    ok = speed.notna() & summary["score_pct"].notna()
    front = summary[ok].assign(_speed=speed[ok], _source=source[ok])
    front = front[pareto_mask(-front["_speed"], front["score_pct"])].sort_values("_speed", ascending=False)

    def speed_text(r) -> str:
        if r["_source"] == "interleaved":
            return f"{r['_speed']:.3g}× [{r['speedup_ci_low']:.3g}, {r['speedup_ci_high']:.3g}]"
        return "1× (reference)" if r["_source"] == "reference" else f"{r['_speed']:.3g}× (p50 ratio)"

    return pd.DataFrame({
        "variant": front["label"], "speedup vs teacher": [speed_text(r) for _, r in front.iterrows()],
        "p50 ms": front["latency_p50_ms"], "score": front["score_pct"], "Δ vs teacher (pts)": front["delta_pts"],
        "size MB": front["size_mb"], "peak RSS MB": front["peak_rss_mb"]})


def decision_sections(runs: list[Run], summary: pd.DataFrame, profile: str | None, section, score_header: str):
    """The decision block of each run (one, usually) and the Pareto table; `section` is report.Section."""
    from bench.gate.decision import RULE_NOTE, decide, summary_lines

    out = []
    for run in runs:
        name = profile or suite_profile(run)
        where = f" ({run.run_id})" if len(runs) > 1 else ""
        if name is None:
            out.append(section(f"Decision{where}", css="decision", lead=[
                "No profile to decide against: set `profile:` in the suite (e.g. `edge-cpu-1t`) or run "
                "`bench report RUN_DIR --profile P` to get the variant to ship."]))
            continue
        try:
            loaded = load_profile(name)
        except BenchError as exc:
            if profile is not None:
                raise
            out.append(section(f"Decision{where}", css="decision",
                               lead=[f"The suite's profile could not be loaded here: {exc}"]))
            continue
        lines = summary_lines(decide(run.path, loaded, run.target))
        out.append(section(f"Decision for profile {loaded.name}{where}", css="decision", lead=lines[:1],
                           items=[line[2:] for line in lines[1:] if line.startswith("- ")], notes=[RULE_NOTE]))
    table = pareto_table(summary).rename(columns={"score": score_header})
    out.append(section("Pareto front: speed vs accuracy", table, floatfmt=".4g", missing="—", notes=[
        "The variants no other beats on both speed and the task's metric, fastest first. Speedup over the teacher "
        "in PyTorch FP32: the interleaved median and its interval where the run measured it (measure.interleave), "
        "else the ratio of isolated p50s (labelled). Every variant: the full table below."]))
    return out
