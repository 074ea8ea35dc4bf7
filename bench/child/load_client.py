"""MLCommons LoadGen's Server scenario against an HTTP server: `python -m bench.child.load_client SPEC OUT`.

LoadGen schedules the queries (Poisson arrivals at `target_qps`, dev examples drawn by its seeded sample
index generator) and measures each one's latency from its scheduled issue to our completion call; this
module is its system under test: every issued query becomes one POST /predict from an asyncio client
(aiohttp: httpx's connection pool slows quadratically with thousands of queued requests and became the
bottleneck under overload) on a thread of its own, never waiting for an earlier answer (open loop), and is
completed when the answer, an error or the request timeout comes. The percentiles are LoadGen's own (its detail log);
errors, dropped requests (503 or no answer in time) and the answers are ours.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

from bench.schema.load import LoadResult, LoadSpec


def _label(answer: dict) -> int | float:
    return answer["label"] if "label" in answer else answer["score"]


class HttpSut:
    """LoadGen's SUT: issue_queries hands each query to the asyncio loop and returns at once."""

    def __init__(self, spec: LoadSpec, lg):
        self.spec, self.lg = spec, lg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="http-client", daemon=True)
        self.client = None  # an aiohttp session, made on the loop's thread
        self.issue_times: list[float] = []
        self.answers: dict[int, int | float] = {}
        self.errors = self.dropped = 0
        self.first_error: str | None = None
        self.lock = threading.Lock()

    def issue_queries(self, samples) -> None:
        now = time.perf_counter()
        for s in samples:
            self.issue_times.append(now)
            asyncio.run_coroutine_threadsafe(self._one(s.id, s.index), self.loop)

    def flush_queries(self) -> None:
        pass

    async def open(self) -> None:
        import aiohttp

        # `total`: from the query's turn on the loop to the whole answer, a wait for a connection included.
        self.client = aiohttp.ClientSession(
            self.spec.url, timeout=aiohttp.ClientTimeout(total=self.spec.request_timeout_s),
            connector=aiohttp.TCPConnector(limit=512))

    async def _one(self, query_id: int, index: int) -> None:
        item = self.spec.items[index]
        failure, dropped = None, False
        try:
            async with self.client.post("/predict", json={"text": item}) as response:
                if response.status == 200:
                    self.answers[index] = _label((await response.json())["predictions"][0])
                else:
                    dropped = response.status == 503
                    failure = f"HTTP {response.status}: {(await response.text())[:200]}"
        except TimeoutError:
            dropped, failure = True, f"no answer within request_timeout_s={self.spec.request_timeout_s:g}"
        except Exception as exc:  # refused, reset: the server is down or failing
            failure = f"{type(exc).__name__}: {exc}"
        if failure:
            with self.lock:
                self.dropped += dropped
                self.errors += not dropped
                self.first_error = self.first_error or failure
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(query_id, 0, 0)])

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def loadgen_results(detail_log: Path) -> dict:
    """LoadGen's `result_*` entries from its detail log (`:::MLLOG {json}` lines)."""
    results = {}
    for line in detail_log.read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            entry = json.loads(line[len(":::MLLOG "):])
            if entry.get("key", "").startswith("result_"):
                results[entry["key"]] = entry["value"]
    return results


def run_load(spec: LoadSpec) -> LoadResult:
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    settings.scenario, settings.mode = lg.TestScenario.Server, lg.TestMode.PerformanceOnly
    settings.server_target_qps = spec.target_qps
    settings.server_target_latency_ns = int(spec.p99_bound_ms * 1e6)
    settings.server_target_latency_percentile = 0.99
    settings.min_duration_ms = int(spec.duration_s * 1e3)
    settings.max_duration_ms = int(spec.duration_s * 1e3) + 1
    settings.min_query_count = 1  # the duration decides how many: LoadGen's default is MLPerf's 270,336
    settings.qsl_rng_seed = settings.sample_index_rng_seed = settings.schedule_rng_seed = spec.seed
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    out = lg.LogOutputSettings()
    out.outdir, out.copy_summary_to_stdout = str(spec.log_dir), False
    log_settings = lg.LogSettings()
    log_settings.log_output, log_settings.enable_trace = out, False

    sut = HttpSut(spec, lg)
    sut.thread.start()
    asyncio.run_coroutine_threadsafe(sut.open(), sut.loop).result(timeout=10)
    n = len(spec.items)
    handle = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
    qsl = lg.ConstructQSL(n, n, lambda _: None, lambda _: None)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        lg.StartTestWithLogSettings(handle, qsl, settings, log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
        sut.close()
    client_cpu_pct = 100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    r = loadgen_results(spec.log_dir / "mlperf_log_detail.txt")
    ms = {k: r[f"result_{q}_percentile_latency_ns"] / 1e6 for k, q in (("p50", "50.00"), ("p90", "90.00"),
                                                                        ("p99", "99.00"))}
    issued = len(sut.issue_times)
    meets = ms["p99"] <= spec.p99_bound_ms and sut.errors == 0 and sut.dropped == 0
    t0 = sut.issue_times[0] if sut.issue_times else 0.0
    return LoadResult(
        target_qps=spec.target_qps, scheduled_qps=round(r["result_scheduled_samples_per_sec"], 3),
        completed_qps=round(r["result_completed_samples_per_sec"], 3), issued=issued,
        answered=issued - sut.errors - sut.dropped, errors=sut.errors, dropped=sut.dropped,
        first_error=sut.first_error, p50_ms=round(ms["p50"], 3), p90_ms=round(ms["p90"], 3),
        p99_ms=round(ms["p99"], 3), mean_ms=round(r["result_mean_latency_ns"] / 1e6, 3),
        max_ms=round(r["result_max_latency_ns"] / 1e6, 3), loadgen_valid=r.get("result_validity") == "VALID",
        meets_bound=meets, client_cpu_pct=round(client_cpu_pct, 1), answers=sut.answers,
        issue_times_s=[round(t - t0, 6) for t in sut.issue_times])


def main(argv: list[str]) -> int:
    spec = LoadSpec.model_validate_json(Path(argv[0]).read_bytes())
    if spec.cpus:
        import os

        os.sched_setaffinity(0, set(spec.cpus))
    result = run_load(spec)
    out = Path(argv[1])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json())
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
