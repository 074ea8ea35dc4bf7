"""The report of a run measured on several cluster targets (`bench run --cluster`): each target gets its own
full report in <report>/<target>/, judged on its own rows only, and the top page puts each target's decision
side by side: a shipping decision is about the machine it ships to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.common.errors import BenchError
from bench.common.paths import confined
from bench.report.render import Section, to_html, to_markdown
from bench.store.results import Run


def target_line(df: pd.DataFrame, target: str) -> str:
    """Where a target's rows were measured: the hosts and CPUs (GPUs) its rows record."""
    def listed(col: str) -> str:
        values = df[col].dropna() if col in df else pd.Series(dtype=object)
        flat = sorted({str(x) for v in values for x in (v if isinstance(v, list) else [v])})
        return ", ".join(flat) or "not recorded"

    gpus = listed("gpus")
    return (f"Target `{target}`: measured on host(s) {listed('host')} ({listed('cpu_model')}"
            f"{'' if gpus == 'not recorded' else f'; GPUs {gpus}'}).")


def write_per_target(runs: list[Run], targets: list[str], out_dir: Path, profile: str | None,
                     write_one: Callable[[list[Run], Path, str | None], Path],
                     summarise: Callable[[pd.DataFrame], pd.DataFrame], header: Callable[[pd.DataFrame], str]) -> Path:
    """`write_one`, `summarise` and `header` (the score column's name for a frame) are bench/report/write.py's:
    passed in, so this module does not import the one that imports it."""
    from bench.report.decision import decision_sections

    per_target = {t: [r.on_target(t) for r in runs if t in r.targets] for t in targets}
    frames = {t: pd.concat([r.frame() for r in rs], ignore_index=True) for t, rs in per_target.items()}
    summaries = {t: summarise(df) for t, df in frames.items()}
    if all(s.empty for s in summaries.values()):
        raise BenchError(f"{runs[0].path}: no variant measured successfully on any target; nothing to report")
    parts = [Section(notes=[
        f"Measured on {len(targets)} cluster targets ({', '.join(f'`{t}`' for t in targets)}): each is judged "
        "apart, on its own rows. Each target's full report: `<target>/index.md` (and `index.html`) next to this "
        "page."])]
    for target in targets:
        lead = [target_line(frames[target], target), f"Its full report: `{target}/index.md`."]
        if summaries[target].empty:
            parts.append(Section(f"Target {target}", lead=[lead[0], "No variant measured successfully here."],
                                 items=_failures(frames[target])))
            continue
        write_one(per_target[target], confined(out_dir, target), profile)
        parts.append(Section(f"Target {target}", lead=lead))
        for section in decision_sections(per_target[target], summaries[target], profile, Section,
                                         header(frames[target])):
            section.title = f"{target}: {section.title}"
            parts.append(section)
    title = f"{runs[0].info.get('suite', '?')} — {', '.join(r.run_id for r in runs)}, per target"
    out_dir.mkdir(parents=True, exist_ok=True)
    for filename, text in (("index.md", to_markdown(title, parts)), ("index.html", to_html(title, parts))):
        tmp = out_dir / f".{filename}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_dir / filename)
    return out_dir / "index.md"


def _failures(df: pd.DataFrame) -> list[str]:
    return [f"{r.variant_id}: {r.status}: {r.error}" for r in df.itertuples() if r.status != "ok"]
