"""Suite files: strict schema, `${ENV}` expansion, one-line errors that name the file and the field.

A suite is YAML read with `yaml.safe_load`. Unknown keys are errors. Relative paths are resolved
against the suite file's folder. The resolved suite is saved next to every run (`run.json`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import BenchError

Role = Literal["teacher", "student"]
Format = Literal["pytorch", "onnx", "tensorrt"]
Precision = Literal["fp32", "fp16", "bf16", "int8-dynamic", "int8-static", "int8"]
Device = Literal["cpu", "cuda"]
Graph = Literal["plain", "optimized"]
Calibrator = Literal["minmax", "entropy", "percentile"]

PositiveInt = Annotated[int, Field(gt=0, le=10_000_000)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    # extra="forbid": a typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Strict):
    source: Literal["glue-tsv", "hub"] = "glue-tsv"
    # GLUE TSV folder holding train.tsv and dev.tsv. Default: ${BENCH_DATA_DIR}/sst2.
    path: Path | None = None
    hub_id: str = "nyu-mll/glue"  # used when source is "hub": load_dataset(hub_id, "sst2")
    max_train_samples: PositiveInt | None = None  # seeded random subset; None = all 67,349 rows
    max_eval_samples: PositiveInt | None = None  # first N dev rows; None = all 872
    max_length: Annotated[int, Field(ge=8, le=512)] = 128


class FinetuneConfig(_Strict):
    epochs: Annotated[float, Field(gt=0, le=1000)] = 1.0
    lr: PositiveFloat = 5e-5
    batch_size: PositiveInt = 32
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.06
    weight_decay: NonNegativeFloat = 0.01
    logging_steps: PositiveInt = 50
    # Trainer report_to targets, e.g. [tensorboard]; logs always go to the artifact's log file.
    report_to: list[str] = []
    # Early stopping on dev accuracy, evaluated every eval_steps; None turns it off.
    early_stopping_patience: PositiveInt | None = None
    eval_steps: PositiveInt = 500


class TeacherConfig(_Strict):
    # hub id | local dir | package:<module> | tiny:layers=2,hidden=64,heads=2,intermediate=128
    source: str
    finetune: FinetuneConfig = FinetuneConfig()


class DistillConfig(FinetuneConfig):
    lr: PositiveFloat = 1e-4
    temperature: PositiveFloat = 2.0
    alpha_soft: NonNegativeFloat = 0.5
    alpha_hard: NonNegativeFloat = 0.5

    @model_validator(mode="after")
    def _some_loss(self) -> DistillConfig:
        if self.alpha_soft + self.alpha_hard == 0:
            raise ValueError("alpha_soft + alpha_hard must be > 0")
        return self


class StudentConfig(_Strict):
    init: Literal["teacher-layers"] = "teacher-layers"
    layers: list[Annotated[int, Field(ge=0, le=1000)]] = [0, 2, 4]
    distill: DistillConfig = DistillConfig()

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list[int]) -> list[int]:
        if not layers:
            raise ValueError("needs at least one teacher layer")
        if len(set(layers)) != len(layers) or layers != sorted(layers):
            raise ValueError(f"must be strictly increasing teacher layer indices, got {layers}")
        return layers


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) or value is None else [value]


class VariantSpec(_Strict):
    """One line of `variants:`; each field takes a value or a list, the plan takes the product."""

    model: list[Role]
    format: list[Format]
    precision: list[Precision] = ["fp32"]
    device: list[Device] = ["cpu"]
    # ONNX only: "optimized" runs the ONNX Runtime transformer optimizer (fused attention,
    # skip-layernorm, gelu) before quantization/conversion. Other formats ignore it.
    graph: list[Graph] = ["plain"]
    threads: list[Annotated[int, Field(gt=0, le=1024)]] | None = None  # overrides measure.threads for this line

    _lists = field_validator("model", "format", "precision", "device", "graph", "threads", mode="before")(
        classmethod(lambda cls, v: _as_list(v))
    )


class QuantizeConfig(_Strict):
    per_channel: bool = False  # per-channel weight scales (ORT int8)
    # reduce_range: 7-bit weights, avoiding the u8s8 VPMADDUBSW saturation that ORT documents for
    # CPUs without VNNI. "auto" turns it on exactly when the CPU lacks VNNI; the choice is recorded.
    reduce_range: Literal["auto"] | bool = "auto"
    calibration_samples: PositiveInt = 300  # train sentences (never dev) for static INT8
    calibrators: Annotated[list[Calibrator], Field(min_length=1)] = ["minmax"]  # one int8-static variant each
    percentile: Annotated[float, Field(gt=90, le=100)] = 99.999

    _lists = field_validator("calibrators", mode="before")(classmethod(lambda cls, v: _as_list(v)))


class GridConfig(_Strict):
    """Fixed-shape latency grid: real dev sentences truncated or padded to exactly seq_len tokens,
    batch_size at a time. Throughput (samples/s, tokens/s) follows from each cell's p50."""

    batch_sizes: Annotated[list[Annotated[int, Field(gt=0, le=1024)]], Field(min_length=1)] = [1, 8, 32]
    seq_lens: Annotated[list[Annotated[int, Field(ge=8, le=512)]], Field(min_length=1)] = [16, 64, 128]
    min_iterations: PositiveInt = 10
    min_seconds: NonNegativeFloat = 0.5


class OfflineConfig(_Strict):
    """MLPerf-like Offline scenario: the whole dev set at each batch size, dynamic padding per batch
    (tokenisation untimed); samples/s and tokens/s (real and padded) per batch size."""

    batch_sizes: Annotated[list[Annotated[int, Field(gt=0, le=1024)]], Field(min_length=1)] = [1, 8, 32]
    sort_by_length: bool = True  # order sentences by token count first: batches pad less
    min_seconds: NonNegativeFloat = 0.0  # repeat whole passes until this much time was timed; 0 = one pass


class MeasureConfig(_Strict):
    threads: list[Annotated[int, Field(gt=0, le=1024)]] = [2]
    warmup: Annotated[int, Field(ge=0)] = 10
    # Latency loop runs until both are met, cycling through the real dev sentences at batch 1.
    min_iterations: PositiveInt = 200
    min_seconds: NonNegativeFloat = 2.0
    eval_batch_size: PositiveInt = 32
    timeout_s: PositiveFloat = 1800  # per variant; the child is killed and the row says "timeout"
    max_memory_mb: PositiveFloat | None = None  # per variant RSS budget; over it: killed, "memory-limit"
    parity_samples: PositiveInt | None = None  # dev sentences for parity checks; None = all
    parity_atol: PositiveFloat = 1e-3  # max |Δlogit| allowed between ONNX fp32 and PyTorch fp32
    # ONNX Runtime provider for onnx variants on cuda (needs onnxruntime-gpu): cuda, or tensorrt
    # (ORT's TensorRT provider, engines cached next to the model).
    ort_gpu_provider: Literal["cuda", "tensorrt"] = "cuda"
    grid: GridConfig | None = None  # also measure the batch x sequence-length grid (off by default)
    offline: OfflineConfig | None = None  # also measure the Offline scenario (off by default)

    _lists = field_validator("threads", mode="before")(classmethod(lambda cls, v: _as_list(v)))


class Suite(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    task: Literal["sst2"] = "sst2"
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 42
    trust_remote_code: bool = False
    # Weights load from safetensors only; a local folder holding only a pickle checkpoint
    # (pytorch_model.bin) is refused unless this is true. Pickles can execute code when loaded.
    allow_pickle: bool = False
    data: DataConfig = DataConfig()
    teacher: TeacherConfig
    student: StudentConfig | None = None
    variants: Annotated[list[VariantSpec], Field(min_length=1)]
    quantize: QuantizeConfig = QuantizeConfig()
    measure: MeasureConfig = MeasureConfig()

    @model_validator(mode="after")
    def _student_needed(self) -> Suite:
        for i, spec in enumerate(self.variants):
            if "student" in spec.model and self.student is None:
                raise ValueError(f"variants[{i}] measures the student but the suite has no student section")
        return self


# ---------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, where: str, file: str) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; an undefined VAR is an error."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{_key(k)}" if where else _key(k), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match) -> str:
        var, default = match.group(1), match.group(2)
        if var in os.environ and os.environ[var] != "":
            return os.environ[var]
        if default is not None:
            return default
        raise BenchError(f"{file}: {where}: environment variable {var} is not set")

    return _ENV.sub(repl, value)


_FRIENDLY = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "extra_forbidden": "unknown key",
    "missing": "required field is missing",
}


def _key(part) -> str:
    if not isinstance(part, str):
        return f"[{part}]"
    return part if part.isprintable() and part.strip() == part and part else repr(part)


def _format_error(err: dict, file: str) -> str:
    loc = ".".join(_key(p) for p in err["loc"]).replace(".[", "[")
    kind, value = err["type"], err.get("input")
    if kind == "literal_error":
        msg = f"{err['msg'].replace('Input should be', 'expected')}, got {value!r}"
    elif kind in ("extra_forbidden", "missing"):
        msg = _FRIENDLY[kind]
    elif kind in _FRIENDLY:
        msg = f"{_FRIENDLY[kind]}, got {value!r}"
    else:
        msg = err["msg"].removeprefix("Value error, ")
    msg = msg if len(msg) < 300 else msg[:297] + "..."
    return f"{file}: {loc or '<top>'}: {msg}"


def load_suite(path: str | Path) -> Suite:
    """Read, expand and validate a suite file; every problem is a one-line BenchError."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise BenchError(f"{file}: no such suite file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BenchError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise BenchError(f"{file}: {where}invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise BenchError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = _expand_env(raw, "", file)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise BenchError(_format_error(exc.errors()[0], file)) from None
    return _resolve_paths(suite, path.parent, file)


def _resolve_paths(suite: Suite, base: Path, file: str) -> Suite:
    data = suite.data
    if data.source == "glue-tsv":
        if data.path is None:
            if not os.environ.get("BENCH_DATA_DIR"):
                raise BenchError(f"{file}: data.path: not set, and BENCH_DATA_DIR is not defined")
            data_path = Path(os.environ["BENCH_DATA_DIR"]) / suite.task
        else:
            data_path = data.path if data.path.is_absolute() else base / data.path
        data_path = data_path.resolve()
        if not data_path.is_dir():
            raise BenchError(f"{file}: data.path: no such directory '{data_path}'")
        data = data.model_copy(update={"path": data_path})
    teacher = suite.teacher
    local = base / teacher.source
    if ":" not in teacher.source and not Path(teacher.source).is_absolute() and local.is_dir():
        teacher = teacher.model_copy(update={"source": str(local.resolve())})
    from bench.models import parse_source

    try:  # an unusable model source is a suite error, found before anything is built
        parse_source(teacher.source, "teacher.source", allow_pickle=suite.allow_pickle)
    except BenchError as exc:
        raise BenchError(f"{file}: {exc}") from None
    return suite.model_copy(update={"data": data, "teacher": teacher})


def suite_to_dict(suite: Suite) -> dict:
    return suite.model_dump(mode="json")
