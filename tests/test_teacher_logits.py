"""`teacher.logits_runtime`: the cached teacher logits students distil from, computed by the PyTorch
teacher (the default) or by its parity-checked ONNX export in onnxruntime."""

from __future__ import annotations

import json

import numpy as np
from conftest import FIXTURE_DATA, TINY_SUITE

from bench.cli import main


def _logits_artifact(results):
    (folder,) = [p for p in (results / "artifacts").glob("teacher-logits-*") if p.is_dir()]
    return folder, json.loads((folder / "manifest.json").read_text())


def test_onnx_logits_match_pytorch_logits_and_key_apart(write_suite, tmp_path):
    base = TINY_SUITE.format(data=FIXTURE_DATA / "sst2", n_train=160, n_eval=64)
    onnx_text = base.replace("  source: tiny:", "  logits_runtime: onnx\n  source: tiny:")
    assert onnx_text != base
    runs = {}
    for name, text in (("pytorch", base), ("onnx", onnx_text)):
        results = tmp_path / name
        assert main(["train", str(write_suite(text, f"{name}.yaml")), "--results-dir", str(results)]) == 0
        runs[name] = _logits_artifact(results)

    (pt_dir, pt), (ox_dir, ox) = runs["pytorch"], runs["onnx"]
    assert pt["spec"].get("runtime") is None and pt["info"]["runtime"] == "pytorch"
    assert ox["spec"]["runtime"] == "onnx" and ox["info"]["runtime"] == "onnx"
    assert pt["key"] != ox["key"]  # one cache never hands PyTorch logits to an ONNX-logits suite
    # Same teacher (same key), and the ONNX logits come from its export, which the cache keeps.
    assert pt["parents"]["teacher"] == ox["parents"]["teacher"] and "onnx-teacher" in ox["parents"]
    assert any((tmp_path / "onnx" / "artifacts").glob("onnx-teacher-*"))
    a, b = np.load(pt_dir / "train_logits.npy"), np.load(ox_dir / "train_logits.npy")
    assert a.shape == b.shape == (160, 2)
    assert np.abs(a - b).max() < 1e-3  # the export's parity tolerance (measure.parity_atol)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a).max() > 1e-2  # not all zeros: real logits on both sides
