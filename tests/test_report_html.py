"""The report's Markdown and HTML come from one list of sections: every Markdown section is in the HTML,
and the golden runs' Markdown is unchanged byte for byte (tests/golden/reports/<name>.md)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.report.write import write_report

GOLDEN = Path(__file__).resolve().parent / "golden"


def _full_run(tmp_path: Path) -> Path:
    """The golden baseline plus training facts, a latency grid, Offline entries, a failed and a skipped
    variant, stage wall times, machine and data: every section the report can have."""
    run = tmp_path / "full"
    shutil.copytree(GOLDEN / "baseline", run)
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):
        if r["format"] == "pytorch":
            r |= {"train_s_per_epoch": 12.5 + i, "train_rows": 160,
                  "train_loss_terms": "soft+hard" if r["model"] == "student" else None}
        r["latency_grid"] = [{"batch": b, "seq_len": s, "p50_ms": 3.25 + i + b * s / 100, "p90_ms": 4.0 + i,
                              "n": 20, "samples_per_s": 300.0, "tokens_per_s": 9600.0} for b in (1, 8) for s in (16, 64)]
        r["offline"] = [{"scenario": "Offline", "batch_size": b, "sort_by_length": True, "samples": 64, "batches": 8,
                         "passes": 1, "wall_s": 1.5, "samples_per_s": 4321.0 + i, "tokens_per_s": 1000.0 * b,
                         "padded_tokens_per_s": 1200.0 * b, "padding_pct": 16.67} for b in (1, 8)]
    failed = {k: rows[0][k] for k in ("schema_version", "run_id", "suite", "task", "model", "device", "seed")}
    rows.append(failed | {"variant_id": "student-tensorrt-int8-cuda-t1", "format": "tensorrt", "precision": "int8",
                          "threads": 1, "status": "failed", "error": "engine build <failed> & gave up"})
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = json.loads((run / "run.json").read_text())
    info |= {"skipped": [{"variant": "teacher-onnx-int8-static-cpu-t1", "reason": "no calibration data"}],
             "stages": {"train": {"wall_s": 41.2, "build_time_s": 40.0, "reused": False}},
             "data": {"origin": "glue-tsv:fixtures", "train_rows": 160, "eval_rows": 64},
             "environment": {"cpu": {"model": "Test CPU", "logical_cores": 2, "flags": {"avx2": True}},
                             "memory_gb": 8, "python": "3.12", "versions": {"torch": "2.0"}, "git_sha": "abc123"}}
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_html_has_every_markdown_section(tmp_path):
    out = write_report(_full_run(tmp_path), tmp_path / "reports", name="full").parent
    md, page = (out / "index.md").read_text(), (out / "index.html").read_text()
    titles = re.findall(r"^## (.+)$", md, flags=re.M)
    assert {"Variants", "Training", "Latency grid (p50 ms, batch × sequence length)",
            "Offline throughput (whole dev set per batch size)", "Plots", "Failed variants", "Skipped variants",
            "Stage wall times (baseline)"} <= set(titles)
    for title in titles:
        assert f"<h2>{title}</h2>" in page, title
    # Values from the training, grid and Offline tables, the bullet lists and the notes.
    assert "soft+hard" in page and "12.5" in page  # training
    assert "b8×64" in page and "8.37" in page  # grid header and teacher pytorch b8×64 p50 (3.25 + 5.12)
    assert "4321" in page and "16.67" in page  # offline
    assert "engine build &lt;failed&gt; &amp; gave up" in page  # failed, escaped
    assert "teacher-onnx-int8-static-cpu-t1: no calibration data" in page
    assert "Machine: Test CPU" in page and "Data: glue-tsv:fixtures" in page
    assert "Dynamic padding per batch" in page and "Speedup: teacher PyTorch FP32 p50" in page
    assert "41.2" in page and "<td>train</td>" in page  # stage wall times
    assert page.count("data:image/png;base64,") == 5 and 'src="http' not in page
    assert "| train | 41.2 | 40.0 | False |" in md


@pytest.mark.parametrize("name", ["baseline", "regressed_latency", "noise", "accuracy_drop", "multi"])
def test_golden_markdown_unchanged(tmp_path, name):
    dirs = [GOLDEN / "baseline", GOLDEN / "noise"] if name == "multi" else [GOLDEN / name]
    out = write_report(dirs, tmp_path, name=name)
    assert out.read_text(encoding="utf-8") == (GOLDEN / "reports" / f"{name}.md").read_text(encoding="utf-8")
