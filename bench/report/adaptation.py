"""The report's "Full fine-tuning vs LoRA" section: for each architecture that was trained both ways, what
LoRA gives up against full fine-tuning (dev score over seeds), what it saves (trainable parameters,
training time and memory), and how each merged model survives dynamic INT8.

Models are paired by architecture, read as the PyTorch FP32 model's parameter count: a merged LoRA model
has exactly the parameters of the model it adapted.
"""

from __future__ import annotations

import pandas as pd

from bench.store.results import reference_mask


def _int8_drop(ok: pd.DataFrame, fmt: str) -> pd.Series:
    """Per model, the dynamic-INT8 row's score minus its own FP32 row's in `fmt` (same graph, device and
    threads, same seed), in points, mean over seeds and graphs."""
    keys = ["model", "seed", "graph", "device", "threads"]
    rows = ok[ok["format"] == fmt]
    fp32 = rows[rows["precision"] == "fp32"].set_index(keys)["score"]
    int8 = rows[rows["precision"] == "int8-dynamic"].set_index(keys)["score"]
    drop = (int8 - fp32.reindex(int8.index)).dropna() * 100
    return drop.groupby(level="model").mean() if len(drop) else pd.Series(dtype=float)


def method_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per trained model of an architecture that has a LoRA model; empty when no row is LoRA."""
    if "train_method" not in df or not (df["train_method"] == "lora").any():
        return pd.DataFrame()
    ok = df[df["status"] == "ok"].assign(score=lambda d: pd.to_numeric(d["score"], errors="coerce"))
    ref = ok[reference_mask(ok) & ok["train_method"].notna()]
    g = ref.groupby("model", sort=False)
    out = pd.DataFrame({
        "method": g["train_method"].first(),
        "rank": g["lora_r"].first() if "lora_r" in ref else float("nan"),
        "params": g["params"].first(),
        "trainable params": g["trainable_params"].first() if "trainable_params" in ref else float("nan"),
        "train s": g["train_runtime_s"].mean() if "train_runtime_s" in ref else float("nan"),
        "train RSS growth MB": g["train_rss_growth_mb"].mean() if "train_rss_growth_mb" in ref else float("nan"),
        "seeds": g["seed"].nunique(),
        "dev": g["score"].mean() * 100,
        "± std": g["score"].std() * 100,
    })
    out["% trainable"] = out["trainable params"] / out["params"] * 100
    # The full model each LoRA model is judged against: the teacher when it shares the architecture, else
    # the first fully fine-tuned model of that size.
    full = out[out["method"] == "full"]
    full = full.loc[sorted(full.index, key=lambda m: m != "teacher")]
    reference = full.groupby("params")["dev"].first()
    out["Δ vs full (pts)"] = out["dev"] - out["params"].map(reference)
    out["INT8 drop, PyTorch (pts)"] = out.index.map(_int8_drop(ok, "pytorch"))
    out["INT8 drop, ONNX (pts)"] = out.index.map(_int8_drop(ok, "onnx"))
    out = out[out["params"].isin(out.loc[out["method"] == "lora", "params"])]
    columns = ["method", "rank", "trainable params", "% trainable", "train s", "train RSS growth MB", "seeds", "dev",
               "± std", "Δ vs full (pts)", "INT8 drop, PyTorch (pts)", "INT8 drop, ONNX (pts)"]
    return out[columns].reset_index().sort_values(["method", "rank"], na_position="first", kind="stable")


NOTES = [
    "dev: the task's primary metric ×100 of the PyTorch FP32 model on the whole eval split, mean and sample std "
    "over seeds; Δ vs full compares it with the fully fine-tuned model of the same architecture (the teacher "
    "when it is one). A difference smaller than the seed spread is not a win.",
    "Trainable params: what the optimizer updated (LoRA: the adapters and the task head). Train s: the training "
    "loop's wall time. Train RSS growth: the training process's peak RSS during the loop minus its RSS when the "
    "loop started (activations, gradients, optimizer state), sampled every 10 ms.",
    "INT8 drop: the merged model's dynamic-INT8 score minus its own FP32 score in the same format (same seed, "
    "graph and threads), mean over seeds: whether a LoRA-trained model quantizes as well as a fully "
    "fine-tuned one.",
]
