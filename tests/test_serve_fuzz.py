"""A property-based fuzz test of `bench serve`'s HTTP API (issue 30): arbitrary JSON values and raw byte
bodies (invalid UTF-8, lone surrogates, deep nesting, huge numbers, NaN/Infinity literals, duplicate keys,
wrong content types). Every bad body gets a 4xx with a one-line `{"error": ...}`; every good one gets 200
with the accuracy pass's answers; after each case a good request is still answered correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.backends.runtime import predict_logits
from bench.serve.app import create_app
from bench.serve.model import Predictor
from bench.serve.spec import from_artifact_dir

DEV = [line.split("\t")[0] for line in (FIXTURE_DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:]]
WORDS = sorted({w for t in DEV for w in t.split()})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import write_tiny_onnx_artifact

    model_dir: Path = write_tiny_onnx_artifact(tmp_path_factory.mktemp("tiny-onnx-fuzz"))
    (model_dir / "config.json").write_text(json.dumps({"id2label": {"0": "negative", "1": "positive"}}))
    spec = from_artifact_dir(model_dir)
    predictor = Predictor(spec)

    def expected(texts: list[str]) -> list[int]:
        return predict_logits(predictor.runtime, predictor.tokenizer, texts, spec.max_length).argmax(-1).tolist()

    with TestClient(create_app(spec, predictor)) as client:
        yield client, spec, expected


def _valid_text(value) -> bool:
    if not isinstance(value, str) or len(value) > 20_000:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def oracle(value) -> list[str] | None:
    """The texts a valid request asks about, or None for a bad one (from docs/serving.md's table)."""
    if not isinstance(value, dict) or set(value) - {"text", "texts"} or len(value) != 1:
        return None
    if "text" in value:
        return [value["text"]] if _valid_text(value["text"]) else None
    texts = value["texts"]
    if not isinstance(texts, list) or not 1 <= len(texts) <= 256 or not all(_valid_text(t) for t in texts):
        return None
    return texts


# texts: fixture words, arbitrary Unicode (lone surrogates included), control characters
texts = st.one_of(
    st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lo"]), max_size=10),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["text", "texts", "txt", ""]) | texts, inner,
                                                 max_size=3)), max_leaves=12)
requests = st.one_of(
    st.builds(lambda t: {"text": t}, texts),
    st.builds(lambda ts: {"texts": ts}, st.lists(texts, min_size=0, max_size=6)),
    json_values,
)


def _encode(value, ensure_ascii: bool) -> bytes:
    # ensure_ascii: a lone surrogate becomes the escape "\ud800" (as a hostile client writes it); otherwise
    # it is written raw with surrogatepass (bytes that are not UTF-8). NaN/Infinity become literals.
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b'{"texts": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b"{" * n),
    st.integers(min_value=4000, max_value=50_000).map(lambda n: b'{"text": ' + b"9" * n + b"}"),
    st.sampled_from([b'{"text": NaN}', b'{"text": Infinity}', b'{"texts": [-Infinity]}', b'{"text": 1e999}',
                     b'{"text": "a", "text": "a"}', b'{"text": "\\ud800"}', b'{"text": "\\udc00x\\ud800"}',
                     b'{"text": "ok"}\x00', b"\xef\xbb\xbf{}", b"", b"null", b'"\\u0000"', b'{"text": "\xc3"}']),
)
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "", "application/json; charset=latin-1"])


def _check_one(client, expected, body: bytes, content_type: str, value=None, known=False):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/predict", content=body, headers=headers)
    assert r.status_code != 500, r.text
    good = oracle(value) if known else None
    if good is not None:
        assert r.status_code == 200, (body[:200], r.text)
        labels = [a["label"] for a in r.json()["predictions"]]
        assert labels == expected(good)
    elif r.status_code == 200:  # a raw body that happens to be a good request: check its answers
        good = oracle(json.loads(body))
        assert good is not None, body[:200]
        assert [a["label"] for a in r.json()["predictions"]] == expected(good)
    else:
        assert 400 <= r.status_code < 500, (body[:200], r.status_code, r.text)
        error = r.json()["error"]
        assert set(r.json()) == {"error"} and isinstance(error, str) and error
        assert "\n" not in error and "Traceback" not in error
    after = client.post("/predict", json={"text": DEV[0]})
    assert after.status_code == 200 and after.json()["predictions"][0]["label"] == expected([DEV[0]])[0]


FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@FUZZ
@given(value=requests, ensure_ascii=st.booleans(), content_type=content_types)
def test_fuzzed_json_requests_get_200_with_the_accuracy_pass_answers_or_a_one_line_4xx(served, value,
                                                                                     ensure_ascii, content_type):
    client, _spec, expected = served
    body = _encode(value, ensure_ascii)
    # written raw, a lone surrogate is not UTF-8: the body is bad whatever the value says
    known = body.decode("utf-8", "replace").encode("utf-8") == body and "NaN" not in body.decode("utf-8", "replace") \
        and "Infinity" not in body.decode("utf-8", "replace")
    _check_one(client, expected, body, content_type, value, known=known)


@FUZZ
@given(body=raw_bodies, content_type=content_types)
def test_fuzzed_raw_bodies_never_get_a_500(served, body, content_type):
    client, _spec, expected = served
    _check_one(client, expected, body, content_type)
