"""What `bench tune` writes into its run directory: tune.json (every candidate and the verdicts), tune.md
(the same for people: the chosen variant, why it beat its neighbours, the Pareto front, or the closest
candidates when nothing passed) and chosen-suite.yaml (a suite that measures exactly the chosen variant)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import yaml

from bench.store.artifacts import write_json_atomic
from bench.store.results import pareto_mask
from bench.tune.records import OBJECTIVES, SPEED_OBJECTIVES, Candidate, TuneResult


def pareto_front(result: TuneResult) -> list[Candidate]:
    """Measured candidates no other candidate beats on both the objective and the metric."""
    s, measured = result.settings, [c for c in result.measured if c.score is not None]
    cost = pd.Series([-c.objective if s.maximise else c.objective for c in measured], dtype=float)
    mask = pareto_mask(cost, pd.Series([c.score for c in measured], dtype=float))
    front = [c for c, on in zip(measured, mask, strict=True) if on]
    return sorted(front, key=lambda c: -c.objective if s.maximise else c.objective)


def _value(result: TuneResult, c: Candidate) -> str:
    return f"{c.objective:.4g}{OBJECTIVES[result.settings.objective][2]}"


def why_chosen(result: TuneResult) -> list[str]:
    """Why the chosen variant beat its neighbours in the ranking (TuneResult.ranked: the interleaved speedup
    for latency objectives): each one ranked above it failed something, and the next passing one lost by a
    measured ratio, or by intervals that overlap (then the two are not told apart)."""
    chosen, s = result.chosen, result.settings
    if chosen is None:
        return []
    ranked = result.ranked
    lines = [f"{c.variant.id} ({_rank_text(result, c)}) ranks higher but fails: " + "; ".join(c.failures)
             for c in ranked[:ranked.index(chosen)]]
    runner_up = next((c for c in ranked if c.passes and c is not chosen), None)
    if runner_up is not None:
        ratio = runner_up.objective / chosen.objective if chosen.objective else float("nan")
        if s.maximise:
            ratio = 1 / ratio if ratio else float("nan")
        line = (f"{runner_up.variant.id} passes too, at {_rank_text(result, runner_up)}: {ratio:.2f}x the chosen "
                f"variant's {s.objective} (drop {runner_up.drop_text} pts vs {chosen.drop_text})")
        a, b = chosen.speedup, runner_up.speedup
        if a and b and a[1] <= b[2] and b[1] <= a[2]:
            line += (f"; their interleaved speedups over the teacher, {a[0]:.3g}x [{a[1]:.3g}, {a[2]:.3g}] and "
                     f"{b[0]:.3g}x [{b[1]:.3g}, {b[2]:.3g}], overlap: on this machine the two are not told apart")
        lines.append(line)
    return lines


def _rank_text(result: TuneResult, c: Candidate) -> str:
    """What the ranking read: the interleaved speedup (latency objectives, where measured) and the objective."""
    if result.settings.objective in SPEED_OBJECTIVES and c.speedup:
        return f"{c.speedup[0]:.3g}x [{c.speedup[1]:.3g}, {c.speedup[2]:.3g}] interleaved, {_value(result, c)}"
    return _value(result, c)


def closest(result: TuneResult, n: int = 3) -> list[Candidate]:
    """When nothing passes: the measured candidates with the fewest failed budgets, best objective first."""
    s = result.settings
    return sorted(result.measured, key=lambda c: (len(c.failures), -c.objective if s.maximise else c.objective))[:n]


def chosen_suite(result: TuneResult, suite_path: Path) -> dict:
    """The suite file, reduced to exactly the chosen variant (its calibrator too), trained with the seed tuned."""
    from bench.spec.suite import load_suite, suite_to_dict

    suite, v = load_suite(suite_path), result.chosen.variant
    data = suite_to_dict(suite)
    data["name"] = f"{suite.name}-tuned"[:64]
    data["variants"] = [{"model": v.model, "format": v.format, "precision": v.precision, "device": v.device,
                         "graph": v.graph, "threads": [v.threads]}]
    if v.calibration:
        data["quantize"]["calibrators"] = [v.calibration]
    if v.quant:  # the recipe written out, whether the suite, a built-in or the sensitivity pass made it
        data["variants"][0]["quant"] = [v.quant]
        if v.quant in result.recipes:  # an ORT recipe; OpenVINO's (accuracy-control) are names, set in quantize
            data["quantize"]["recipes"] = {v.quant: result.recipes[v.quant].model_dump(exclude_none=True)}
    if suite.seeds:
        data["seeds"] = [suite.training_seeds[0]]
    data.pop("tune", None)
    return data


def to_markdown(result: TuneResult) -> str:
    s, chosen = result.settings, result.chosen
    lines = [f"# bench tune: {result.suite} ({result.run_dir.name})", "",
             f"Objective **{s.objective}** ({'higher' if s.maximise else 'lower'} is better); accuracy bar: the "
             f"drop vs the teacher in PyTorch FP32 within **{s.max_drop_pts:g} points** at the upper end of its "
             f"paired {100 * s.confidence:g}% bootstrap interval ({s.bootstrap_samples} resamples); profile "
             f"`{s.profile.name}`'s other budgets; {result.wall_s:.0f} s.", "",
             ("Ranking: by the interleaved speedup over the teacher in PyTorch FP32 where candidates have it "
              "(measure.interleave; its interval's low end decides equal medians), then the isolated "
              f"{s.objective.split('_')[1]}: the report's decision block ranks the same way."
              if s.objective in SPEED_OBJECTIVES else f"Ranking: by {s.objective}."), ""]
    if chosen:
        lines += [f"**Chosen: `{chosen.variant.id}`**: {_rank_text(result, chosen)}, drop {chosen.drop_text} pts. "
                  "Reproduce it alone with `chosen-suite.yaml`.",
                  "", *[f"- {line}" for line in why_chosen(result)], ""]
    else:
        lines += ["**Nothing passed.** The closest candidates and what each failed:", ""]
        lines += [f"- `{c.variant.id}` ({_value(result, c)}): " + "; ".join(c.failures) for c in closest(result)]
        lines += [f"- `{c.variant.id}`: {c.reason}" for c in result.candidates
                  if c.status == "rejected before measuring"]
        lines.append("")
    table = pd.DataFrame([{"variant": c.variant.id, "status": c.status, s.objective: c.objective,
                           "metric ×100": None if c.score is None else 100 * c.score, "drop pts": c.drop_pts,
                           "interval": f"[{c.drop_low:.2f}, {c.drop_high:.2f}]" if c.drop_low is not None else "",
                           "verdict": "PASS" if c.passes else "; ".join(c.failures) or c.reason}
                          for c in result.candidates])
    lines += ["## Candidates (cheap first, in the order tried)", "",
              table.to_markdown(index=False, floatfmt=".4g", missingval="—"), "",
              "## Pareto front (objective vs metric)", ""]
    lines += [f"- `{c.variant.id}`: {_value(result, c)}, {100 * c.score:.2f}" for c in pareto_front(result)]
    lines += sensitivity_lines(result)
    if result.skipped:
        lines += ["", "## Skipped (this machine cannot run them)", ""]
        lines += [f"- `{sk.variant.id}`: {sk.reason}" for sk in result.skipped]
    return "\n".join(lines) + "\n"


def sensitivity_lines(result: TuneResult, top: int = 5) -> list[str]:
    """Each ranked INT8 candidate: its costliest nodes, and the candidates that kept them in float."""
    lines = []
    for base, ranking in result.sensitivity.items():
        if isinstance(ranking, str):
            lines += ["", f"## Sensitivity pass: `{base}`", "", ranking[0].upper() + ranking[1:] + "."]
            continue
        lines += ["", f"## Sensitivity pass: `{base}`", "",
                  f"{len(ranking)} quantized nodes, each quantized alone and compared with the FP32 graph on held-out "
                  "train examples; the costliest:", "",
                  "| node | op | logit MSE | label flips |", "|---|---|---|---|"]
        lines += [f"| `{n.node}` | {n.op_type} | {n.logit_mse:.3g} | {n.flips if n.flips is not None else '—'} |"
                  for n in ranking[:top]]
        made = [c for c in result.candidates if c.origin.startswith(f"sensitivity: {base} ")]
        lines += ["", *[f"- `{c.variant.id}`: {c.origin.split(' with ')[-1]}: "
                        + (f"{_value(result, c)}, drop {c.drop_text}, "
                           + ("PASS" if c.passes else "; ".join(c.failures)) if c.status == "measured"
                           else f"{c.status}: {c.reason}") for c in made]]
    return lines


def write_outputs(result: TuneResult, suite_path: Path) -> None:
    s, chosen = result.settings, result.chosen
    write_json_atomic(result.run_dir / "tune.json", {
        "suite": result.suite, "run_dir": str(result.run_dir), "objective": s.objective,
        "max_drop_pts": s.max_drop_pts, "confidence": s.confidence, "bootstrap_samples": s.bootstrap_samples,
        "budget_s": s.budget_s, "profile": s.profile.name, "wall_s": result.wall_s,
        "chosen": chosen.variant.id if chosen else None, "why": why_chosen(result),
        "pareto_front": [c.variant.id for c in pareto_front(result)],
        "closest": [c.variant.id for c in closest(result)] if not chosen else [],
        "candidates": [c.as_dict() for c in result.candidates],
        "skipped": [{"variant": sk.variant.id, "reason": sk.reason} for sk in result.skipped],
        "sensitivity": {base: ranking if isinstance(ranking, str) else [asdict(n) for n in ranking]
                        for base, ranking in result.sensitivity.items()},
        "recipes": {c.variant.quant: result.recipes[c.variant.quant].model_dump(exclude_none=True)
                    for c in result.candidates if c.variant.quant in result.recipes}})
    (result.run_dir / "tune.md").write_text(to_markdown(result), encoding="utf-8")
    suite_file = result.run_dir / "chosen-suite.yaml"
    if chosen:
        suite_file.write_text("# Written by bench tune: exactly the chosen variant of "
                              f"{result.suite}. Run: bench run {suite_file}\n"
                              + yaml.safe_dump(chosen_suite(result, suite_path), sort_keys=False))
    else:
        suite_file.unlink(missing_ok=True)
