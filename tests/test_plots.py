"""The report's plots are readable: no two pieces of text overprint each other, log axes read in plain units,
and the speedup chart shows interleaved speedups with their intervals. Rendered from real runs: every committed
report's results.csv (real SST-2 runs on this project's machines: reports/ and docs/studies/)."""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.text import Text

from bench.report import plots
from bench.report.write import summarise
from bench.schema.row import IDENTITY_DEFAULTS

REPO = Path(__file__).resolve().parents[1]
# The current report(s) and the earlier runs kept as docs/studies/ (named students, seeds, served rows).
RUNS = sorted(p.parent for p in [*(REPO / "reports").glob("*/results.csv"), *(REPO / "docs" / "studies").glob("*/results.csv")])
REPORTS = [str(p.relative_to(REPO)) for p in RUNS]


def summary_of(report: str) -> pd.DataFrame:
    df = pd.read_csv(REPO / report / "results.csv")
    for column, default in IDENTITY_DEFAULTS.items():
        df[column] = df[column].astype(object).fillna(default) if column in df else default
    return summarise(df)


def drawn_texts(fig) -> list[tuple[str, object]]:
    """(text, window extent) of every piece of text the saved figure shows."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    seen, out = set(), []
    for ax in fig.axes:  # tick labels matplotlib draws: inside the view limits only
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if tick.label1.get_visible() and lo <= tick.get_loc() <= hi:
                    seen.add(id(tick.label1))
                    if tick.label1.get_text():
                        out.append((tick.label1.get_text(), tick.label1.get_window_extent(renderer)))
                else:
                    seen.add(id(tick.label1))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                seen.add(id(tick.label2))
    for t in fig.findobj(Text):
        if id(t) in seen or not t.get_visible() or not t.get_text().strip():
            continue
        seen.add(id(t))
        out.append((t.get_text(), t.get_window_extent(renderer)))
    return out


def overprinted(fig) -> list[tuple[str, str]]:
    texts = drawn_texts(fig)
    return [(a, b) for i, (a, box_a) in enumerate(texts) for b, box_b in texts[i + 1:] if box_a.overlaps(box_b)]


FIGURES = {"latency_vs_accuracy": plots.latency_vs_accuracy_figure, "size_vs_accuracy": plots.size_vs_accuracy_figure,
           "speedup": plots.speedup_figure}


@pytest.mark.parametrize("report", REPORTS)
@pytest.mark.parametrize("plot", sorted(FIGURES))
def test_no_two_text_boxes_intersect(report, plot):
    fig = FIGURES[plot](summary_of(report))
    try:
        assert overprinted(fig) == []
    finally:
        plt.close(fig)


def test_every_point_is_numbered_and_keyed(tmp_path):
    summary = summary_of(REPORTS[0])
    fig = plots.latency_vs_accuracy_figure(summary)
    texts = [t for t, _ in drawn_texts(fig)]
    plt.close(fig)
    for i, label in enumerate(summary["label"], start=1):
        assert f"{i:>2}  {label}" in texts  # the key line
    numbers = [t for t in texts if t.isdigit()]
    assert len(numbers) >= 0.8 * len(summary)  # most points carry their number; none overprints (above)


def test_log_axis_reads_in_milliseconds():
    fig = plots.latency_vs_accuracy_figure(summary_of(REPORTS[0]))
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and all("10^" not in x and "$" not in x for x in labels), labels
    assert {"1", "2", "5"} & set(labels), labels


def test_speedup_chart_uses_interleaved_speedups_with_whiskers():
    with_rounds = [r for r in REPORTS if summary_of(r)["speedup_vs_reference"].notna().any()]
    assert with_rounds, "no committed report measured interleaved speedups"
    summary = summary_of(with_rounds[0])
    fig = plots.speedup_figure(summary)
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    plt.close(fig)
    interleaved = summary["speedup_vs_reference"].dropna()
    # every interleaved median is a bar's length; the isolated p50 ratio is not what the bar shows
    assert all(round(v, 6) in widths for v in interleaved)
    assert len(ax.collections) >= 1  # the interval whiskers
    assert "interleaved" in ax.get_xlabel()
