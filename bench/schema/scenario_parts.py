"""The row parts the parent measures across processes, after the measuring child has returned: the
interleaved speedup (bench/scenarios/interleave.py), the Server scenario (bench/scenarios/server.py) and
cold starts (bench/scenarios/cold_start.py)."""

from __future__ import annotations

from typing import Literal

from bench.schema.part import Part, f


class Speedup(Part):
    """`measure.interleave`: the speedup over the reference in interleaved rounds (bench/scenarios/interleave.py)."""

    speedup_vs_reference: float | None = f("median over rounds of (reference ms per call / this variant's), "
                                           "both timing the same dev examples at batch 1, in alternating turns",
                                           None)
    speedup_ci_low: float | None = f("the median's order-statistic interval, low end", None)
    speedup_ci_high: float | None = f("... high end", None)
    speedup_ci_coverage: float | None = f("that interval's coverage (>= 0.95 from 6 rounds)", None)
    speedup_rounds: list[float] | None = f("the speedup of each round, in order", None)
    speedup_reference: str | None = f("the reference's variant id (teacher PyTorch FP32, same device and threads)",
                                      None)
    speedup_round_calls: int | None = f("batch-1 calls per side per round", None)
    speedup_error: str | None = f("why the rounds did not finish (the row's own measurement stands)", None)
    speedup_wall_s: float | None = f(
        "wall seconds of this variant's rounds (its measuring process serves them, already loaded; a process of "
        "its own only if that one could not), the reference process's start included on the first row that "
        "needs it", None)


class ServerLoad(Part):
    """One offered rate of the Server scenario (bench/child/load_client.py): LoadGen's percentiles, our counts."""

    target_qps: float
    scheduled_qps: float  # LoadGen: the rate it actually scheduled
    completed_qps: float  # LoadGen: completed samples per second
    issued: int
    answered: int
    errors: int  # failed requests: refused connections, 4xx/5xx other than 503
    dropped: int  # 503 (queue full) or no answer within request_timeout_s
    first_error: str | None = None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    loadgen_valid: bool  # LoadGen's verdict (includes its early-stopping query count)
    meets_bound: bool  # p99 within the bound, no errors, nothing dropped
    # the load generator's CPU time / wall time: near 100 (one core) it may be the bottleneck; null in older rows
    client_cpu_pct: float | None = None


class ServerEntry(Part):
    """One served configuration (one `measure.server.batching` entry) loaded at each rate
    (bench/scenarios/server.py)."""

    scenario: Literal["Server"]
    batching: str
    max_batch: int
    max_wait_ms: float
    p99_bound_ms: float
    duration_s: float
    loads: list[ServerLoad]
    max_qps: float | None = None
    not_run_qps: list[float] = []
    answers_compared: int | None = None
    label_agreement: float | None = None
    accuracy: float | None = None
    mean_batch_texts: float | None = None
    server_cpus: list[int] | None = None
    client_cpus: list[int] | None = None
    status: Literal["ok", "failed"]
    error: str | None = None


class ServerScenario(Part):
    """`measure.server`: the variant behind `bench serve`'s HTTP app under MLCommons LoadGen's Server scenario."""

    server: list[ServerEntry] | None = f(
        "one entry per `batching` setting (`scenario: Server`): `batching`, `max_batch`, `max_wait_ms`, "
        "`p99_bound_ms`, `duration_s`, `loads` (per offered rate: `target_qps`, `scheduled_qps`, `completed_qps`, "
        "`issued`, `answered`, `errors`, `dropped`, `p50_ms`/`p90_ms`/`p99_ms`/`mean_ms`/`max_ms` end to end, "
        "`loadgen_valid`, `meets_bound`, `client_cpu_pct`: the load generator's own CPU use), `max_qps`, "
        "`not_run_qps`, `label_agreement` (answers equal to the "
        "accuracy pass's predictions), `accuracy` (of the answers), `mean_batch_texts`, `server_cpus`, "
        "`client_cpus`, `status`, `error`", None)
    server_max_qps: float | None = f("the highest offered rate whose p99 stayed within `p99_bound_ms` with no errors "
                                     "or dropped requests, best over the batching settings; null when none did",
                                     None)
    server_max_qps_batching: str | None = f("the batching setting of `server_max_qps` (`off`, "
                                            "`max_batch=16,max_wait_ms=5`)", None)
    server_p99_bound_ms: float | None = f("the p99 bound the rates were judged against", None)


COLD_START_PHASES = ("interpreter", "import", "tokenizer_load", "model_load", "first_call", "second_call")


class ColdStart(Part):
    """`measure.cold_start`: fresh processes from spawn to the first answer (bench/scenarios/cold_start.py)."""

    cold_start_ms: float | None = f("median over the starts of spawn to the first answer, ms", None)
    cold_start_min_ms: float | None = f("the fastest start, ms", None)
    cold_start_max_ms: float | None = f("the slowest start, ms", None)
    cold_start_phases_ms: dict[str, float] | None = f(
        "median per phase, ms: `interpreter` (spawn to bench's entry point), `import` (the runtime library "
        "and the tokenizer library), `tokenizer_load`, `model_load` (session creation, engine "
        "deserialisation, weights), `first_call`, `second_call` (tokenisation included)", None)
    cold_start_runs_ms: list[float] | None = f("every start's spawn to first answer, ms, in order", None)
    cold_start_peak_rss_mb: float | None = f("median peak RSS of a start (VmHWM after the second call)", None)
    cold_start_file_cache: str | None = f("the OS page cache at each start: `model files evicted` (posix_fadvise "
                                          "DONTNEED before each start; the libraries stay cached) or `warm`", None)
    cold_start_error: str | None = f("why a start failed (the row's own measurement stands)", None)
