"""Dynamic input shapes or static sequence-length buckets for OpenVINO at batch 1: which is faster on this CPU?

bench compiles OpenVINO IRs with dynamic shapes (`openvino_config` in a row says so). This measures the
alternative an OpenVINO user would try: the IR reshaped to [1, L] for a few bucket lengths L, each compiled
once, every dev example padded (attention mask 0) to the smallest bucket that holds it. Both sides run the
real dev stream at batch 1 with the latency hint and pinned f32/threads, in alternating rounds; the logits
of the two must agree within --atol first (exit 1 otherwise). SST-2's dev.tsv (a `sentence` column).

    python scripts/openvino_shapes.py IR_DIR --data ../shared/data/sst2/dev.tsv --threads 1 --rounds 6
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def dev_sentences(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def main() -> int:
    sys.path.insert(0, str(REPO))
    import openvino as ov

    from bench.backends.openvino.runtime import compile_for
    from bench.backends.tokenizer import FastTokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ir_dir", type=Path)
    p.add_argument("--data", type=Path, required=True, help="SST-2 dev.tsv")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="fp32", help="fp32 or int8-static (f32 float ops either way)")
    p.add_argument("--buckets", default="16,32,64,128")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--atol", type=float, default=0.05, help="max |logit difference| bucketed vs dynamic")
    a = p.parse_args()

    tok = FastTokenizer(a.ir_dir)
    encodings = [tok([s], truncation=True, max_length=a.max_length) for s in dev_sentences(a.data)]
    buckets = sorted(int(b) for b in a.buckets.split(","))
    if buckets[-1] < a.max_length:
        p.error(f"--buckets: the largest, {buckets[-1]}, must hold --max-length {a.max_length}")
    core, xml = ov.Core(), a.ir_dir / "openvino_model.xml"
    dynamic, facts = compile_for(core, xml, "CPU", a.threads, a.precision, "LATENCY")
    static = {}
    for length in buckets:
        model = core.read_model(str(xml))
        model.reshape({i.get_any_name(): ov.PartialShape([1, length]) for i in model.inputs})
        static[length], _ = compile_for(core, model, "CPU", a.threads, a.precision, "LATENCY")

    names = [i.get_any_name() for i in dynamic.inputs]

    def padded(enc: dict) -> tuple[int, dict]:
        n = enc["input_ids"].shape[1]
        length = next(b for b in buckets if b >= n)
        return length, {k: np.pad(enc[k], ((0, 0), (0, length - n))).astype(np.int64) for k in names}

    dyn_inputs = [{k: enc[k].astype(np.int64) for k in names} for enc in encodings]
    bucket_inputs = [padded(enc) for enc in encodings]
    dyn_req = dynamic.create_infer_request()
    reqs = {length: c.create_infer_request() for length, c in static.items()}
    worst = max(float(np.abs(dyn_req.infer(x)[0] - reqs[n].infer(y)[0]).max())
                for x, (n, y) in zip(dyn_inputs[:64], bucket_inputs[:64], strict=True))

    if worst > a.atol:  # padding to a bucket must not change the answer
        print(f"bucketed logits differ from the dynamic ones by {worst:.3g} > --atol {a.atol}", file=sys.stderr)
        return 1

    def time_dynamic() -> list[float]:
        out = []
        for x in dyn_inputs:
            t = time.perf_counter()
            dyn_req.infer(x, share_inputs=True)
            out.append((time.perf_counter() - t) * 1e3)
        return out

    def time_buckets() -> list[float]:
        out = []
        for n, y in bucket_inputs:
            t = time.perf_counter()
            reqs[n].infer(y, share_inputs=True)
            out.append((time.perf_counter() - t) * 1e3)
        return out

    time_dynamic(), time_buckets()  # warm-up: every shape once
    dyn_p50, bucket_p50 = [], []
    for r in range(a.rounds):  # alternate which side goes first
        sides = [(time_dynamic, dyn_p50), (time_buckets, bucket_p50)]
        for fn, acc in (sides if r % 2 == 0 else sides[::-1]):
            acc.append(statistics.median(fn()))
    ratios = [b / d for d, b in zip(dyn_p50, bucket_p50, strict=True)]
    result = {"ir": a.ir_dir.name, "threads": a.threads, "precision": a.precision,
              "inference_precision": facts["inference_precision"], "buckets": buckets, "examples": len(encodings),
              "max_abs_logit_diff": worst, "dynamic_p50_ms": statistics.median(dyn_p50),
              "buckets_p50_ms": statistics.median(bucket_p50),
              "buckets_over_dynamic": round(statistics.median(ratios), 3),
              "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)], "rounds": a.rounds,
              "padding_pct": round(100 * (1 - sum(e["input_ids"].shape[1] for e in encodings)
                                          / sum(n for n, _ in bucket_inputs)), 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
