"""ONNX FP32 export with optimum-onnx (dynamic batch and sequence axes), and the parity check every
artifact goes through: logits against its FP32 PyTorch source on real dev examples (one sentence or a
pair, tokenised as the task's model sees them)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from bench.errors import ParityError
from bench.runtimes import Runtime, batched_logits, load_runtime
from bench.tasks import Texts

log = logging.getLogger(__name__)

def export_onnx(model_dir: Path, out_dir: Path, opset: int | None = None) -> None:
    from optimum.exporters.onnx import main_export

    # optimum's own validation uses random inputs; ours (below) uses real sentences and is recorded.
    main_export(
        model_name_or_path=str(model_dir), output=out_dir, task="text-classification",
        opset=opset, device="cpu", do_validation=False, library_name="transformers",
    )


def copy_sidecars(src_dir: Path, out_dir: Path) -> None:
    """Config and tokenizer files, so every artifact folder is self-contained."""
    for f in src_dir.iterdir():
        if f.is_file() and f.suffix in (".json", ".txt") and f.name != "manifest.json":
            shutil.copy2(f, out_dir / f.name)


def parity(reference: Runtime, candidate: Runtime, tokenizer, texts: Texts | list[str], max_length: int,
           batch_size: int = 16) -> dict:
    """Max |Δlogit| of two runtimes on the same padded batches, and for a classification head their
    argmax agreement (None for a regression head: one output, no label to agree on)."""
    ref = batched_logits(reference, tokenizer, texts, max_length, batch_size)
    cand = batched_logits(candidate, tokenizer, texts, max_length, batch_size)
    classify = ref.ndim == 2 and ref.shape[-1] > 1
    agree = int((ref.argmax(-1) == cand.argmax(-1)).sum())
    return {"parity_max_abs_diff": float(np.abs(ref - cand).max()),
            "parity_label_agreement": agree / len(ref) if classify else None, "parity_samples": len(ref)}


def check_parity(source_dir: Path, candidate: Runtime, name: str, texts: Texts | list[str], max_length: int,
                 atol: float | None, device: str = "cpu", reference_format: str = "pytorch") -> dict:
    """Parity of `candidate` against the FP32 source model in source_dir (PyTorch, or the graph itself
    for an ONNX source measured as it is); fails loudly above atol."""
    from transformers import AutoTokenizer

    reference = load_runtime(reference_format, source_dir, device, threads=2)
    result = parity(reference, candidate, AutoTokenizer.from_pretrained(source_dir), texts, max_length)
    agreement = result["parity_label_agreement"]
    log.info("%s parity: max |Δlogit| %.2e, label agreement %s", name, result["parity_max_abs_diff"],
             "n/a (regression)" if agreement is None else f"{agreement:.4f}")
    if atol is not None and result["parity_max_abs_diff"] > atol:
        raise ParityError(
            f"{name}: disagrees with its {reference_format} source: max |Δlogit| "
            f"{result['parity_max_abs_diff']:.3e} > parity_atol {atol:g} on {result['parity_samples']} dev examples"
        )
    return {**result, "parity_atol": atol}


def export_with_parity(model_dir: Path, out_dir: Path, texts: Texts | list[str], max_length: int, atol: float,
                       name: str = "ONNX export") -> dict:
    export_onnx(model_dir, out_dir)
    return check_parity(model_dir, load_runtime("onnx", out_dir, "cpu", threads=2), name, texts, max_length, atol)
