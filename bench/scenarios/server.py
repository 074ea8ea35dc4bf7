"""The Server scenario stage of `bench run` (`measure.server`): after a variant's own measurement, serve it
with `bench serve`'s app in a process of its own (one per `batching` setting) and load it with MLCommons
LoadGen (bench/child/load_client.py, a process of its own per offered rate), lowest rate first.

Where the machine has more cores than the variant's threads, the server runs on the last `threads` of them
and the load generator on the others, so the client's own CPU time is not taken from the model. The served
answers are compared with the predictions of the variant's accuracy pass. A server that dies, hangs or
never comes up makes the entry `failed` with the reason; the variant's own row stands.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.launch.environment import child_env, last_line
from bench.launch.rounds import shared_cpus
from bench.scenarios.base import Measured
from bench.schema.child import ChildSpec
from bench.schema.load import LoadResult, LoadSpec
from bench.schema.scenario_parts import ServerEntry, ServerLoad, ServerScenario
from bench.serve.spec import Limits, ServeSpec
from bench.spec.measure import BatchingConfig, ServerConfig

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300.0
WARMUP_REQUESTS = 20


def split_cpus(threads: int) -> tuple[list[int] | None, list[int] | None]:
    """(server cores, client cores): the last `threads` cores serve, the rest load; (None, None) when there
    are not more cores than threads (both share them) or the OS cannot pin."""
    server = shared_cpus(threads)  # the cores interleaved rounds use too
    if not server:
        return None, None
    return server, sorted(set(os.sched_getaffinity(0)) - set(server))


class ServerProcess:
    """`python -m bench.serve.process` on a socket bound here (127.0.0.1, a free port)."""

    def __init__(self, spec: ServeSpec, work_dir: Path, name: str, cpus: list[int] | None, allocator: str):
        work_dir.mkdir(parents=True, exist_ok=True)
        spec_path, self.log_path = work_dir / f"{name}.serve.json", work_dir / f"{name}.serve.log"
        spec_path.write_text(spec.model_dump_json())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        cmd = [sys.executable, "-m", "bench.serve.process", str(spec_path), "--fd", str(sock.fileno())]
        if cpus:
            cmd += ["--cpus", ",".join(map(str, cpus))]
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         pass_fds=[sock.fileno()], env=child_env(spec.threads, allocator))
        sock.close()  # the child holds it now

    def died(self) -> str | None:
        code = self.proc.poll()
        if code is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"the server exited ({how}): {last_line(self.log_path)} (log: {self.log_path})"

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> dict:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.died():
                raise RuntimeError(self.died())
            try:
                return httpx.get(self.url + "/health", timeout=2.0).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /health within {timeout_s:g} s (log: {self.log_path})")

    def health(self) -> dict | None:
        import httpx

        try:
            return httpx.get(self.url + "/health", timeout=5.0).json()
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _load(spec: LoadSpec, work_dir: Path, name: str, timeout_s: float) -> LoadResult:
    """One rate in a LoadGen child; raises RuntimeError with the reason when it fails or hangs."""
    spec_path, out_path, log_path = (work_dir / f"{name}.{ext}" for ext in ("load.json", "result.json", "log"))
    spec_path.write_text(spec.model_dump_json())
    out_path.unlink(missing_ok=True)
    with open(log_path, "w") as out:
        try:
            proc = subprocess.run([sys.executable, "-m", "bench.child.load_client", str(spec_path), str(out_path)],
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the load generator did not finish within {timeout_s:g} s (log: {log_path})") from None
    if proc.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"the load generator failed (exit code {proc.returncode}): {last_line(log_path)} "
                           f"(log: {log_path})")
    return LoadResult.model_validate_json(out_path.read_bytes())


def _items(spec: ChildSpec) -> list:
    primary = spec.eval_sets[0]
    if primary.second is None:
        return list(primary.first)
    return [[a, b] for a, b in zip(primary.first, primary.second, strict=True)]


class ServerStage:
    def __init__(self, config: ServerConfig, work_dir: Path, tag: str = "", seed: int = 0):
        self.config, self.work_dir, self.tag, self.seed = config, work_dir, tag, seed

    def selected(self, variant_id: str) -> bool:
        patterns = self.config.variants
        return patterns is None or any(fnmatch.fnmatchcase(variant_id, p) for p in patterns)

    def measure(self, measured: Measured) -> ServerScenario:
        """Every batching setting at every rate; the row's part."""
        variant_id, spec = measured.variant.id, measured.spec
        predictions = None
        if spec.predictions_path and Path(spec.predictions_path).is_file():
            predictions = json.loads(Path(spec.predictions_path).read_text())
        entries = [self._entry(variant_id, spec, b, predictions) for b in self.config.batching]
        best = max((e for e in entries if e.max_qps is not None), key=lambda e: e.max_qps, default=None)
        return ServerScenario(server=entries, server_max_qps=best.max_qps if best else None,
                              server_max_qps_batching=best.batching if best else None,
                              server_p99_bound_ms=self.config.p99_bound_ms)

    def _entry(self, variant_id: str, spec: ChildSpec, batching: BatchingConfig, predictions: list | None
               ) -> ServerEntry:
        cfg = self.config
        name = f"{variant_id}{self.tag}.server-{batching.label.replace(',', '-').replace('=', '')}"
        work = self.work_dir / name
        serve_spec = ServeSpec.from_child_spec(variant_id, spec, batching=batching,
                                               limits=Limits(max_queue=cfg.max_queue))
        server_cpus, client_cpus = split_cpus(spec.variant.threads)
        fields = {"scenario": "Server", "batching": batching.label, "max_batch": batching.max_batch,
                  "max_wait_ms": batching.max_wait_ms, "p99_bound_ms": cfg.p99_bound_ms, "duration_s": cfg.duration_s,
                  "server_cpus": server_cpus, "client_cpus": client_cpus}
        loads: list[LoadResult] = []
        error, not_run = None, []
        server = ServerProcess(serve_spec, work, "server", server_cpus, spec.measure.allocator)
        served = None
        try:
            server.wait_ready()
            self._warm(server, _items(spec))
            for i, qps in enumerate(cfg.target_qps):
                load = LoadSpec(url=server.url, items=_items(spec), target_qps=qps, duration_s=cfg.duration_s,
                                p99_bound_ms=cfg.p99_bound_ms, request_timeout_s=cfg.request_timeout_s,
                                seed=self.seed, log_dir=work / f"loadgen-{qps:g}qps", cpus=client_cpus)
                result = _load(load, work, f"load-{qps:g}qps", cfg.duration_s * 3 + cfg.request_timeout_s + 120)
                loads.append(result)
                if server.died():
                    raise RuntimeError(f"{server.died()} during the {qps:g} qps load")
                log.info("  server (%s) %g qps: p50 %.1f ms  p99 %.1f ms  %d errors  %d dropped%s", batching.label,
                         qps, result.p50_ms, result.p99_ms, result.errors, result.dropped,
                         "" if result.meets_bound else f"  (misses p99 <= {cfg.p99_bound_ms:g} ms)")
                if not result.meets_bound and cfg.stop_at_first_miss:
                    not_run = cfg.target_qps[i + 1:]
                    break
            served = (server.health() or {}).get("served")
        except RuntimeError as exc:
            error = str(exc)
        finally:
            server.stop()
        passing = [r.target_qps for r in loads if r.meets_bound]
        # The highest rate that met the bound with every lower rate run meeting it too.
        max_qps = None
        for r in loads:
            if not r.meets_bound:
                break
            max_qps = r.target_qps
        fields |= _agreement(loads, spec, predictions)
        return ServerEntry(**fields, loads=[ServerLoad(**r.model_dump(exclude={"answers", "issue_times_s"}))
                                            for r in loads],
                           max_qps=max_qps if passing else None, not_run_qps=not_run,
                           mean_batch_texts=(served or {}).get("mean_batch_texts"),
                           status="failed" if error else "ok", error=error)

    def _warm(self, server: ServerProcess, items: list) -> None:
        """A few requests before the first timed rate: the first calls after load are slow."""
        import httpx

        with httpx.Client(base_url=server.url, timeout=60) as client:
            for item in items[:WARMUP_REQUESTS]:
                client.post("/predict", json={"text": item}).raise_for_status()


def _agreement(loads: list[LoadResult], spec: ChildSpec, predictions: list | None) -> dict:
    """How many served answers equal the accuracy pass's prediction for the same dev example, and the
    answers' own accuracy against the gold labels (classification)."""
    answers = [(i, label) for r in loads for i, label in r.answers.items()]
    if not answers:
        return {}
    gold = spec.eval_sets[0].labels
    out = {"answers_compared": len(answers)}
    if predictions is not None:
        same = sum(math.isclose(label, predictions[i], rel_tol=1e-4, abs_tol=1e-4) if isinstance(label, float)
                   else label == predictions[i] for i, label in answers)  # a regression's score: float noise
        out["label_agreement"] = round(same / len(answers), 6)
    if spec.task.label_names is not None:
        out["accuracy"] = round(sum(label == gold[i] for i, label in answers) / len(answers), 6)
    return out
