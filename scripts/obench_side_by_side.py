"""optimum-benchmark 0.6 (pytorch backend) next to scripts/bare_loop.py on the same model folder,
batch, sequence length and threads, with variants that switch its suspected causes of slowness one
at a time. Runs in a SEPARATE venv that has optimum-benchmark (never bench's own):

    python -m venv /work/obench-venv && . /work/obench-venv/bin/activate
    pip install torch==2.13.0 && pip install 'optimum-benchmark==0.6.*' transformers==4.57.6
    python scripts/obench_side_by_side.py results/artifacts/teacher-<hash> --batch 1 32 --seq-len 16

Every variant and every bare loop runs in a fresh process, one after the other (this parent only
waits in subprocess.run). Variants (docs/optimum-benchmark.md explains them):

  process          optimum-benchmark's default: ProcessLauncher (spawn), latency tracker only
  process-memory   + scenario.memory=True (a psutil RSS sampler process)
  process-intra2   + backend.intra_op_num_threads=2 (what a user sets for "2 threads")
  process-inter1   + backend.inter_op_num_threads=1 (0.6 passes this to torch.set_num_threads)
  process-waiting  ProcessLauncher with its parent loop patched to block in poll(0.2) instead of
                   spinning; nothing else changed (the verification of the main cause)
  inline           InlineLauncher: the measurement runs in this process, no parent at all
  bare-t2, bare-t1 scripts/bare_loop.py --runtime pytorch, 2 and 1 intra-op threads

For the launcher variants the JSON also has the launching process's own CPU seconds during
Benchmark.launch (os.times of the parent only; the child's CPU is not in it) against its wall
seconds: a ratio near 1 means the parent kept one core busy while the child measured.
`--check-threads` only builds a PyTorchBackend with intra=1 / inter=2 and prints what torch got.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ["process", "process-memory", "process-intra2", "process-inter1", "process-waiting", "inline"]


def _patch_waiting_parent() -> None:
    """ProcessLauncher.launch of 0.6 with one change: `while alive and not poll(): pass` (a busy
    loop) becomes `while alive and not poll(0.2): pass` (blocks in select, like bench's wait)."""
    import pickle
    import tempfile
    from contextlib import ExitStack
    from multiprocessing import Pipe, Process

    from optimum_benchmark.benchmark.report import BenchmarkReport
    from optimum_benchmark.launchers.process import launcher as L
    from optimum_benchmark.process_utils import sync_with_child

    def launch(self, worker, worker_args):
        child_connection, parent_connection = Pipe()
        proc = Process(target=L.target, args=(worker, worker_args, child_connection, os.getpid(), self.logger),
                       daemon=False)
        with ExitStack():
            proc.start()
            sync_with_child(parent_connection)
            sync_with_child(parent_connection)
            while proc.is_alive() and not parent_connection.poll(0.2):  # the only change
                pass
        response = parent_connection.recv()
        if isinstance(response, str) and response.startswith(tempfile.gettempdir()):
            response = pickle.load(open(response, "rb"))
        if isinstance(response, str):
            raise ChildProcessError(response)
        return BenchmarkReport.from_dict(response)

    L.ProcessLauncher.launch = launch


def one(a: argparse.Namespace) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("LOG_TO_FILE", "0")
    from optimum_benchmark import (
        Benchmark,
        BenchmarkConfig,
        InferenceConfig,
        InlineConfig,
        ProcessConfig,
        PyTorchConfig,
    )

    v = a.one
    if v == "process-waiting":
        _patch_waiting_parent()
    threads = {"process-intra2": {"intra_op_num_threads": 2}, "process-inter1": {"inter_op_num_threads": 1}}.get(v, {})
    backend = PyTorchConfig(model=str(a.model_dir.resolve()), task="text-classification", library="transformers",
                            model_type="bert", device="cpu", **threads)
    scenario = InferenceConfig(latency=True, memory=(v == "process-memory"), energy=False,
                               input_shapes={"batch_size": a.batch[0], "sequence_length": a.seq_len},
                               warmup_runs=a.warmup, iterations=a.iterations, duration=a.duration)
    launcher = InlineConfig() if v == "inline" else ProcessConfig()
    config = BenchmarkConfig(name=f"obench-{v}", backend=backend, scenario=scenario, launcher=launcher,
                             log_report=False)
    t0, w0 = os.times(), time.perf_counter()
    report = Benchmark.launch(config)
    t1, wall = os.times(), time.perf_counter() - w0
    lat = report.forward.latency
    out = {"variant": v, "batch": a.batch[0], "seq_len": a.seq_len, "n": len(lat.values),
           "p50_ms": 1e3 * statistics.median(lat.values), "mean_ms": 1e3 * statistics.mean(lat.values),
           "launcher_wall_s": round(wall, 2), "threads_config": threads}
    if v != "inline":
        out["parent_cpu_s"] = round((t1.user + t1.system) - (t0.user + t0.system), 2)
    else:
        import torch

        out["torch_threads"] = [torch.get_num_threads(), torch.get_num_interop_threads()]
    return out


def check_threads(model_dir: Path) -> dict:
    import torch
    from optimum_benchmark import PyTorchConfig
    from optimum_benchmark.backends.pytorch.backend import PyTorchBackend

    before = [torch.get_num_threads(), torch.get_num_interop_threads()]
    PyTorchBackend(PyTorchConfig(model=str(model_dir.resolve()), task="text-classification", library="transformers",
                                 model_type="bert", device="cpu", intra_op_num_threads=1, inter_op_num_threads=2))
    return {"asked": {"intra_op_num_threads": 1, "inter_op_num_threads": 2}, "torch_before": before,
            "torch_after": [torch.get_num_threads(), torch.get_num_interop_threads()],
            "note": "[torch.get_num_threads() (intra-op), torch.get_num_interop_threads()]"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--variants", nargs="+", default=VARIANTS + ["bare-t2", "bare-t1"])
    p.add_argument("--duration", type=int, default=3, help="optimum-benchmark scenario.duration (s)")
    p.add_argument("--iterations", type=int, default=20, help="optimum-benchmark scenario.iterations (minimum)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", type=Path, help="append one JSON line per result here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--check-threads", action="store_true")
    a = p.parse_args()
    if a.check_threads:
        print(json.dumps(check_threads(a.model_dir)))
        return 0
    if a.one:
        print("RESULT " + json.dumps(one(a)), flush=True)
        return 0
    for batch in a.batch:
        for v in a.variants:
            load, started = os.getloadavg()[0], time.strftime("%H:%M:%S", time.gmtime())
            if v.startswith("bare-"):
                # about as many calls as optimum-benchmark makes in --duration seconds is not known in
                # advance; the bare loop's p50 settles within a few hundred calls at batch 1.
                iters = 300 if batch == 1 else 40
                cmd = [sys.executable, str(HERE / "bare_loop.py"), str(a.model_dir), "--runtime", "pytorch", "--batch",
                       str(batch), "--seq-len", str(a.seq_len), "--threads", v.split("-t")[1], "--warmup",
                       str(a.warmup), "--iterations", str(iters), "--json"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                res = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else \
                    {"error": proc.stderr[-2000:]}
                res["variant"] = v
            else:
                cmd = [sys.executable, __file__, str(a.model_dir), "--one", v, "--batch", str(batch), "--seq-len",
                       str(a.seq_len), "--duration", str(a.duration), "--iterations", str(a.iterations), "--warmup",
                       str(a.warmup)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                res = json.loads(lines[-1][7:]) if lines else \
                    {"variant": v, "error": (proc.stdout + proc.stderr)[-3000:]}
            res.update(load_avg_1m_at_start=round(load, 2), batch=batch, seq_len=a.seq_len,
                       started_utc=started)
            print(json.dumps(res), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
