"""ONNX FP32 export with optimum-onnx (dynamic batch and sequence axes) and a parity check against
the PyTorch source on real dev sentences. A failed parity check fails the build loudly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.errors import ParityError
from bench.runtimes import load_runtime, predict

log = logging.getLogger(__name__)


def export_onnx(model_dir: Path, out_dir: Path, opset: int | None = None) -> None:
    from optimum.exporters.onnx import main_export

    # optimum's own validation uses random inputs; ours below uses real sentences and is recorded.
    main_export(
        model_name_or_path=str(model_dir), output=out_dir, task="text-classification",
        opset=opset, device="cpu", do_validation=False, library_name="transformers",
    )


def parity(reference, candidate, tokenizer, sentences: list[str], max_length: int, batch_size: int = 16) -> dict:
    """Max |Δlogit| and argmax agreement of two runtimes on the same padded batches."""
    max_diff, agree = 0.0, 0
    for start in range(0, len(sentences), batch_size):
        enc = dict(tokenizer(sentences[start : start + batch_size], truncation=True, max_length=max_length,
                             padding=True, return_tensors="np"))
        ref, cand = predict(reference, enc), predict(candidate, enc)
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
    return {"parity_max_abs_diff": max_diff, "parity_label_agreement": agree / len(sentences),
            "parity_samples": len(sentences)}


def export_with_parity(model_dir: Path, out_dir: Path, sentences: list[str], max_length: int, atol: float) -> dict:
    from transformers import AutoTokenizer

    export_onnx(model_dir, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    result = parity(
        load_runtime("pytorch", model_dir, "cpu", threads=2),
        load_runtime("onnx", out_dir, "cpu", threads=2),
        tokenizer, sentences, max_length,
    )
    log.info("onnx parity: max |Δlogit| %.2e, label agreement %.4f", result["parity_max_abs_diff"],
             result["parity_label_agreement"])
    if result["parity_max_abs_diff"] > atol:
        raise ParityError(
            f"{out_dir.name}: ONNX export disagrees with PyTorch: max |Δlogit| "
            f"{result['parity_max_abs_diff']:.3e} > parity_atol {atol:g} on {len(sentences)} dev sentences"
        )
    return {**result, "parity_atol": atol}
