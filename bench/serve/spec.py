"""What a server serves (`ServeSpec`), and where it comes from: a `bench run` directory and a variant id
(the measuring child's spec in logs/ names the artifact, task and max length exactly as measured), or a
bare artifact folder (its config.json names the labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field

from bench.common.errors import BenchError
from bench.schema.child import ChildSpec
from bench.schema.part import Part
from bench.schema.variant import Variant
from bench.spec.measure import SERVE_MAX_TEXTS, BatchingConfig

MiB = 2**20


class Limits(Part):
    """What one request may hold; beyond it: 413 (body) or 422 (texts), with the limit named."""

    max_body_bytes: Annotated[int, Field(gt=0)] = 1 * MiB
    max_texts: Annotated[int, Field(gt=0)] = SERVE_MAX_TEXTS  # texts in one request (runtimes' shape ranges cover it)
    max_text_chars: Annotated[int, Field(gt=0)] = 20_000  # characters in one text (a pair: each sentence)
    max_queue: Annotated[int, Field(gt=0)] = 1024  # texts waiting for the model; beyond: 503


class ServeSpec(Part):
    variant_id: str
    variant: Variant  # what is served: format, precision, device, threads (bench.schema.variant)
    artifact_dir: Path  # the folder the format's runtime loads
    gpu_provider: str = "cuda"
    max_length: Annotated[int, Field(gt=0)] = 128
    label_names: list[str] | None = None  # by label id; null: a regression head (one score)
    pair: bool = False  # the task takes sentence pairs: each text is [first, second]
    batching: BatchingConfig = BatchingConfig()
    limits: Limits = Limits()

    # The served variant's fields, read as the spec's own (the runtime, the log line, /health).
    @property
    def format(self) -> str:
        return self.variant.format

    @property
    def precision(self) -> str:
        return self.variant.precision

    @property
    def device(self) -> str:
        return self.variant.device

    @property
    def threads(self) -> int:
        return self.variant.threads

    @classmethod
    def from_child_spec(cls, variant_id: str, spec: ChildSpec, **kwargs) -> ServeSpec:
        return cls(variant_id=variant_id, variant=spec.variant, artifact_dir=spec.artifact_dir,
                   gpu_provider=spec.measure.ort_gpu_provider,
                   max_length=spec.max_length, label_names=spec.task.label_names,
                   pair=spec.eval_sets[0].second is not None, **kwargs)


def from_run_dir(run_dir: Path, variant_id: str, seed: int | None = None, **kwargs) -> ServeSpec:
    """The variant as `bench run` measured it in `run_dir` (its latest row for that seed)."""
    from bench.store.results import RUN_FILE, latest_rows, read_rows

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise BenchError(f"{run_dir}: not a bench run directory (no {RUN_FILE}); pass a run directory "
                         "or an artifact folder")
    rows = [r for r in latest_rows(read_rows(run_dir)) if r["variant_id"] == variant_id]
    if not rows:
        ids = sorted({r["variant_id"] for r in read_rows(run_dir)})
        raise BenchError(f"--variant {variant_id!r}: not measured in {run_dir} (its variants: {', '.join(ids)})")
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    if seed is None and len(seeds) > 1:
        raise BenchError(f"--seed: {variant_id} was measured for seeds {seeds}; say which one to serve")
    row = next((r for r in rows if seed is None or r.get("seed") == seed), None)
    if row is None:
        raise BenchError(f"--seed {seed}: {variant_id} was measured for seeds {seeds}")
    seeds_of_run = json.loads((run_dir / RUN_FILE).read_text()).get("seeds") or []
    tag = f"@seed{row.get('seed')}" if len(seeds_of_run) > 1 else ""
    tag += f"@{row['target']}" if row.get("target") else ""  # a cluster run: every target's row has the artifact
    spec_path = run_dir / "logs" / f"{variant_id}{tag}.spec.json"
    if not spec_path.is_file():
        raise BenchError(f"{spec_path}: the measuring spec of {variant_id} is missing; rerun `bench run`")
    child = ChildSpec.model_validate_json(spec_path.read_bytes())
    if not Path(child.artifact_dir).is_dir():
        raise BenchError(f"{child.artifact_dir}: the artifact of {variant_id} is gone (artifact cache cleared?); "
                         f"rerun `bench run` on the suite to rebuild it")
    return ServeSpec.from_child_spec(variant_id, child, **kwargs)


def from_artifact_dir(path: Path, fmt: str | None = None, precision: str = "fp32", device: str = "cpu",
                      threads: int = 1, max_length: int = 128, pair: bool = False, **kwargs) -> ServeSpec:
    """A bare artifact folder: the format from its files unless given, the labels from config.json."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise BenchError(f"{path}: no config.json; pass a `bench run` directory with --variant, or a model folder")
    if fmt is None:
        if (path / "model.onnx").is_file():
            fmt = "onnx"
        elif (path / "openvino_model.xml").is_file():
            fmt = "openvino"
        elif any(path.glob("*.engine")):
            fmt = "tensorrt"
        elif any(path.glob("*.safetensors")):
            fmt = "pytorch"
        else:
            raise BenchError(f"{path}: no model.onnx, openvino_model.xml, *.engine or *.safetensors; say --format")
    config = json.loads(config_path.read_text())
    num_labels = len(config.get("id2label") or {}) or config.get("num_labels", 2)
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    labels = None if num_labels == 1 else [id2label.get(i, f"LABEL_{i}") for i in range(num_labels)]
    variant = Variant(model=path.name, format=fmt, precision=precision, device=device, threads=threads)
    return ServeSpec(variant_id=path.name, variant=variant, artifact_dir=path, max_length=max_length,
                     label_names=labels, pair=pair, **kwargs)
