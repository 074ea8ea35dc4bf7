"""Where an ONNX variant's time goes: ONNX Runtime's own profiler, aggregated by operator type.

    python scripts/ort_op_profile.py ART_DIR [ART_DIR ...] [--data DIR/sst2] [--threads 2] [--calls 300]

Each ART_DIR holds a model.onnx and its tokenizer (a bench artifact folder). The dev sentences are
run at batch 1 (tokenised outside the profile), the session profiled with `enable_profiling`, and
the kernel events (`cat: Node`) summed per op type: ms per inference and share of kernel time. The
sessions run one after another in this process with the same settings as bench's measuring child
(all graph optimisations, sequential, fixed intra-op threads), so the shares compare like for like.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import onnxruntime as ort


def dev_sentences(data_dir: Path, limit: int) -> list[str]:
    with open(data_dir / "dev.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[0] for r in rows[1:]][:limit]


def profile(art: Path, sentences: list[str], threads: int, calls: int) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(art)
    with tempfile.TemporaryDirectory(prefix="bench-ortprof-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(art / "model.onnx"), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        feeds = [{k: v for k, v in tok([s], return_tensors="np", truncation=True, max_length=128).items()
                  if k in names} for s in sentences]
        for i in range(calls):
            session.run(None, feeds[i % len(feeds)])
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3  # µs -> ms
    total = sum(per_op.values())
    return {"model": str(art), "calls": calls, "kernel_ms_per_inference": total / calls,
            "ops": {op: {"ms_per_inference": ms / calls, "share_pct": 100 * ms / total}
                    for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--data", type=Path, default=Path("../shared/data/sst2"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--json", type=Path, help="write every profile here too")
    a = p.parse_args()
    sentences = dev_sentences(a.data, a.sentences)
    results = [profile(art, sentences, a.threads, a.calls) for art in a.artifacts]
    for r in results:
        print(f"\n{r['model']}: {r['kernel_ms_per_inference']:.3f} ms of kernels per inference ({r['calls']} calls)")
        print(f"  {'op type':<28}{'ms/inference':>14}{'share':>9}")
        for op, v in r["ops"].items():
            if v["share_pct"] >= 0.5:
                print(f"  {op:<28}{v['ms_per_inference']:>14.4f}{v['share_pct']:>8.1f}%")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
