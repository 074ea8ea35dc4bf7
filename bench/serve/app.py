"""The HTTP app: POST /predict and GET /health (FastAPI).

/predict takes `{"text": T}` or `{"texts": [T, ...]}`, where T is a string, or `[first, second]` for a
sentence-pair task, and answers `{"predictions": [{"label", "name", "score"}, ...]}` (a regression:
`{"score"}`) in the same order. Every bad request gets a 4xx whose body is `{"error": "<one line>"}`
naming what was wrong: bad JSON 400, a body over the limit 413, a wrong shape or type 422; a full queue
503. The body is read up to `max_body_bytes` and no further bytes are kept.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bench.serve.batcher import Batcher, Overloaded
from bench.serve.spec import ServeSpec


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes `limit` bytes (the rest is drained, not kept, so the client gets
    the answer instead of a reset connection)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        async for _ in request.stream():
            pass
        raise BadRequest(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes (max_body_bytes)")
    body, seen = bytearray(), 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen <= limit:
            body += chunk
    if seen > limit:
        raise BadRequest(413, f"body of {seen} bytes is over the limit of {limit} bytes (max_body_bytes)")
    return bytes(body)


def _no_duplicate_keys(pairs: list) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise BadRequest(400, f"body is not valid JSON: the key {json.dumps(key)} is given twice")
        seen[key] = value
    return seen


def _no_constant(name: str):
    raise BadRequest(400, f"body is not valid JSON: {name} is not a JSON number")


def parse_body(body: bytes) -> Any:
    """The body as JSON, or a 400 saying why not. Strict where Python's decoder is lenient or fails
    with something other than JSONDecodeError: NaN/Infinity literals and a key given twice are refused,
    nesting past the interpreter's recursion limit is 400 (not a RecursionError), an integer of more
    digits than Python will convert is 400 (not a ValueError)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # int('1' * 5000): Python's limit on integer digits
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None


def _check_text(name: str, part: str) -> None:
    """A text the tokenizer can take: valid Unicode (no lone UTF-16 surrogate, which JSON's `\\ud800`
    escape can produce and the fast tokenizer refuses with a TypeError)."""
    try:
        part.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(422, f"{name}: not valid Unicode: {exc.reason} ({ascii(exc.object[exc.start:exc.end])} "
                              f"at character {exc.start})") from None


def parse_items(payload: Any, spec: ServeSpec) -> list:
    """The request's texts as model inputs: strings, or (first, second) pairs for a pair task."""
    limits = spec.limits
    if not isinstance(payload, dict):
        raise BadRequest(422, f"body: expected a JSON object with `text` or `texts`, got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"text", "texts"})
    if unknown:
        raise BadRequest(422, f"{unknown[0]}: unknown field (expected `text` or `texts`)")
    if ("text" in payload) == ("texts" in payload):
        raise BadRequest(422, "body: give exactly one of `text` (one input) or `texts` (a list)")
    if "text" in payload:
        raw, names = [payload["text"]], ["text"]
    else:
        raw = payload["texts"]
        if not isinstance(raw, list):
            raise BadRequest(422, f"texts: expected a list, got {type(raw).__name__}")
        if not raw:
            raise BadRequest(422, "texts: the list is empty")
        if len(raw) > limits.max_texts:
            raise BadRequest(422, f"texts: {len(raw)} texts is over the limit of {limits.max_texts} (max_texts)")
        names = [f"texts[{i}]" for i in range(len(raw))]
    items = []
    for name, item in zip(names, raw, strict=True):
        parts = item if spec.pair else [item]
        if spec.pair and not (isinstance(item, list) and len(item) == 2):
            raise BadRequest(422, f"{name}: this task takes sentence pairs: expected [first, second]")
        for part in parts:
            if not isinstance(part, str):
                raise BadRequest(422, f"{name}: expected a string, got {type(part).__name__}")
            if len(part) > limits.max_text_chars:
                raise BadRequest(422, f"{name}: {len(part)} characters is over the limit of "
                                      f"{limits.max_text_chars} (max_text_chars)")
            _check_text(name, part)
        items.append(tuple(parts) if spec.pair else item)
    return items


def answers(outputs: np.ndarray, label_names: list[str] | None) -> list[dict]:
    """One answer per output row: the label, its name and its softmax probability (a regression: the score)."""
    if label_names is None:
        return [{"score": float(np.asarray(o).reshape(-1)[0])} for o in outputs]
    logits = np.asarray(outputs, dtype=np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = logits.argmax(-1)
    return [{"label": int(k), "name": label_names[int(k)], "score": round(float(p[k]), 6)}
            for k, p in zip(labels, probs, strict=True)]


def create_app(spec: ServeSpec, predict) -> FastAPI:
    """The app for `spec`; `predict(items) -> logits` runs the model (bench.serve.model.Predictor)."""
    batcher = Batcher(predict, spec.batching.max_batch, spec.batching.max_wait_ms, spec.limits.max_queue)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"bench serve: {spec.variant_id}", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(_request, exc: HTTPException):  # 404, 405: the same one-line body
        return _error(exc.status_code, f"{exc.detail}")

    @app.exception_handler(Exception)
    async def _unexpected(_request, exc: Exception):  # never a traceback to the client
        return _error(500, f"{type(exc).__name__}: {exc}")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "variant": spec.variant_id, "format": spec.format, "precision": spec.precision,
                "device": spec.device, "threads": spec.threads, "pair": spec.pair,
                "labels": spec.label_names, "batching": spec.batching.model_dump(),
                "limits": spec.limits.model_dump(), "served": batcher.counters.as_dict()}

    @app.post("/predict")
    async def predict_route(request: Request):
        try:
            body = await _read_body(request, spec.limits.max_body_bytes)
            payload = parse_body(body)
            items = parse_items(payload, spec)
            outputs = await batcher.submit(items)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except Overloaded as exc:
            return _error(503, f"server overloaded: {exc}")
        return {"predictions": answers(outputs, spec.label_names)}

    return app
