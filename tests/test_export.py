import pytest

from bench.backends.runtime import load_runtime
from bench.build.parity import export_with_parity, parity
from bench.common.errors import ParityError
from bench.tasks.sources import load_for_classification, parse_source

SENTENCES = ["a warm , funny film .", "dull .", "the plot goes nowhere and the jokes fall flat .",
             "one of the best performances of the year"] * 4


@pytest.fixture
def tiny_model_dir(tmp_path):
    src = parse_source("tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=200")
    model, tok = load_for_classification(src, 2, corpus=SENTENCES * 5, seed=0)
    out = tmp_path / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_onnx_export_matches_pytorch_with_dynamic_axes(tiny_model_dir, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    info = export_with_parity(tiny_model_dir, out, SENTENCES, max_length=32, atol=1e-4)
    assert info["parity_max_abs_diff"] < 1e-4 and info["parity_label_agreement"] == 1.0
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file()
    import onnx

    dims = [d.dim_param for d in onnx.load(out / "model.onnx").graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch_size", "sequence_length"]
    # Different batch sizes and lengths run through the same graph.
    from transformers import AutoTokenizer

    ort_rt = load_runtime("onnx", out, "cpu", 1)
    tok = AutoTokenizer.from_pretrained(out)
    for batch in (SENTENCES[:1], SENTENCES[:7]):
        logits = ort_rt.logits(ort_rt.run(ort_rt.prepare(dict(tok(batch, padding=True, return_tensors="np")))))
        assert logits.shape == (len(batch), 2)


def test_parity_failure_is_loud(tiny_model_dir, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    with pytest.raises(ParityError, match=r"max \|Δlogit\| .* > parity_atol 1e-15"):
        export_with_parity(tiny_model_dir, out, SENTENCES, max_length=32, atol=1e-15)


def test_parity_detects_a_different_model(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    src = parse_source("tiny:layers=2,hidden=32,heads=2,intermediate=64,vocab=200")
    other, tok = load_for_classification(src, 2, corpus=SENTENCES * 5, seed=1)
    other.save_pretrained(tmp_path / "other")
    tok.save_pretrained(tmp_path / "other")
    result = parity(load_runtime("pytorch", tiny_model_dir, "cpu", 1), load_runtime("pytorch", tmp_path / "other", "cpu", 1),
                    AutoTokenizer.from_pretrained(tiny_model_dir), SENTENCES, 32)
    assert result["parity_max_abs_diff"] > 1e-3
