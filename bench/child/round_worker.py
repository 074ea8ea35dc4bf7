"""Child process for interleaved speedup rounds: `python -m bench.child.round_worker SPEC.json [CPUS]`.

Loads one variant (a `ChildSpec`) and its dev stream exactly as the measuring worker does, warms up,
says `{"ready": ...}` on its protocol stream, then answers one request per line on stdin:
`{"start": S, "calls": N}` times N batch-1 calls on stream[(S + i) % len] and replies `{"ms": [...]}`
(one wall time per call); `quit` or end of input ends it. The parent (bench/launch/rounds.py) keeps
two of these alive and lets them take turns, so only one computes at a time. Anything the libraries
print goes to stderr (the log), never into the protocol. The test-only planted slowdown applies
here too, when the parent passes it on (bench.measure.stream.planted_slowdown_ms).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.schema.child import ChildSpec


def serve(spec: ChildSpec, requests, replies) -> None:
    from bench.measure.stream import load_stream, planted_slowdown_ms, slowed

    runtime, _, _, stream, load_time = load_stream(spec)
    planted_ms = planted_slowdown_ms()
    run = slowed(runtime.run, planted_ms) if planted_ms else runtime.run
    serve_loaded(spec, run, stream, requests, replies, {"load_time_s": round(load_time, 4)})


def serve_loaded(spec: ChildSpec, run, stream, requests, replies, ready: dict | None = None) -> None:
    """The protocol over a variant already loaded: warm up, say ready, answer rounds until `quit`. The
    measuring worker calls this after its result is written, so a variant's rounds need no second load."""
    warmup = spec.measure.interleave.warmup if spec.measure.interleave else 10
    for i in range(warmup):
        run(stream[i % len(stream)])
    replies.write(json.dumps({"ready": True, **(ready or {}), "stream": len(stream)}) + "\n")
    replies.flush()
    clock = time.perf_counter_ns
    for line in requests:
        if line.strip() == "quit":
            break
        request = json.loads(line)
        start, calls = int(request["start"]), int(request["calls"])
        times = []
        for i in range(calls):
            x = stream[(start + i) % len(stream)]
            t0 = clock()
            run(x)
            times.append((clock() - t0) / 1e6)
        replies.write(json.dumps({"ms": [round(t, 5) for t in times]}) + "\n")
        replies.flush()


def pin_all_threads(cpus: set[int]) -> None:
    """Every thread of this process onto `cpus` (a runtime's pool threads already exist: pinning only the
    calling thread would leave them where they were)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass  # a thread that ended meanwhile


def protocol_stream():
    """The real stdout for the protocol; whatever a library prints from now on lands in the log (stderr)."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return replies


def main(argv: list[str]) -> int:
    from bench.common.lifetime import die_with_parent

    die_with_parent()
    replies = protocol_stream()
    if len(argv) > 1:  # the cores to run on, shared with the other side of the rounds
        os.sched_setaffinity(0, {int(c) for c in argv[1].split(",")})
    spec = ChildSpec.model_validate_json(Path(argv[0]).read_bytes())
    serve(spec, sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
