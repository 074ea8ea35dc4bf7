"""ONNX FP32 export with optimum-onnx (dynamic batch and sequence axes), and the sidecar files every
artifact folder carries. The parity check every artifact goes through is bench/build/parity.py."""

from __future__ import annotations

import shutil
from pathlib import Path


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
