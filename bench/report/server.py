"""The report's "Server scenario" section (measure.server, bench/scenarios/server.py): each served
configuration's end-to-end p50/p99 against the offered rate, the highest rate within the p99 bound, and
a latency-vs-load plot (one panel per batching setting, a line per variant)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store.results import variant_label


def server_loads(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (variant, seed, batching, offered rate) of every ok row with Server entries."""
    if "server" not in df:
        return pd.DataFrame()
    lines = []
    for r in df[df["status"] == "ok"].to_dict("records"):
        for e in r.get("server") if isinstance(r.get("server"), list) else []:
            for load in e["loads"]:
                lines.append({"label": variant_label(r), "seed": r.get("seed"), "batching": e["batching"],
                              "bound_ms": e["p99_bound_ms"], **load})
    return pd.DataFrame(lines)


def server_entries(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (variant, seed, batching): max QPS within the bound, agreement, errors."""
    if "server" not in df:
        return pd.DataFrame()
    lines = []
    for r in df[df["status"] == "ok"].to_dict("records"):
        for e in r.get("server") if isinstance(r.get("server"), list) else []:
            lines.append({"variant": variant_label(r), "seed": r.get("seed"), "batching": e["batching"],
                          "max QPS": e.get("max_qps"), "p99 bound ms": e["p99_bound_ms"],
                          "rates run": ", ".join(f"{x['target_qps']:g}" for x in e["loads"]),
                          "mean batch": e.get("mean_batch_texts"),
                          "answers = accuracy pass": e.get("label_agreement"),
                          "served accuracy %": None if e.get("accuracy") is None else 100 * e["accuracy"],
                          "status": e["status"] if not e.get("error") else f"{e['status']}: {e['error']}"})
    return pd.DataFrame(lines)


def load_table(loads: pd.DataFrame) -> pd.DataFrame:
    cols = {"label": "variant", "batching": "batching", "target_qps": "offered QPS", "completed_qps": "completed QPS",
            "p50_ms": "p50 ms", "p99_ms": "p99 ms", "errors": "errors", "dropped": "dropped",
            "meets_bound": "within bound"}
    return loads.drop_duplicates(["label", "batching", "target_qps"])[list(cols)].rename(columns=cols)


def server_plot(loads: pd.DataFrame, path: Path) -> Path:
    """p50 (dashed) and p99 (solid) end-to-end latency against offered QPS, a panel per batching setting."""
    import matplotlib.pyplot as plt

    from bench.report.plots import _finish

    loads = loads.drop_duplicates(["label", "batching", "target_qps"])
    modes = list(dict.fromkeys(loads["batching"]))
    labels = sorted(loads["label"].unique())
    palette = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4.2), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes, strict=True):
        for label, g in loads[loads["batching"] == mode].groupby("label"):
            g = g.sort_values("target_qps")
            color = palette(labels.index(label) % 10)
            ax.plot(g["target_qps"], g["p99_ms"], marker="o", ms=3, lw=1.4, color=color, label=f"{label} p99")
            ax.plot(g["target_qps"], g["p50_ms"], marker=".", ms=3, lw=1, ls="--", color=color,
                    label=f"{label} p50")
        for bound in sorted(loads["bound_ms"].unique()):
            ax.axhline(bound, color="red", lw=0.8, ls=":", label=f"p99 bound {bound:g} ms")
        ax.set_yscale("log")
        ax.set(xlabel="offered QPS (Poisson)", ylabel="end-to-end latency ms (log)", title=f"batching: {mode}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _finish(fig, path)


NOTES = ("Server scenario (measure.server): each variant served by `bench serve`'s app (FastAPI on uvicorn, "
         "127.0.0.1) in a process of its own, loaded by MLCommons LoadGen with Poisson arrivals of the dev "
         "sentences at each offered rate, one request per sentence; latency is end to end (LoadGen's issue to "
         "the HTTP answer, client included). Max QPS: the highest offered rate whose p99 stayed within the bound "
         "with no errors or dropped requests (every lower rate too). Answers = accuracy pass: the share of "
         "served labels equal to the variant's own accuracy-pass prediction for the same sentence.")
