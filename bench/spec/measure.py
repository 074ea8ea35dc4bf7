"""The suite's `measure:` section: how each variant is timed (bench/measure/), and the optional grid,
Offline scenario and interleaved speedup rounds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from bench.spec.data import _as_list
from bench.spec.training import NonNegativeFloat, PositiveFloat, PositiveInt, _Strict

# measure.threads' default, and the threads every build-time parity check runs its runtimes with.
DEFAULT_THREADS = 2
# bench serve answers up to this many texts in one request and runs them as one batch: runtimes with fixed
# shape ranges (TensorRT profiles) cover it, and bench/serve/spec.py's Limits.max_texts defaults to it.
SERVE_MAX_TEXTS = 256


class GridConfig(_Strict):
    """Fixed-shape latency grid: real dev sentences truncated or padded to exactly seq_len tokens,
    batch_size at a time. Throughput (samples/s, tokens/s) follows from each cell's p50."""

    batch_sizes: Annotated[list[Annotated[int, Field(gt=0, le=1024)]], Field(min_length=1)] = [1, 8, 32]
    seq_lens: Annotated[list[Annotated[int, Field(ge=8, le=512)]], Field(min_length=1)] = [16, 64, 128]
    min_iterations: PositiveInt = 10
    min_seconds: NonNegativeFloat = 0.5


class OfflineConfig(_Strict):
    """MLPerf-like Offline scenario: the whole dev set at each batch size, dynamic padding per batch
    (tokenisation untimed); samples/s and tokens/s (real and padded) per batch size."""

    batch_sizes: Annotated[list[Annotated[int, Field(gt=0, le=1024)]], Field(min_length=1)] = [1, 8, 32]
    sort_by_length: bool = True  # order sentences by token count first: batches pad less
    min_seconds: NonNegativeFloat = 0.0  # repeat whole passes until this much time was timed; 0 = one pass


class InterleaveConfig(_Strict):
    """Speedup over the reference (the teacher in PyTorch FP32, same device and threads) measured in
    interleaved rounds: after a variant's own measurement, a long-lived reference process and one for
    the variant take turns (ABBA...), each timing the same `calls_per_round` dev examples at batch 1.
    The speedup is computed per round and reported as the median with an order-statistic interval, so
    a machine that drifts between minutes moves both sides of every ratio alike (bench/scenarios/interleave.py)."""

    rounds: Annotated[int, Field(ge=6, le=1000)] = 10  # 6+: the median's interval covers >= 95 %
    calls_per_round: PositiveInt = 50
    warmup: Annotated[int, Field(ge=0)] = 10  # untimed calls in each process before its first round


class ColdStartConfig(_Strict):
    """What a deployment that starts on demand pays before its first answer: `repeats` fresh processes per
    variant, each timing interpreter start, the runtime library's import, tokenizer load, model load and
    the first two calls (bench/scenarios/cold_start.py)."""

    repeats: Annotated[int, Field(ge=1, le=50)] = 3
    # Drop the artifact's files from the OS page cache before each start (posix_fadvise DONTNEED: no root
    # needed); the libraries' files stay cached. false: every start after the first reads a warm cache.
    evict_model_files: bool = True
    timeout_s: PositiveFloat = 300  # per start; over it the start is killed and the entry says so
    variants: Annotated[list[str], Field(min_length=1)] | None = None  # id patterns (`*-t1`) to start; None: all

    _lists = field_validator("variants", mode="before")(classmethod(lambda cls, v: _as_list(v)))


class EndToEndConfig(_Strict):
    """Text in, label out at batch 1 over the real dev examples: tokenisation (the fast tokenizer), the
    runtime's input conversion, the model, softmax and argmax, each call timed whole, the tokenizer's part
    on its own (bench/scenarios/end_to_end.py)."""

    warmup: Annotated[int, Field(ge=0)] = 10
    min_iterations: PositiveInt = 200
    min_seconds: NonNegativeFloat = 1.0


class OpProfileConfig(_Strict):
    """Per-operator time from the runtime's own profiler (bench/child/op_profile.py), in a separate
    profiled session after the timed loops: `calls` batch-1 calls over the dev stream."""

    calls: PositiveInt = 100
    # The shape profiled: batch 1 over the dev stream (default), or `batch` dev examples padded to
    # `seq_len` tokens in every call (as a grid cell; e.g. 32 x 128 for the roofline question).
    batch: Annotated[int, Field(gt=0, le=1024)] = 1
    seq_len: Annotated[int, Field(ge=8, le=512)] | None = None


class BatchingConfig(_Strict):
    """How the server groups concurrent requests (bench/serve/batcher.py): up to `max_batch` texts into one
    forward pass, waiting at most `max_wait_ms` after the first for more. max_batch 1: no batching."""

    max_batch: Annotated[int, Field(gt=0, le=1024)] = 1
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 0.0

    @property
    def label(self) -> str:
        return "off" if self.max_batch == 1 else f"max_batch={self.max_batch},max_wait_ms={self.max_wait_ms:g}"


class ServerConfig(_Strict):
    """MLPerf's Server scenario (bench/scenarios/server.py): each variant served over HTTP on 127.0.0.1 by
    `bench serve`'s app, one server per `batching` entry, loaded by MLCommons LoadGen with Poisson arrivals
    of the real dev sentences at each `target_qps` for `duration_s`. The highest rate whose p99 end-to-end
    latency stays within `p99_bound_ms`, with no errors and no dropped requests, is the row's max QPS."""

    target_qps: Annotated[list[Annotated[float, Field(gt=0, le=100_000)]], Field(min_length=1)] = [5, 10, 20, 40]
    duration_s: Annotated[float, Field(ge=1, le=3600)] = 10.0
    p99_bound_ms: PositiveFloat = 50.0
    batching: Annotated[list[BatchingConfig], Field(min_length=1)] = [BatchingConfig()]
    # Variant ids (shell-style patterns, `student-onnx-*`) to serve; default: every measured variant.
    variants: Annotated[list[str], Field(min_length=1)] | None = None
    # Rates above the first one that misses the bound are not run (they would miss it too), unless false.
    stop_at_first_miss: bool = True
    request_timeout_s: PositiveFloat = 10.0  # a request with no answer by then counts as dropped
    max_queue: Annotated[int, Field(gt=0)] = 1024  # texts waiting in the server; beyond: 503, dropped

    _lists = field_validator("target_qps", "variants", "batching", mode="before")(
        classmethod(lambda cls, v: _as_list(v)))

    @field_validator("target_qps")
    @classmethod
    def _ascending(cls, v: list[float]) -> list[float]:
        return sorted(set(v))


class MeasureConfig(_Strict):
    threads: Annotated[list[Annotated[int, Field(gt=0, le=1024)]], Field(min_length=1)] = [DEFAULT_THREADS]
    warmup: Annotated[int, Field(ge=0)] = 10
    # Latency loop runs until both are met, cycling through the real dev sentences at batch 1.
    min_iterations: PositiveInt = 200
    min_seconds: NonNegativeFloat = 2.0
    eval_batch_size: PositiveInt = 32
    timeout_s: PositiveFloat = 1800  # per variant; the child is killed and the row says "timeout"
    max_memory_mb: PositiveFloat | None = None  # per variant RSS budget; over it: killed, "memory-limit"
    parity_samples: PositiveInt | None = None  # dev sentences for parity checks; None = all
    parity_atol: PositiveFloat = 1e-3  # max |Δlogit| allowed between ONNX fp32 and PyTorch fp32
    # ONNX Runtime provider for onnx variants on cuda (needs onnxruntime-gpu): cuda, or tensorrt
    # (ORT's TensorRT provider, engines cached next to the model).
    ort_gpu_provider: Literal["cuda", "tensorrt"] = "cuda"
    grid: GridConfig | None = None  # also measure the batch x sequence-length grid (off by default)
    offline: OfflineConfig | None = None  # also measure the Offline scenario (off by default)
    # The measuring child's malloc policy. system: glibc's defaults, whose dynamic mmap threshold
    # makes PyTorch CPU latency depend on the heap's history (a fresh process mmaps and unmaps each
    # multi-MB activation: 11-14 % slower at batch 32). glibc-retain: fixed thresholds
    # (MALLOC_MMAP_THRESHOLD_ 32 MiB, MALLOC_TRIM_THRESHOLD_ 4 GiB) keep freed activations on the
    # heap, as in a long-running server. ONNX Runtime allocates from its own arena either way.
    allocator: Literal["system", "glibc-retain"] = "system"
    interleave: InterleaveConfig | None = None  # also measure the speedup in interleaved rounds (off by default)
    op_profile: OpProfileConfig | None = None  # also record where the time goes, per operator (off by default)
    server: ServerConfig | None = None  # also serve each variant and load it (Server scenario; off by default)
    cold_start: ColdStartConfig | None = None  # also start each variant in fresh processes (off by default)
    end_to_end: EndToEndConfig | None = None  # also time text in, label out at batch 1 (off by default)

    _lists = field_validator("threads", mode="before")(classmethod(lambda cls, v: _as_list(v)))


