"""`bench serve`'s app on a tiny real ONNX model: the answers equal the accuracy pass's labels, dynamic
batching changes how requests are grouped but not what they get, every malformed request gets a 4xx with
a one-line message and the service goes on serving, and the real server process (uvicorn on loopback)
starts, answers, refuses a 10 MB body and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import FIXTURE_DATA
from fastapi.testclient import TestClient

from bench.backends.runtime import predict_logits
from bench.cli import main
from bench.serve.app import create_app
from bench.serve.batcher import Batcher, Overloaded
from bench.serve.model import Predictor
from bench.serve.spec import ServeSpec, from_artifact_dir
from bench.spec.measure import BatchingConfig

DEV = [line.split("\t")[0] for line in (FIXTURE_DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def model_dir(tiny_onnx_artifact) -> Path:
    (tiny_onnx_artifact / "config.json").write_text(json.dumps({"id2label": {"0": "negative", "1": "positive"}}))
    return tiny_onnx_artifact


def _spec(model_dir: Path, **kwargs) -> ServeSpec:
    return from_artifact_dir(model_dir, **kwargs)


def test_answers_equal_the_accuracy_pass_labels_with_and_without_batching(model_dir):
    spec = _spec(model_dir)
    predictor = Predictor(spec)
    logits = predict_logits(predictor.runtime, predictor.tokenizer, DEV, spec.max_length)
    offline = logits.argmax(-1).tolist()
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    offline_scores = probs[np.arange(len(DEV)), offline]
    assert np.ptp(offline_scores) > 1e-4  # the scores differ per sentence: matching them is not trivial
    for batching in ({"max_batch": 1}, {"max_batch": 8, "max_wait_ms": 5}):
        app = create_app(spec.model_copy(update={"batching": BatchingConfig(**batching)}), predictor)
        with TestClient(app) as client:
            one_by_one = [client.post("/predict", json={"text": t}).json()["predictions"][0] for t in DEV]
            listed = client.post("/predict", json={"texts": DEV}).json()["predictions"]
        for answers in (one_by_one, listed):
            assert [a["label"] for a in answers] == offline
            assert [a["name"] for a in answers] == [["negative", "positive"][k] for k in offline]
            np.testing.assert_allclose([a["score"] for a in answers], offline_scores, atol=1e-5)


BAD_REQUESTS = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"texts": []}', 422, "texts: the list is empty"),
    (b'{"texts": ["fine", 3]}', 422, "texts[1]: expected a string, got int"),
    (b'{"text": {"a": 1}}', 422, "text: expected a string, got dict"),
    (b'{"texts": "one string"}', 422, "texts: expected a list, got str"),
    (b'["a list"]', 422, "expected a JSON object"),
    (b'{"text": "a", "texts": ["b"]}', 422, "exactly one of"),
    (b'{"txt": "typo"}', 422, "txt: unknown field"),
    (b'{"texts": ["x"' + b', "x"' * 300 + b"]}", 422, "over the limit of 256 (max_texts)"),
    (b'{"text": "' + b"a" * 20_001 + b'"}', 422, "over the limit of 20000 (max_text_chars)"),
    (b'{"text": "' + b"a" * (10 * 2**20) + b'"}', 413, "over the limit of 1048576 bytes"),
    # issue 30: each of these was a 500 (RecursionError in the decoder; the fast tokenizer's TypeError)
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    (b'{"text": "\\ud800 alone"}', 422, "text: not valid Unicode"),
    (b'{"texts": ["fine", "\\udfff"]}', 422, "texts[1]: not valid Unicode"),
    (b'{"text": ' + b"1" * 5000 + b"}", 400, "not valid JSON"),
    (b'{"text": NaN}', 400, "NaN is not a JSON number"),
    (b'{"text": "a", "text": "b"}', 400, 'the key "text" is given twice'),
    (b"\xff\xfe{}", 400, "not UTF-8"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_REQUESTS, ids=[b[2][:24] for b in BAD_REQUESTS])
def test_a_malformed_request_gets_a_4xx_one_line_message_and_the_service_keeps_serving(model_dir, body, status,
                                                                                     message):
    with TestClient(create_app(_spec(model_dir), Predictor(_spec(model_dir)))) as client:
        r = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status
        error = r.json()["error"]
        assert message in error and "\n" not in error and "Traceback" not in error
        ok = client.post("/predict", json={"text": DEV[0]})
        assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] in (0, 1)


def test_a_pair_task_takes_pairs_only(model_dir):
    spec = _spec(model_dir, pair=True)
    with TestClient(create_app(spec, Predictor(spec))) as client:
        assert client.post("/predict", json={"texts": [["a good film", "it was fine"]]}).status_code == 200
        r = client.post("/predict", json={"text": "not a pair"})
        assert r.status_code == 422 and "expected [first, second]" in r.json()["error"]


def test_unknown_routes_and_methods_answer_in_the_same_one_line_shape(model_dir):
    with TestClient(create_app(_spec(model_dir), Predictor(_spec(model_dir)))) as client:
        assert client.get("/nope").json() == {"error": "Not Found"}
        assert client.get("/predict").status_code == 405
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["labels"] == ["negative", "positive"]


# ------------------------------------------------------------------ the batcher, on its own


def _echo(items: list) -> np.ndarray:
    """A 'model' returning each item's length: answers can be matched to requests."""
    time.sleep(0.01)
    return np.array([[len(x)] for x in items])


async def _submit_all(batcher: Batcher, requests: list[list[str]]):
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(r) for r in requests))
    finally:
        await batcher.stop()


def test_the_batcher_groups_waiting_requests_up_to_max_batch_and_answers_each_its_own():
    requests = [["a" * (i + 1)] for i in range(10)]
    batcher = Batcher(_echo, max_batch=4, max_wait_ms=50)
    out = asyncio.run(_submit_all(batcher, requests))
    assert [o.ravel().tolist() for o in out] == [[i + 1] for i in range(10)]
    c = batcher.counters
    assert c.requests == 10 and c.texts == 10 and c.max_batch_texts == 4 and c.batches == 3  # 4 + 4 + 2


def test_without_batching_every_request_is_its_own_pass_and_a_large_request_is_never_split():
    batcher = Batcher(_echo, max_batch=1)
    asyncio.run(_submit_all(batcher, [["x"]] * 5))
    assert batcher.counters.batches == 5
    big = Batcher(_echo, max_batch=4, max_wait_ms=20)
    out = asyncio.run(_submit_all(big, [["a"] * 6, ["bb"]]))
    assert out[0].shape == (6, 1) and out[1].ravel().tolist() == [2]
    assert big.counters.max_batch_texts == 6


def test_the_batcher_refuses_past_max_queue_and_passes_model_errors_to_every_request_of_the_batch():
    async def overfill():
        b = Batcher(_echo, max_batch=1, max_queue=3)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(["a", "b", "c"]))
            await asyncio.sleep(0)
            with pytest.raises(Overloaded, match="max_queue 3"):
                await b.submit(["d"])
            await first
        finally:
            await b.stop()

    asyncio.run(overfill())

    def broken(items):
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        asyncio.run(_submit_all(Batcher(broken, max_batch=4, max_wait_ms=10), [["a"], ["b"]]))


# ------------------------------------------------------------------ the real server process


def _start_server(spec: ServeSpec, tmp_path: Path):
    spec_path = tmp_path / "serve.json"
    spec_path.write_text(spec.model_dump_json())
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve.process", str(spec_path), "--fd", str(sock.fileno())],
                            pass_fds=[sock.fileno()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sock.close()
    for _ in range(300):
        try:
            httpx.get(url + "/health", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.communicate()[0].decode())


def test_the_server_process_answers_refuses_a_10_mb_body_and_stops_cleanly(model_dir, tmp_path):
    proc, url = _start_server(_spec(model_dir, batching={"max_batch": 4, "max_wait_ms": 2}), tmp_path)
    try:
        assert httpx.get(url + "/health").json()["batching"] == {"max_batch": 4, "max_wait_ms": 2.0}
        r = httpx.post(url + "/predict", content=b"x" * (10 * 2**20), headers={"content-type": "application/json"},
                       timeout=30)
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
        r = httpx.post(url + "/predict", json={"texts": DEV[:3]})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode in (0, -15) and "Traceback" not in out


def test_bench_serve_bad_input_is_one_line_and_exit_2(model_dir, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    cases = [([str(tmp_path / "run")], "say which variant to serve with --variant"),
             ([str(tmp_path / "missing")], "no such run directory or model folder"),
             ([str(model_dir), "--max-batch", "0"], "--max-batch: Input should be greater than 0"),
             ([str(tmp_path)], "no config.json")]
    for argv, message in cases:
        assert main(["serve", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
