"""Models as they are: a checkpoint already fine-tuned for the task (`finetune: null` for the
teacher, `distill: null` for a student) is measured and compressed without training, and an ONNX
file or optimum-style folder is measured without re-export.

Its head is checked against the task before anything is built: the number of labels, and the label
names when the checkpoint has real ones (not transformers' LABEL_0, LABEL_1 placeholders), in the
task's order. An ONNX graph must take only inputs the tokenizer produces.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from bench.common.errors import BenchError
from bench.tasks.table import Task

TOKENIZER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PLACEHOLDER = re.compile(r"^LABEL_\d+$")
ONNX_SIDECARS = (".json", ".txt", ".model")  # config, tokenizer files, sentencepiece models


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def check_head(config: dict, task: Task, field: str, spec: str) -> None:
    """The checkpoint's classification head must fit the task: label count, then label names/order."""
    labels = config.get("num_labels") or len(config.get("id2label") or {}) or None
    if labels is None:
        return  # nothing declared: transformers' default (2) is checked at load
    if labels != task.num_labels:
        what = "a regression (1 output)" if task.is_regression else f"{task.num_labels} labels"
        raise BenchError(f"{field}: {spec} has a {labels}-label head, task {task.name} needs {what}; "
                         "use a checkpoint fine-tuned for this task, or fine-tune it (remove `finetune: null`)")
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    if task.is_regression or not id2label or all(_PLACEHOLDER.match(str(v)) for v in id2label.values()):
        return
    theirs = [_norm(id2label.get(i, "")) for i in range(labels)]
    ours = [_norm(n) for n in task.label_names]
    if theirs != ours:
        raise BenchError(f"{field}: {spec} labels are {[id2label.get(i) for i in range(labels)]}, task {task.name} "
                         f"expects {list(task.label_names)} in that order")


def onnx_model_file(path: Path) -> Path | None:
    """The graph of an ONNX source: the file itself, or model.onnx in an optimum-style folder."""
    if path.is_file() and path.suffix == ".onnx":
        return path
    if path.is_dir() and (path / "model.onnx").is_file() and not any(path.glob("*.safetensors")):
        return path / "model.onnx"
    return None


def is_onnx_source(source: str) -> bool:
    """Whether a suite's `source:` names an ONNX graph (measured as it is, in format onnx only): a local
    .onnx file or optimum-style folder; hub ids and `package:` / `tiny:` sources never are."""
    if not source or ":" in source:
        return False
    try:
        return onnx_model_file(Path(source).expanduser()) is not None
    except RuntimeError:  # `~name` for a user that does not exist: not a graph (the source check says why)
        return False


def check_onnx_source(graph: Path, task: Task | None, field: str) -> None:
    """Inputs the tokenizer produces, a tokenizer next to the graph, and an output width fitting the task."""
    import onnx

    folder = graph.parent
    if not (folder / "tokenizer.json").is_file():
        raise BenchError(f"{field}: {graph}: no tokenizer.json next to the ONNX file (save the tokenizer there: "
                         "tokenizer.save_pretrained(folder))")
    model = onnx.load(str(graph), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    unknown = [n for n in inputs if n not in TOKENIZER_INPUTS]
    if unknown or "input_ids" not in inputs:
        raise BenchError(f"{field}: {graph} takes inputs {inputs}; the tokenizer produces {list(TOKENIZER_INPUTS)} "
                         "(export with optimum: `optimum-cli export onnx --task text-classification`)")
    if task is None:
        return
    dims = model.graph.output[0].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
    if (folder / "config.json").is_file():
        check_head(json.loads((folder / "config.json").read_text()), task, field, str(graph))
    elif width and width != task.num_labels:
        raise BenchError(f"{field}: {graph} outputs {width} logits, task {task.name} needs {task.num_labels}")


def import_onnx(graph: Path, out: Path) -> dict:
    """Copy an ONNX source (graph, external data, tokenizer and config files) into an artifact folder."""
    shutil.copy2(graph, out / "model.onnx")
    for f in graph.parent.iterdir():
        if f.is_file() and f != graph and (f.suffix in ONNX_SIDECARS or f.name.startswith(graph.name + "_data")
                                           or f.suffix == ".onnx_data") and f.name != "manifest.json":
            shutil.copy2(f, out / f.name)
    return {"format": "onnx", "imported_from": str(graph)}


def load_as_is(source, task: Task, field: str, trust_remote_code: bool = False):
    """(model, tokenizer) of a checkpoint fine-tuned for the task, head kept and checked."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    where = str(source.path) if source.path else source.spec
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        check_head(config.to_dict(), task, field, source.spec)
        tokenizer = AutoTokenizer.from_pretrained(where, use_fast=True, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            where, use_safetensors=not source.pickle, trust_remote_code=trust_remote_code)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchError(f"{field}: cannot load {source.spec!r}: {first}") from None
    if not tokenizer.is_fast:
        raise BenchError(f"{field}: {source.spec!r} has no fast tokenizer")
    return model, tokenizer


def save_as_is(source, task: Task, field: str, out: Path, trust_remote_code: bool = False) -> dict:
    """The as-is model's artifact: safetensors weights and tokenizer, as a trained model's would be."""
    model, tokenizer = load_as_is(source, task, field, trust_remote_code)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"as_is": True, "source": source.spec, "format": "pytorch"}
