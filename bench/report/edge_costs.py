"""The report's section on what a deployment pays beyond the steady-state p50: end-to-end latency with the
tokenizer (`measure.end_to_end`), cold start by phase (`measure.cold_start`) and energy per inference
where a counter was readable; one line per variant, seeds averaged, and the cold start phases as a chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store.results import variant_label

COLUMNS = {"latency_p50_ms": "p50 ms (model)", "e2e_p50_ms": "end-to-end p50 ms", "e2e_p95_ms": "end-to-end p95 ms",
           "e2e_tokenizer_share_pct": "tokenizer %", "cold_start_ms": "cold start ms",
           "cold_start_import": "import ms", "cold_start_model_load": "model load ms",
           "cold_start_first_call": "first call ms", "energy_mj_per_inference": "energy mJ/inference"}
PHASES = ("interpreter", "import", "tokenizer_load", "model_load", "first_call")  # spawn to the first answer
NOTES = ("End to end: text in, label out at batch 1 (fast tokenizer, input conversion, model, softmax), the "
         "tokenizer's share of that time beside it; p50 (model) is the SingleStream call alone, timed in its own "
         "pass at another moment of the run (compare the two within a row with care; between variants the "
         "interleaved speedup is the robust number). Cold start: a "
         "fresh process from spawn to its first answer, median over the starts, with the artifact's files "
         "dropped from the page cache before each (the libraries' stay cached). Energy: machine-wide counters "
         "(RAPL/powercap, amd_energy, NVML) over the SingleStream pass, never an estimate; where none was "
         "readable the rows' `energy_status` says why.")


def edge_table(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"] if "status" in df else df
    wanted = [c for c in ("e2e_p50_ms", "cold_start_ms", "energy_mj_per_inference") if c in ok]
    if not wanted or ok[wanted].isna().all().all():
        return pd.DataFrame()
    rows = []
    for _, r in ok.iterrows():
        phases = r.get("cold_start_phases_ms") if isinstance(r.get("cold_start_phases_ms"), dict) else {}
        rows.append({"variant": variant_label(r), **{c: r.get(c) for c in COLUMNS if not c.startswith("cold_start_")},
                     "cold_start_ms": r.get("cold_start_ms"),
                     **{f"cold_start_{p}": phases.get(p) for p in ("import", "model_load", "first_call")},
                     **{f"phase_{p}": phases.get(p) for p in PHASES}})
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c != "variant"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    table = table.groupby("variant", sort=False, as_index=False).mean()
    return table.dropna(axis=1, how="all")


def cold_start_plot(table: pd.DataFrame, path: Path) -> Path | None:
    """One horizontal bar per variant, stacked by phase (ms, log scale would hide the small phases)."""
    phases = [p for p in PHASES if f"phase_{p}" in table]
    rows = table.dropna(subset=[f"phase_{p}" for p in phases]) if phases else table.iloc[0:0]
    if rows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    left = pd.Series(0.0, index=rows.index)
    for phase, colour in zip(phases, ("#bbbbbb", "#4c72b0", "#55a868", "#c44e52", "#8172b2"), strict=False):
        ax.barh(rows["variant"], rows[f"phase_{phase}"], left=left, color=colour, label=phase.replace("_", " "))
        left += rows[f"phase_{phase}"]
    ax.invert_yaxis()
    ax.set_xlabel("ms from spawn to the first answer (median over the starts)")
    ax.set_title("Cold start by phase")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def edge_section(table: pd.DataFrame, png: Path | None, section_cls):
    if table.empty:
        return None
    shown = table[[c for c in ("variant", *COLUMNS) if c in table]]
    return section_cls("Beyond the p50: end to end, cold start, energy", shown.rename(columns=COLUMNS),
                       floatfmt=".4g", missing="—", notes=[NOTES], images=[png] if png else [])
