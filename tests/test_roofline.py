"""FLOP counts against hand-computed values, `bench calibrate`, and % of peak in the rows."""

import json

from bench.cli import main
from bench.measure.flops import bert_forward_flops, flops_for_config
from bench.store.results import read_rows


def test_flops_match_hand_count():
    # L=4 tokens, H=8, I=16, 1 layer, 2 labels:
    # projections 4*2*4*8*8 = 2048, attention 2*2*4*4*8 = 512, FFN 2*2*4*8*16 = 2048,
    # pooler 2*8*8 = 128, classifier 2*8*2 = 32  -> 4768 per sequence.
    assert bert_forward_flops(4, 8, 1, 16, 2) == 4768
    assert bert_forward_flops(4, 8, 1, 16, 2, batch=3) == 3 * 4768
    # Attention grows with L^2, the rest with L.
    assert bert_forward_flops(8, 8, 1, 16) - bert_forward_flops(4, 8, 1, 16) == 2048 + 2048 + (2 * 2 * 64 * 8 - 512)


def test_flops_for_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 1,
                                                      "intermediate_size": 16, "id2label": {"0": "a", "1": "b"}}))
    assert flops_for_config(tmp_path)(4) == 4768
    assert flops_for_config(tmp_path / "missing") is None


def test_calibrate_then_rows_show_percent_of_peak(tiny_suite, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["calibrate", "--threads", "1", "--seconds", "0.2", "--results-dir", str(results)]) == 0
    peak = json.loads((results / "calibration.json").read_text())["fp32_matmul_peak_gflops"]["1"]
    assert peak > 0
    suite = tiny_suite()
    suite.write_text(suite.read_text().replace("parity_samples: 16}", "parity_samples: 16, "
                                               "grid: {batch_sizes: [1, 4], seq_lens: [16], min_iterations: 3, min_seconds: 0}}"))
    assert main(["run", str(suite), "--results-dir", str(results), "--run-id", "r"]) == 0
    rows = read_rows(results / "tiny" / "r")
    for r in rows:
        assert r["fp32_peak_gflops"] == peak and r["gflops_per_s"] > 0
        assert abs(r["pct_of_fp32_peak"] - 100 * r["gflops_per_s"] / peak) < 0.01
        assert all(c["gflops_per_s"] > 0 for c in r["latency_grid"])
    assert json.loads((results / "tiny" / "r" / "run.json").read_text())["calibration"]["fp32_matmul_peak_gflops"]
