"""The report's "Where the time goes" section: each variant's op time by kind (bench/child/op_profile.py),
a stacked bar per variant, and one sentence per compression step saying what changed.

A compression step is a variant against the one it was made from, same model, device and threads:
ONNX FP32 against PyTorch FP32 (the runtime), the optimized graph against the plain one (fusion), an
INT8 variant against the FP32 of its format and graph (quantization). The sentence gives the summed
op time on both sides and the kinds that moved most; p50s beside it say how much of the call the
ops are (the rest is the framework between ops).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.schema.op_kinds import KINDS, by_kind
from bench.spec.names import REFERENCE
from bench.store.results import variant_label

_KIND_COLORS = {"int8 matmul": "tab:green", "quantize/dequantize": "tab:red", "fused": "tab:purple",
                "float matmul": "tab:blue", "other": "tab:gray"}


def profiled(df: pd.DataFrame) -> pd.DataFrame:
    """The ok rows with an op profile, first seed of each variant, with `label` and per-kind ms columns."""
    if "op_profile" not in df:
        return pd.DataFrame()
    rows = df[(df["status"] == "ok") & df["op_profile"].apply(lambda v: isinstance(v, list) and len(v) > 0)]
    rows = rows.sort_values("seed", kind="stable").drop_duplicates("variant_id")
    out = []
    for r in rows.to_dict("records"):
        kinds = by_kind(r["op_profile"])
        top = r["op_profile"][0]
        out.append({"label": variant_label(r), "model": r["model"], "format": r["format"],
                    "precision": r["precision"], "calibration": r.get("calibration") or "",
                    "graph": r.get("graph") or "plain", "device": r["device"], "threads": r["threads"],
                    "p50_ms": r["latency_p50_ms"], "op_ms": r["op_profile_kernel_ms"], **kinds,
                    "top_op": f"{top['op']} {top['share_pct']:.0f}%"})
    return pd.DataFrame(out)


def op_table(prof: pd.DataFrame) -> pd.DataFrame:
    cols = {"label": "variant", "p50_ms": "p50 ms", "op_ms": "op time ms", **{k: f"{k} ms" for k in KINDS},
            "top_op": "largest op"}
    return prof[list(cols)].rename(columns=cols)


def _parent(r, prof: pd.DataFrame):
    """The variant `r` was made from, measured in the same report (None for PyTorch FP32)."""
    same = prof[(prof["model"] == r["model"]) & (prof["device"] == r["device"]) & (prof["threads"] == r["threads"])]

    def pick(**want):
        hit = same
        for k, v in want.items():
            hit = hit[hit[k] == v]
        return hit.iloc[0] if len(hit) else None

    if r["precision"] != "fp32":
        return pick(format=r["format"], precision="fp32", graph=r["graph"])
    if r["graph"] != "plain":  # a fused graph: from the plain one of its format
        return pick(format=r["format"], precision="fp32", graph="plain")
    if r["format"] != REFERENCE.format:
        return pick(format=REFERENCE.format, precision=REFERENCE.precision)
    return None


def step_sentences(prof: pd.DataFrame) -> list[str]:
    out = []
    for _, r in prof.iterrows():
        parent = _parent(r, prof)
        if parent is None:
            continue
        moved = sorted(((r[k] - parent[k], k) for k in KINDS), key=lambda t: -abs(t[0]))
        parts = [f"{k} {d * 1e3:+.0f} µs" for d, k in moved[:3] if abs(d) >= 0.005 * max(parent["op_ms"], 1e-9)]
        change = r["op_ms"] / parent["op_ms"] - 1 if parent["op_ms"] else float("nan")
        out.append(f"{r['label']} vs {parent['label']}: op time {parent['op_ms']:.3g} → {r['op_ms']:.3g} ms "
                   f"({change:+.0%}), p50 {parent['p50_ms']:.3g} → {r['p50_ms']:.3g} ms"
                   + (f"; {', '.join(parts)}" if parts else "") + ".")
    return out


def op_plot(prof: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(prof) + 1.6))
    left = pd.Series(0.0, index=prof.index)
    for kind in KINDS:
        ax.barh(prof["label"], prof[kind], left=left, color=_KIND_COLORS[kind], label=kind, edgecolor="white",
                linewidth=0.4)
        left += prof[kind]
    ax.scatter(prof["p50_ms"], prof["label"], marker="|", color="black", s=120, zorder=3, label="p50 (whole call)")
    ax.invert_yaxis()
    ax.set_xlabel("ms per batch-1 inference")
    ax.set_title("Where the time goes: op time by kind")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
