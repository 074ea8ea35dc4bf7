"""Report plots (matplotlib, Agg backend: no display needed). Each takes the report's summary table
(one line per variant, see bench.report.write.summarise) and writes one PNG. Quality is the task's primary
score (`score_pct`); `metric` names it on the axis (accuracy %, or e.g. matthews_correlation ×100)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from bench.report.decision import speed_column  # noqa: E402
from bench.store.results import pareto_mask  # noqa: E402

DPI = 110
COLORS = {"teacher": "tab:blue", "student": "tab:orange"}
_PALETTE = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _color(model: str) -> str:
    """Fixed colours for teacher/student; named students (an ablation) get a stable colour by name."""
    return COLORS.get(model) or _PALETTE[sum(map(ord, model)) % len(_PALETTE)]


MARKERS = {"pytorch": "o", "onnx": "s", "tensorrt": "^", "openvino": "D"}  # by format (bench/spec/names.py)


def _marker(fmt: str) -> str:
    """The format's marker; "x" for a format without one."""
    return MARKERS.get(fmt, "x")


def _finish(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _ylabel(metric: str) -> str:
    return "dev accuracy (%)" if metric == "accuracy" else f"dev {metric} (×100)"


def _plain_log(axis) -> None:
    """A log axis whose ticks read in plain units: 0.5, 1, 2, 5, 10, 20, ... (not 10⁰ / 10¹)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _overlaps(box, boxes) -> bool:
    return any(box.overlaps(other) for other in boxes)


# Where a point's number may go, in points from the point: nearest first, then further out with a leader line.
_OFFSETS = [(dx * r, dy * r) for r in (5, 11, 18, 27) for dx, dy in
            ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]


def _number_points(ax, x: pd.Series, y: pd.Series, numbers: list[int]) -> None:
    """Put each point's number beside it where its box meets no other text (tick labels, earlier numbers)
    and stays inside the axes; the nearest free spot wins, a further one gets a leader line. A point with
    no free spot keeps its place in the key and gets no number rather than an overprinted one."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-2)
    taken = [t.get_window_extent(renderer) for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    for px, py, n in zip(x, y, numbers, strict=True):
        for dx, dy in _OFFSETS:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            far = abs(dx) > 6 or abs(dy) > 6
            label = ax.annotate(str(n), (px, py), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                fontsize=7, fontweight="bold",
                                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray"} if far else None)
            box = label.get_window_extent(renderer)
            if inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1) and not _overlaps(box, taken):
                taken.append(box)
                break
            label.remove()


def _key(fig, labels: list[str], numbers: list[int], left: float) -> None:
    """The numbered variants, one per line, in the panel right of the axes."""
    spacing = min(0.04, 0.6 / max(len(labels), 1))
    size = max(4.0, min(7.5, spacing * fig.get_figheight() * 72 * 0.75))
    fig.text(left, 0.96, "key", fontsize=size + 0.5, fontweight="bold", va="top")
    for i, (n, label) in enumerate(zip(numbers, labels, strict=True)):
        fig.text(left, 0.96 - (i + 1) * spacing, f"{n:>2}  {label}", fontsize=size, va="top", family="monospace")


def _numbered_scatter(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str,
                      whiskers: tuple[str, str] | None = None):
    """Points by model (colour) and format (marker), numbered, with the key and the legend beside the axes."""
    fig = plt.figure(figsize=(11, 5.6))
    ax = fig.add_axes((0.08, 0.1, 0.52, 0.82))
    d = df.dropna(subset=[x, y]).reset_index(drop=True)
    numbers = list(range(1, len(d) + 1))
    front = d[pareto_mask(d[x], d[y])].sort_values(x)
    ax.plot(front[x], front[y], "--", color="green", lw=1.2, label="Pareto front", drawstyle="steps-post", zorder=2)
    if whiskers is not None:
        low, high = whiskers
        ax.errorbar(d[x], d[y], xerr=[(d[x] - d[low]).clip(lower=0), (d[high] - d[x]).clip(lower=0)],
                    fmt="none", ecolor="gray", elinewidth=0.8, capsize=2, zorder=1)
    for (model, fmt), group in d.groupby(["model", "format"]):
        ax.scatter(group[x], group[y], c=_color(model), marker=_marker(fmt), s=46,
                   label=f"{model} {fmt}", edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    ax.margins(x=0.12, y=0.12)
    ax.grid(alpha=0.3)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower left", bbox_to_anchor=(0.63, 0.02),
               frameon=False, ncol=2)
    _key(fig, list(d["label"]), numbers, left=0.63)
    fig.canvas.draw()  # text extents are known only once drawn
    _number_points(ax, d[x], d[y], numbers)
    return fig


def size_vs_accuracy_figure(df: pd.DataFrame, metric: str = "accuracy"):
    return _numbered_scatter(df, "size_mb", "score_pct", "size on disk (MB, log scale)", _ylabel(metric),
                             f"Size vs {metric}")


def latency_vs_accuracy_figure(df: pd.DataFrame, metric: str = "accuracy"):
    # Whisker from p50 to p90: how much slower the slow tail of real sentences is.
    d = df.assign(_p90=df[["latency_p50_ms", "latency_p90_ms"]].max(axis=1))
    return _numbered_scatter(d, "latency_p50_ms", "score_pct", "batch-1 latency p50 (ms, log scale; whisker to p90)",
                             _ylabel(metric), f"Latency vs {metric}", whiskers=("latency_p50_ms", "_p90"))


def size_vs_accuracy(df: pd.DataFrame, path: Path, metric: str = "accuracy") -> Path:
    return _finish(size_vs_accuracy_figure(df, metric), path, tight=False)


def latency_vs_accuracy(df: pd.DataFrame, path: Path, metric: str = "accuracy") -> Path:
    return _finish(latency_vs_accuracy_figure(df, metric), path, tight=False)


def speedup_figure(df: pd.DataFrame):
    """Interleaved speedups with their intervals as whiskers where the run measured them (measure.interleave);
    the ratio of isolated p50s only for rows without one, hatched and labelled as such."""
    speed, source = speed_column(df)
    d = df.assign(_speed=speed, _source=source).dropna(subset=["_speed"]).sort_values("_speed")
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(d) + 1.6))
    bars = ax.barh(d["label"], d["_speed"], color=[_color(m) for m in d["model"]])
    for bar, src in zip(bars, d["_source"], strict=True):
        if src == "p50 ratio":
            bar.set_hatch("//")
            bar.set_alpha(0.55)
    has = (d["_source"] == "interleaved").to_numpy()
    if has.any():
        s = d[has]
        ax.errorbar(s["_speed"], np.arange(len(d))[has], fmt="none", ecolor="black", elinewidth=0.9, capsize=2.5,
                    xerr=[(s["_speed"] - s["speedup_ci_low"]).clip(lower=0),
                          (s["speedup_ci_high"] - s["_speed"]).clip(lower=0)], zorder=3)
    ends = np.where(has, d["speedup_ci_high"].fillna(d["_speed"]), d["_speed"])
    top = float(ends.max()) if len(d) else 1.0
    for y, (v, end, src) in enumerate(zip(d["_speed"], ends, d["_source"], strict=True)):
        ax.text(end + 0.01 * top, y, f" {v:.1f}×" + (" (p50 ratio)" if src == "p50 ratio" else ""),
                va="center", fontsize=7)
    ax.set_xlim(0, top * 1.25)
    ax.axvline(1, color="black", lw=0.8)
    what = ("interleaved rounds: median, whisker its ≥95 % interval" if has.all() else
            "interleaved where measured (whisker: ≥95 % interval); hatched: isolated p50 ratio" if has.any()
            else "ratio of isolated p50s: the run measured no interleaved speedups")
    ax.set(xlabel=f"speedup vs teacher PyTorch FP32, same threads\n({what})", title="Speedup")
    ax.tick_params(axis="y", labelsize=7)
    return fig


def speedup(df: pd.DataFrame, path: Path) -> Path:
    return _finish(speedup_figure(df), path)


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
