"""The parity check every artifact goes through: its logits against its FP32 source on real dev examples
(one sentence or a pair, tokenised as the task's model sees them), recorded in its manifest, and an
error above `measure.parity_atol`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.backends.onnx.export import export_onnx
from bench.backends.runtime import Runtime, load_runtime, predict_logits
from bench.common.errors import ParityError
from bench.spec.measure import DEFAULT_THREADS
from bench.tasks.table import Texts

log = logging.getLogger(__name__)

PARITY_BATCH = 16


def parity(reference: Runtime | np.ndarray, candidate: Runtime, tokenizer, texts: Texts | list[str], max_length: int,
           batch_size: int = PARITY_BATCH) -> dict:
    """Max |Δlogit| of two runtimes on the same padded batches (length-sorted, as the accuracy pass batches),
    and for a classification head their argmax agreement (None for a regression head: one output, no label
    to agree on). `reference` may be its logits already computed on those batches (reference_logits)."""
    ref = reference if isinstance(reference, np.ndarray) else predict_logits(reference, tokenizer, texts, max_length,
                                                                             batch_size)
    cand = predict_logits(candidate, tokenizer, texts, max_length, batch_size)
    classify = ref.ndim == 2 and ref.shape[-1] > 1
    agree = int((ref.argmax(-1) == cand.argmax(-1)).sum())
    return {"parity_max_abs_diff": float(np.abs(ref - cand).max()),
            "parity_label_agreement": agree / len(ref) if classify else None, "parity_samples": len(ref)}


# Every conversion of one model (ONNX, fused, INT8 dynamic and static, PyTorch INT8: 8 per model in
# sst2-cpu) checks against the same source logits on the same examples: computed once per process.
_REFERENCE_LOGITS: dict[tuple, np.ndarray] = {}


def _folder_state(folder: Path) -> tuple:
    """Names, sizes and mtimes of a folder's files: a source changed in place is not served stale logits."""
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()))


def reference_logits(source_dir: Path, reference_format: str, device: str, tokenizer, texts: Texts | list[str],
                     max_length: int, batch_size: int = PARITY_BATCH) -> np.ndarray:
    """The FP32 source's logits on `texts` in parity batches, memoised per (source folder and its files,
    runtime, device, examples, max_length, batch)."""
    from bench.backends.onnx.quantize import calibration_hash  # the examples' sha256, pairs included

    key = (str(Path(source_dir).resolve()), _folder_state(Path(source_dir)), reference_format, device,
           calibration_hash(texts), max_length, batch_size)
    if key not in _REFERENCE_LOGITS:
        if len(_REFERENCE_LOGITS) >= 8:
            _REFERENCE_LOGITS.pop(next(iter(_REFERENCE_LOGITS)))
        reference = load_runtime(reference_format, source_dir, device, threads=DEFAULT_THREADS)
        _REFERENCE_LOGITS[key] = predict_logits(reference, tokenizer, texts, max_length, batch_size)
    return _REFERENCE_LOGITS[key]


def check_parity(source_dir: Path, candidate: Runtime, name: str, texts: Texts | list[str], max_length: int,
                 atol: float | None, device: str = "cpu", reference_format: str = "pytorch") -> dict:
    """Parity of `candidate` against the FP32 source model in source_dir (PyTorch, or the graph itself
    for an ONNX source measured as it is); fails loudly above atol."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    ref = reference_logits(source_dir, reference_format, device, tokenizer, texts, max_length)
    result = parity(ref, candidate, tokenizer, texts, max_length)
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
    candidate = load_runtime("onnx", out_dir, "cpu", threads=DEFAULT_THREADS)
    return check_parity(model_dir, candidate, name, texts, max_length, atol)
