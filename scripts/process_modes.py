"""Does a variant's speed depend on the process it runs in? p50 of the same ONNX model in N fresh
processes, one after another, each loading the model as bench's measuring child does.

    python scripts/process_modes.py ART_DIR [ART_DIR ...] --processes 12 [--data ../shared/data/sst2]

Each process: OrtRuntime (all ORT optimisations, sequential, --threads intra-op), the first
--sentences dev sentences at batch 1 (tokenised before timing), 20 warmup calls, then the p50 of two
passes. The processes of the models alternate (A B A B ...), so a slow minute of the machine lands on
both. A model whose per-process p50s fall into two clusters has a bimodal per-process speed: one
isolated measurement of it can land in either (docs/measurement.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from bench.backends.onnx.runtime import OrtRuntime
from bench.backends.tokenizer import FastTokenizer
art, data, n, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
lines = (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:n + 1]
sentences = [ln.split("\t")[0] for ln in lines]
rt, tok = OrtRuntime(art / "model.onnx", "cpu", threads), FastTokenizer(art)
stream = [rt.prepare(tok([s], truncation=True, max_length=128)) for s in sentences]
for x in stream[:20]:
    rt.run(x)
times = []
for _ in range(2):
    for x in stream:
        t0 = time.perf_counter_ns(); rt.run(x); times.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps({"p50_ms": float(np.median(times))}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--processes", type=int, default=12)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "sst2")
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    p50s: dict[str, list[float]] = {str(art): [] for art in a.artifacts}
    for i in range(a.processes):
        for art in a.artifacts:
            out = subprocess.run([sys.executable, "-c", CHILD, str(art), str(a.data), str(a.sentences), str(REPO),
                                  str(a.threads)], capture_output=True, text=True, check=True).stdout
            p50s[str(art)].append(round(json.loads(out.strip().splitlines()[-1])["p50_ms"], 4))
            print(f"process {i + 1}: {art.name} {p50s[str(art)][-1]:.3f} ms", file=sys.stderr, flush=True)
    print("| model | processes | min ms | median ms | max ms | max / min | per-process p50s |")
    print("|---|---|---|---|---|---|---|")
    for art, xs in p50s.items():
        print(f"| {Path(art).name} | {len(xs)} | {min(xs):.3f} | {statistics.median(xs):.3f} | {max(xs):.3f} | "
              f"{max(xs) / min(xs):.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")
    if a.json:
        a.json.write_text(json.dumps(p50s, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
