"""The report's "Full fine-tuning vs LoRA" section: for each architecture that was trained both ways, what
LoRA gives up against full fine-tuning (dev score over seeds), what it saves (trainable parameters,
training time and memory), and how each merged model survives dynamic INT8.

Models are paired by architecture, read as the PyTorch FP32 model's parameter count (a merged LoRA model
has exactly the parameters of the model it adapted), and by kind of training (plain fine-tuning or the
same distillation loss terms).
"""

from __future__ import annotations

import pandas as pd

from bench.store.results import reference_mask


def _int8_drop(ok: pd.DataFrame, fmt: str) -> pd.Series:
    """Per model, the dynamic-INT8 row's score minus its own FP32 row's in `fmt` (same graph, device and
    threads, same seed), in points, mean over seeds and graphs (runs reported together are averaged first)."""
    keys = ["model", "seed", "graph", "device", "threads"]
    rows = ok[ok["format"] == fmt]
    fp32 = rows[rows["precision"] == "fp32"].groupby(keys, dropna=False)["score"].mean()
    int8 = rows[rows["precision"] == "int8-dynamic"].groupby(keys, dropna=False)["score"].mean()
    drop = (int8 - fp32.reindex(int8.index)).dropna() * 100
    return drop.groupby(level="model").mean() if len(drop) else pd.Series(dtype=float)


def _column(g, rows: pd.DataFrame, name: str, how: str = "first") -> pd.Series | float:
    return getattr(g[name], how)() if name in rows else float("nan")


def method_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per trained model of an architecture that has a LoRA model; empty when no row is LoRA."""
    if "train_method" not in df or not (df["train_method"] == "lora").any():
        return pd.DataFrame()
    ok = df[df["status"] == "ok"].assign(score=lambda d: pd.to_numeric(d["score"], errors="coerce"))
    # Rows written before the method was recorded: a trained model was fully fine-tuned.
    if "train_rows" in ok:
        ok = ok.assign(train_method=ok["train_method"].where(ok["train_method"].notna() | ok["train_rows"].isna(),
                                                             "full"))
    # One line per trained artifact: a teacher pinned by teacher.seed is measured at every seed, trained once.
    ref = ok[reference_mask(ok) & ok["train_method"].notna()].drop_duplicates(["model", "artifact"], keep="last")
    g = ref.groupby("model", sort=False)
    loss = _column(g, ref, "train_loss_terms")
    out = pd.DataFrame({
        "method": g["train_method"].first(),
        "rank": _column(g, ref, "lora_r"),
        "params": g["params"].first(),
        "trainable params": _column(g, ref, "trainable_params"),
        "train s": _column(g, ref, "train_runtime_s", "mean"),
        "train RSS growth MB": _column(g, ref, "train_rss_growth_mb", "mean"),
        "seeds": g["artifact"].nunique(),
        "dev": g["score"].mean() * 100,
        "± std": g["score"].std() * 100,
        # Plain fine-tuning (the teacher's, or a named model's hard loss alone) vs distillation: compared
        # only within the same kind of training.
        "_training": loss.fillna("hard") if isinstance(loss, pd.Series) else "hard",
    })
    out["% trainable"] = out["trainable params"] / out["params"] * 100
    # The full model each LoRA model is judged against: same architecture and loss terms; the teacher first.
    full = out[out["method"] == "full"]
    full = full.loc[sorted(full.index, key=lambda m: m != "teacher")]
    reference = full.groupby(["params", "_training"])["dev"].first()
    pair = list(zip(out["params"], out["_training"], strict=True))
    out["Δ vs full (pts)"] = [d - reference.get(k, float("nan")) for d, k in zip(out["dev"], pair, strict=True)]
    out["INT8 drop, PyTorch (pts)"] = out.index.map(_int8_drop(ok, "pytorch"))
    out["INT8 drop, ONNX (pts)"] = out.index.map(_int8_drop(ok, "onnx"))
    lora_pairs = set(zip(out.loc[out["method"] == "lora", "params"], out.loc[out["method"] == "lora", "_training"],
                         strict=True))
    out = out[[k in lora_pairs for k in pair]]
    columns = ["method", "rank", "trainable params", "% trainable", "train s", "train RSS growth MB", "seeds", "dev",
               "± std", "Δ vs full (pts)", "INT8 drop, PyTorch (pts)", "INT8 drop, ONNX (pts)"]
    order = out.assign(_full=out["method"] != "full").sort_values(["params", "_training", "_full", "rank"],
                                                                    ascending=[False, True, True, True], kind="stable")
    order = order.assign(rank=[int(r) if pd.notna(r) else "—" for r in order["rank"]])  # not "nan" for full
    return order[columns].reset_index()


NOTES = [
    "dev: the task's primary metric ×100 of the PyTorch FP32 model on the whole eval split, mean and sample std "
    "over seeds; Δ vs full compares it with the fully fine-tuned model of the same architecture and the same "
    "kind of training (plain fine-tuning, or the same distillation loss terms; the teacher first). A difference "
    "smaller than the seed spread is not a win.",
    "Trainable params: what the optimizer updated (LoRA: the adapters and the task head). Train s: the training "
    "loop's wall time. Train RSS growth: the training process's peak RSS during the loop minus its RSS when the "
    "loop started (activations, gradients, optimizer state), sampled every 10 ms.",
    "INT8 drop: the merged model's dynamic-INT8 score minus its own FP32 score in the same format (same seed, "
    "graph and threads), mean over seeds: whether a LoRA-trained model quantizes as well as a fully "
    "fine-tuned one.",
]
