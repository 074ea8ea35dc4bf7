"""Report plots (matplotlib, Agg backend: no display needed). Each takes the report's summary table
(one line per variant, see bench.report.summarise) and writes one PNG. Quality is the task's primary
score (`score_pct`); `metric` names it on the axis (accuracy %, or e.g. matthews_correlation ×100)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import formats  # noqa: E402
from bench.results import pareto_mask  # noqa: E402

COLORS = {"teacher": "tab:blue", "student": "tab:orange"}
_PALETTE = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _color(model: str) -> str:
    """Fixed colours for teacher/student; named students (an ablation) get a stable colour by name."""
    return COLORS.get(model) or _PALETTE[sum(map(ord, model)) % len(_PALETTE)]


def _marker(fmt: str) -> str:
    """The format's own marker (bench/formats/: `plot_marker`); "x" for a name no format declares."""
    try:
        return formats.get(fmt).plot_marker
    except ValueError:
        return "x"


def _scatter(ax, df: pd.DataFrame, x: str, y: str) -> None:
    for (model, fmt), group in df.groupby(["model", "format"]):
        ax.scatter(group[x], group[y], c=_color(model), marker=_marker(fmt), s=46,
                   label=f"{model} {fmt}", edgecolors="black", linewidths=0.4, zorder=3)
    for _, r in df.iterrows():
        ax.annotate(r["label"], (r[x], r[y]), fontsize=6.5, xytext=(4, 3), textcoords="offset points", alpha=0.85)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _finish(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pareto_line(ax, df: pd.DataFrame, x: str, y: str) -> None:
    front = df[pareto_mask(df[x], df[y])].sort_values(x)
    ax.plot(front[x], front[y], "--", color="green", lw=1.2, label="Pareto front", drawstyle="steps-post", zorder=2)


def _ylabel(metric: str) -> str:
    return "dev accuracy (%)" if metric == "accuracy" else f"dev {metric} (×100)"


def size_vs_accuracy(df: pd.DataFrame, path: Path, metric: str = "accuracy") -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    _pareto_line(ax, df, "size_mb", "score_pct")
    _scatter(ax, df, "size_mb", "score_pct")
    ax.set_xscale("log")
    ax.set(xlabel="size on disk (MB, log scale)", ylabel=_ylabel(metric), title=f"Size vs {metric}")
    return _finish(fig, path)


def latency_vs_accuracy(df: pd.DataFrame, path: Path, metric: str = "accuracy") -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    _pareto_line(ax, df, "latency_p50_ms", "score_pct")
    # Whisker from p50 to p90: how much slower the slow tail of real sentences is.
    ax.errorbar(df["latency_p50_ms"], df["score_pct"],
                xerr=[np.zeros(len(df)), (df["latency_p90_ms"] - df["latency_p50_ms"]).clip(lower=0)],
                fmt="none", ecolor="gray", elinewidth=0.8, capsize=2, zorder=1)
    _scatter(ax, df, "latency_p50_ms", "score_pct")
    ax.set_xscale("log")
    ax.set(xlabel="batch-1 latency p50 (ms, log; whisker to p90)", ylabel=_ylabel(metric),
           title=f"Latency vs {metric}")
    return _finish(fig, path)


def speedup(df: pd.DataFrame, path: Path) -> Path:
    d = df.dropna(subset=["speedup"]).sort_values("speedup")
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(d) + 1.2))
    ax.barh(d["label"], d["speedup"], color=[_color(m) for m in d["model"]])
    ax.axvline(1, color="black", lw=0.8)
    for y, v in enumerate(d["speedup"]):
        ax.text(v, y, f" {v:.1f}x", va="center", fontsize=7)
    ax.set(xlabel="speedup vs teacher PyTorch FP32 (p50, same threads)", title="Speedup")
    ax.tick_params(axis="y", labelsize=7)
    return _finish(fig, path)


def memory(df: pd.DataFrame, path: Path) -> Path:
    d = df.sort_values("peak_rss_mb")
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(d) + 1.2))
    ax.barh(d["label"], d["rss_before_load_mb"], color="lightgray", label="before model load")
    ax.barh(d["label"], d["peak_rss_mb"] - d["rss_before_load_mb"], left=d["rss_before_load_mb"],
            color=[_color(m) for m in d["model"]], label="added by model + inference")
    ax.set(xlabel="peak RSS of the measuring process (MB)", title="Memory")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def latency_grid(grid: pd.DataFrame, path: Path) -> Path:
    """One panel per batch size: p50 against sequence length, a line per variant."""
    batches = sorted(grid["batch"].unique())
    labels = sorted(grid["label"].unique())
    palette = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        for label, g in grid[grid["batch"] == batch].groupby("label"):
            g = g.sort_values("seq_len")
            ax.plot(g["seq_len"], g["p50_ms"], marker="o", ms=3, lw=1.2, color=palette(labels.index(label) % 20),
                    ls="--" if label.startswith("teacher") else "-", label=label)
        ax.set_yscale("log")
        ax.set(xlabel="sequence length (tokens)", ylabel="p50 ms (log)", title=f"batch {batch}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _finish(fig, path)


def all_plots(df: pd.DataFrame, out_dir: Path, grid: pd.DataFrame | None = None,
              metric: str = "accuracy") -> list[Path]:
    """The report's PNGs; the two quality plots keep their file names whatever the task's metric."""
    paths = [
        size_vs_accuracy(df, out_dir / "size_vs_accuracy.png", metric),
        latency_vs_accuracy(df, out_dir / "latency_vs_accuracy.png", metric),
        speedup(df, out_dir / "speedup.png"),
        memory(df, out_dir / "memory.png"),
    ]
    if grid is not None and not grid.empty:
        paths.append(latency_grid(grid, out_dir / "latency_grid.png"))
    return paths
