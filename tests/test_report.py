"""Report from golden results files: Markdown, self-contained HTML, PNG plots, CSV, seeds."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd

from bench.cli import main
from bench.report.plots import pareto_mask
from bench.report.write import summarise, write_report
from bench.store.results import load_results

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_pareto_mask():
    cost = pd.Series([1.0, 2.0, 3.0, 2.0, 4.0])
    value = pd.Series([80.0, 85.0, 90.0, 84.0, 89.0])
    assert pareto_mask(cost, value).tolist() == [True, True, True, False, False]


def test_summary_relative_to_teacher():
    s = summarise(load_results(GOLDEN / "baseline")).set_index("label")
    teacher = s.loc["teacher pytorch fp32 t1"]
    assert teacher["speedup"] == 1.0 and teacher["delta_pts"] == 0 and teacher["retained_pct"] == 100
    student = s.loc["student onnx fp32 t1"]
    rows = {r["variant_id"]: r for r in map(json.loads, (GOLDEN / "baseline" / "results.jsonl").read_text().splitlines())}
    t, st = rows["teacher-pytorch-fp32-cpu-t1"], rows["student-onnx-fp32-cpu-t1"]
    assert student["speedup"] == t["latency_p50_ms"] / st["latency_p50_ms"]
    assert abs(student["delta_pts"] - (st["accuracy"] - t["accuracy"]) * 100) < 1e-9


def test_report_files(tmp_path, capsys):
    assert main(["report", str(GOLDEN / "baseline"), "--out", str(tmp_path)]) == 0
    out = tmp_path / "baseline"
    names = {p.name for p in out.iterdir()}
    assert {"index.md", "index.html", "results.csv", "size_vs_accuracy.png", "latency_vs_accuracy.png",
            "speedup.png", "memory.png"} <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "src=\"http" not in html  # self-contained
    md = re.sub(r" +", " ", (out / "index.md").read_text())
    assert "| teacher | pytorch | fp32 | plain | cpu | 1 |" in md and "![speedup](speedup.png)" in md
    assert len(pd.read_csv(out / "results.csv")) == 4


def test_seeds_show_mean_and_std(tmp_path):
    # Two runs of the same variants with different seeds: one line per variant, mean ± std.
    second = tmp_path / "seed2"
    shutil.copytree(GOLDEN / "accuracy_drop", second)
    rows = [json.loads(x) for x in (second / "results.jsonl").read_text().splitlines()]
    (second / "results.jsonl").write_text("".join(json.dumps(r | {"seed": 43}) + "\n" for r in rows))
    write_report([GOLDEN / "baseline", second], tmp_path / "reports", name="both")
    md = (tmp_path / "reports" / "both" / "index.md").read_text()
    assert "## Accuracy per seed" in md
    s = summarise(pd.concat([load_results(GOLDEN / "baseline"), load_results(second)])).set_index("label")
    assert s.loc["student onnx fp32 t1", "seeds"] == "42, 43"
    assert s.loc["student onnx fp32 t1", "accuracy_std"] > 0 and pd.isna(s["accuracy_std"]).sum() == 0


def test_html_renders_in_headless_chromium(tmp_path):
    import subprocess

    from conftest import skip_or_fail_in_ci

    if shutil.which("chromium") is None:
        skip_or_fail_in_ci("chromium not installed (apt-get install chromium); scripts/screenshot_report.sh needs it")
    write_report(GOLDEN / "baseline", tmp_path, name="r")
    shot = tmp_path / "shot.png"
    script = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.sh"
    subprocess.run(["bash", str(script), str(tmp_path / "r" / "index.html"), str(shot), "1200x1600"],
                   check=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    # Not a blank page: the embedded plots put many distinct colours on screen.
    colours = {tuple(p) for p in (pixels[::8, ::8, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 50


def test_offline_table_in_report(tmp_path):
    run = tmp_path / "off"
    shutil.copytree(GOLDEN / "baseline", run)
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):  # distinct throughputs per row and batch size
        # Offline entries as the worker writes them (the reader checks them against the schema).
        r["offline"] = [{"scenario": "Offline", "batch_size": b, "sort_by_length": True, "samples": 64,
                         "batches": -(-64 // b), "passes": 1, "samples_per_s": 100.0 * b + i,
                         "tokens_per_s": 1000.0 * b, "padded_tokens_per_s": 1200.0 * b, "padding_pct": 16.67,
                         "wall_s": 1.5} for b in (1, 8)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_report(run, tmp_path / "reports", name="off")
    md = re.sub(r" +", " ", (tmp_path / "reports" / "off" / "index.md").read_text())
    assert "## Offline throughput (whole dev set per batch size)" in md
    ok = [r for r in rows if r["status"] == "ok"]
    assert md.count("| True |") == 2 * len(ok)  # one line per measured row and batch size
    first = ok[0]
    label = f"{first['model']} {first['format']} {first['precision']} t{first['threads']}"
    assert f"| {label} | 8 | True | {800 + rows.index(first):g} | 8000 | 9600 | 16.67 | 1.5 |" in md
    assert "offline" not in pd.read_csv(tmp_path / "reports" / "off" / "results.csv").columns
