"""Does bench time what a bare loop times? Runs bench's own grid cell (the worker's measure_grid,
with the memory sampler running, as in a real measurement) and scripts/bare_loop.py on the same
model folder at the same batch, sequence length and threads, each in a fresh process with the
environment bench gives its measuring child (--allocator: the same malloc policy on both sides),
alternating for --rounds rounds. Prints both p50s and their relative difference; exit 1 when it
exceeds --tolerance.

    python scripts/timing_agreement.py ARTIFACT_DIR --batch 1 --seq-len 64 --threads 2 --tolerance 0.03

The 3 % target is for an idle machine (see docs/measurement.md); tests use a generous tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def bench_side(a: argparse.Namespace) -> float:
    """In the child: bench's runtime adapter, tokenizer and grid loop, exactly as the worker uses them."""
    from bench.backends.runtime import load_runtime
    from bench.backends.tokenizer import FastTokenizer
    from bench.data.load import load_task_data
    from bench.measure.memory import PeakSampler
    from bench.scenarios.grid import measure_grid
    from bench.spec.suite import DataConfig

    sentences = load_task_data(DataConfig(path=a.data), "sst2", seed=0).sentences("validation")
    with PeakSampler():
        runtime = load_runtime(a.runtime, a.model_dir, "cpu", a.threads)
        [cell] = measure_grid(runtime, FastTokenizer(a.model_dir), sentences,
                              {"batch_sizes": [a.batch], "seq_lens": [a.seq_len], "min_iterations": a.iterations,
                               "min_seconds": 0})
    return cell["p50_ms"]


def cell_lengths(a: argparse.Namespace) -> list[int]:
    """Real tokens per row of the grid cell bench times (its sentences cut or padded to seq_len)."""
    from bench.backends.tokenizer import FastTokenizer
    from bench.data.load import load_task_data
    from bench.spec.suite import DataConfig

    sentences = load_task_data(DataConfig(path=a.data), "sst2", seed=0).sentences("validation")
    texts = [sentences[i % len(sentences)] for i in range(a.batch)]  # as measure_grid picks them
    enc = FastTokenizer(a.model_dir)(texts, truncation=True, max_length=a.seq_len, padding="max_length")
    return enc["attention_mask"].sum(1).tolist()


def _child(args: list[str], threads: int, allocator: str) -> float:
    from bench.launch.environment import child_env

    env = child_env(threads, allocator)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["p50_ms"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--runtime", choices=["onnx", "pytorch"], default=None, help="default: onnx if model.onnx exists")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=0.03, help="relative, e.g. 0.03 for 3 %%")
    p.add_argument("--allocator", choices=["system", "glibc-retain"], default="system",
                   help="measure.allocator: the malloc policy both sides get")
    default_data = Path(os.environ["BENCH_DATA_DIR"]) / "sst2" if os.environ.get("BENCH_DATA_DIR") else \
        REPO / "tests" / "fixtures" / "sst2"
    p.add_argument("--data", type=Path, default=default_data, help="GLUE SST-2 folder for bench's real sentences")
    p.add_argument("--json", action="store_true")
    p.add_argument("--side", choices=["bench"], help=argparse.SUPPRESS)  # internal: run one side in this process
    a = p.parse_args()
    a.runtime = a.runtime or ("onnx" if (a.model_dir / "model.onnx").is_file() else "pytorch")
    if a.side == "bench":
        print(json.dumps({"p50_ms": bench_side(a)}))
        return 0

    common = [str(a.model_dir), "--runtime", a.runtime, "--batch", str(a.batch), "--seq-len", str(a.seq_len),
              "--threads", str(a.threads), "--iterations", str(a.iterations)]
    sys.path.insert(0, str(REPO))
    lengths = ",".join(map(str, cell_lengths(a)))  # same padding on both sides
    bench_p50, bare_p50 = [], []
    for _ in range(a.rounds):  # alternate, so slow drift of the machine hits both sides alike
        bench_p50.append(_child([__file__, *common, "--data", str(a.data), "--side", "bench"], a.threads, a.allocator))
        # warmup 2: what measure_grid does before timing a cell
        bare_p50.append(_child([str(HERE / "bare_loop.py"), *common, "--warmup", "2", "--lengths", lengths, "--json"],
                               a.threads, a.allocator))
    bench_ms, bare_ms = statistics.median(bench_p50), statistics.median(bare_p50)
    diff = abs(bench_ms - bare_ms) / bare_ms
    result = {"runtime": a.runtime, "allocator": a.allocator, "lengths": lengths, "batch": a.batch,
              "seq_len": a.seq_len, "threads": a.threads,
              "bench_p50_ms": bench_ms, "bare_p50_ms": bare_ms, "rel_diff": diff, "tolerance": a.tolerance,
              "bench_rounds_ms": bench_p50, "bare_rounds_ms": bare_p50, "agree": diff <= a.tolerance}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"bench p50 {bench_ms:.4f} ms, bare loop p50 {bare_ms:.4f} ms: {100 * diff:.1f} % apart "
              f"({'within' if result['agree'] else 'OUTSIDE'} {100 * a.tolerance:g} %)")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
