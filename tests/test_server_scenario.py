"""The Server scenario on a tiny real ONNX model over loopback: LoadGen's arrivals are Poisson (tested
statistically), the served answers equal the accuracy pass's predictions, a rate beyond the server's
capacity misses the p99 bound and stops the sweep, and a server killed mid-scenario gives an entry with
its status and the error instead of a hang."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from conftest import FIXTURE_DATA
from scipy import stats

from bench.backends.runtime import predict_labels
from bench.child.load_client import LoadSpec, run_load
from bench.scenarios import server as server_scenario
from bench.scenarios.base import Measured
from bench.scenarios.server import ServerProcess, ServerStage
from bench.schema.child import ChildSpec
from bench.serve.model import Predictor
from bench.serve.spec import ServeSpec
from bench.spec.measure import ServerConfig

LINES = [line.split("\t") for line in (FIXTURE_DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:]]
DEV, GOLD = [s for s, _ in LINES], [int(y) for _, y in LINES]


@pytest.fixture(scope="module")
def child_spec(tiny_onnx_artifact, tmp_path_factory) -> ChildSpec:
    """The spec `bench run` would give the measuring child, with the accuracy pass's predictions written."""
    spec = ChildSpec(variant={"model": "student", "format": "onnx", "precision": "fp32", "device": "cpu",
                              "threads": 1},
                     artifact_dir=tiny_onnx_artifact, max_length=48,
                     task={"name": "sst2", "label_names": ["negative", "positive"], "metrics": ["accuracy"]},
                     eval_sets=[{"name": "validation", "first": DEV, "labels": GOLD}],
                     predictions_path=tmp_path_factory.mktemp("pred") / "predictions.json")
    predictor = Predictor(ServeSpec.from_child_spec("tiny", spec))
    labels = predict_labels(predictor.runtime, predictor.tokenizer, DEV, 48).tolist()
    spec.predictions_path.write_text(json.dumps(labels))
    return spec


def test_loadgen_arrivals_are_poisson_at_the_target_rate(child_spec, tmp_path):
    server = ServerProcess(ServeSpec.from_child_spec("tiny", child_spec), tmp_path, "server", None, "system")
    try:
        server.wait_ready()
        result = run_load(LoadSpec(url=server.url, items=DEV, target_qps=100, duration_s=4, p99_bound_ms=200,
                                   log_dir=tmp_path / "lg"))
    finally:
        server.stop()
    gaps = np.diff(result.issue_times_s)
    assert len(gaps) > 300 and result.errors == 0 and result.dropped == 0
    assert 85 < 1 / gaps.mean() < 115  # the offered rate
    # Exponential gaps: a periodic or uniform schedule (CV ~0 or ~0.58) fails both checks.
    assert 0.85 < gaps.std() / gaps.mean() < 1.15
    assert stats.kstest(gaps, "expon", args=(0, 1 / 100)).pvalue > 1e-3
    # LoadGen's own percentiles, end to end, ordered.
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms


@pytest.mark.slow  # ~20 s: two servers, an overload that has to drain
def test_served_answers_equal_the_accuracy_pass_and_an_overload_misses_the_bound(child_spec, tmp_path):
    config = ServerConfig(target_qps=[20, 6000, 12000], duration_s=2, p99_bound_ms=100, request_timeout_s=5,
                          batching=[{"max_batch": 1}, {"max_batch": 8, "max_wait_ms": 2}])
    part = ServerStage(config, tmp_path).measure(Measured(child_spec.variant, child_spec))
    assert [e.batching for e in part.server] == ["off", "max_batch=8,max_wait_ms=2"]
    for entry in part.server:
        assert entry.status == "ok" and entry.scenario == "Server" and entry.error is None
        assert entry.label_agreement == 1.0 and entry.answers_compared > 0
        # 6000 qps of HTTP requests is well past what one core serves (2000-3600/s on our VMs at 4000 offered):
        # requests queue, so the p99 bound fails there, 20 qps is the max and 12000 is not run.
        assert [x.target_qps for x in entry.loads] == [20, 6000]
        overload = entry.loads[1]
        assert entry.loads[0].meets_bound and not overload.meets_bound
        # The miss is the queue's latency (not errors), and completions lag the schedule. How far they lag
        # depends on the CPU: at 4000 offered, a CI machine completed 3624 of 3954 scheduled qps (92%).
        assert overload.errors == 0 and overload.p99_ms > config.p99_bound_ms
        assert overload.completed_qps < overload.scheduled_qps
        assert entry.max_qps == 20 and entry.not_run_qps == [12000]
    assert part.server_max_qps == 20 and part.server_p99_bound_ms == 100
    assert part.server[1].mean_batch_texts > 1  # under overload, the batcher did group requests


class KilledServer(ServerProcess):
    """Killed (SIGKILL) one second after it came up."""

    def wait_ready(self, timeout_s: float = 300.0) -> dict:
        health = super().wait_ready(timeout_s)
        threading.Timer(1.0, self.proc.kill).start()
        return health


def test_a_server_killed_mid_scenario_gives_a_failed_entry_with_the_error_not_a_hang(child_spec, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setattr(server_scenario, "ServerProcess", KilledServer)
    config = ServerConfig(target_qps=[50, 60], duration_s=3, p99_bound_ms=100)
    t0 = time.monotonic()
    part = ServerStage(config, tmp_path).measure(Measured(child_spec.variant, child_spec))
    assert time.monotonic() - t0 < 60
    (entry,) = part.server
    assert entry.status == "failed" and "the server exited (killed by signal 9)" in entry.error
    assert "during the 50 qps load" in entry.error
    (load,) = entry.loads  # the rate it was killed in, and no later one
    assert load.errors > 0 and not load.meets_bound
    # Refused (after the kill), cut (in flight at the kill) or cut mid-body (ClientPayloadError, when the kill
    # lands while a response is being read): either way the connection failed.
    assert load.first_error.split(":")[0] in ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError",
                                              "ClientPayloadError")
    assert entry.max_qps is None and part.server_max_qps is None
