"""Suite files: strict schema, `${ENV}` expansion, one-line errors that name the file and the field.

A suite is YAML read with a safe loader that refuses repeated keys (bench.spec.yamlload). Unknown keys and
wrong types are errors (strict: no coercion). Relative paths are resolved
against the suite file's folder. The resolved suite is saved next to every run (`run.json`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from bench.common.errors import BenchError
from bench.spec.cluster import ClusterConfig  # noqa: F401  (re-exported: the schema is one namespace)
from bench.spec.data import (  # noqa: F401  (re-exported: the schema is one namespace)
    DATA_SUFFIXES,
    CustomTaskConfig,
    DataConfig,
    TaskSpec,
    _as_list,
    resolve_data,
)
from bench.spec.measure import (  # noqa: F401  (re-exported: the schema is one namespace)
    BatchingConfig,
    GridConfig,
    InterleaveConfig,
    MeasureConfig,
    OfflineConfig,
    OpProfileConfig,
    ServerConfig,
)
from bench.spec.messages import _format_error, _key
from bench.spec.names import FORMAT_NAMES, PRECISIONS
from bench.spec.quantize import (  # noqa: F401  (re-exported: the schema is one namespace)
    BUILTIN_RECIPES,
    OPENVINO_RECIPES,
    AccuracyControlConfig,
    Calibrator,
    QuantizeConfig,
    QuantRecipe,
    RecipeName,
)
from bench.spec.training import (  # noqa: F401  (re-exported: the schema is one namespace)
    DistillConfig,
    FinetuneConfig,
    GeneralDistillConfig,
    LoraConfig,
    ModelName,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Seed,
    StudentConfig,
    TeacherConfig,
    _Strict,
    check_student_shapes,
    target_modules_error,
    unmatched_target_modules,
)
from bench.tasks.table import GLUE_TASKS, Task

# Names come from the format registry (bench/backends/): a new format is accepted here without an edit.
Format = Literal[FORMAT_NAMES]
Precision = Literal[PRECISIONS]
Device = Literal["cpu", "cuda"]
Graph = Literal["plain", "optimized"]


class VariantSpec(_Strict):
    """One line of `variants:`; each field takes a value or a list, the plan takes the product."""

    model: list[ModelName]  # teacher, student, or a name under `students:`
    format: list[Format]
    precision: list[Precision] = ["fp32"]
    device: list[Device] = ["cpu"]
    # ONNX only: "optimized" runs the ONNX Runtime transformer optimizer (fused attention,
    # skip-layernorm, gelu) before quantization/conversion. Other formats ignore it.
    graph: list[Graph] = ["plain"]
    threads: list[Annotated[int, Field(gt=0, le=1024)]] | None = None  # overrides measure.threads for this line
    # INT8 recipes. ONNX: `default` (the suite-wide `quantize:` settings), a name under `quantize.recipes`, or a
    # built-in (per-channel, qoperator). OpenVINO int8-static: `default` (NNCF's PTQ) or `accuracy-control`
    # (`quantize.accuracy_control`). Each format ignores the other's names; other variants ignore them all.
    quant: list[RecipeName | Literal["default"]] = ["default"]

    _lists = field_validator("model", "format", "precision", "device", "graph", "threads", "quant",
                             mode="before")(
        classmethod(lambda cls, v: _as_list(v))
    )


class SensitivityConfig(_Strict):
    """`bench tune`'s sensitivity pass (bench/tune/node_ranking.py) over INT8 candidates that fail only the
    accuracy bar."""

    # Keep the k costliest nodes in float, for each k in turn, until a candidate passes; [] turns the pass off.
    steps: list[PositiveInt] = [1, 2, 4]
    samples: PositiveInt = 256  # held-out train examples (never calibration, never eval) the nodes are ranked on
    max_bases: PositiveInt = 2  # INT8 candidates given a pass, the best on the objective first


class TuneConfig(_Strict):
    """`bench tune` (bench/tune/search.py): the search space and the accuracy bar; the CLI's flags override."""

    # Candidate variants, as `variants:` lines; default: every student in PyTorch FP32 and dynamic INT8, and
    # in ONNX FP32 and dynamic INT8 (plain and fused graphs; plain per-channel too) and static INT8 (QDQ
    # and QOperator), at measure.threads.
    space: Annotated[list[VariantSpec], Field(min_length=1)] | None = None
    objective: Literal["latency_p50", "latency_p95", "size", "samples_per_s"] = "latency_p50"
    # Drop of the task's metric vs the teacher in PyTorch FP32, in points x100, judged on the upper end of
    # the paired bootstrap interval; default: the profile's max_accuracy_drop_vs_teacher_pts, else 1.0.
    max_drop_pts: Annotated[float, Field(ge=0)] | None = None
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95
    bootstrap_samples: Annotated[int, Field(ge=100, le=100_000)] = 2000
    budget_s: PositiveFloat | None = None  # wall seconds for the search; default: no limit
    sensitivity: SensitivityConfig = SensitivityConfig()


class Suite(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    task: TaskSpec = "sst2"  # a GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli) or a mapping
    seed: Seed = 42  # data subsets, calibration samples; the training seed unless `seeds` is set
    # One student (and, unless teacher.seed is set, one teacher) per seed; rows carry the seed.
    seeds: Annotated[list[Seed], Field(min_length=1)] | None = None
    trust_remote_code: bool = False
    # Weights load from safetensors only; a local folder holding only a pickle checkpoint
    # (pytorch_model.bin) is refused unless this is true. Pickles can execute code when loaded.
    allow_pickle: bool = False
    data: DataConfig = DataConfig()
    teacher: TeacherConfig
    student: StudentConfig | None = None
    # Several named students (e.g. an ablation); variants refer to them by name.
    students: dict[ModelName, StudentConfig] | None = None
    variants: Annotated[list[VariantSpec], Field(min_length=1)]
    quantize: QuantizeConfig = QuantizeConfig()
    measure: MeasureConfig = MeasureConfig()
    tune: TuneConfig | None = None  # read by `bench tune` only
    cluster: ClusterConfig | None = None  # read by `bench run --cluster` only (bench/spec/cluster.py)
    # The edge profile the report's decision block judges (bench/spec/profiles/<name>.yaml or a YAML file);
    # `bench report --profile` overrides it.
    profile: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _models_known(self) -> Suite:
        if self.student is not None and self.students is not None:
            raise ValueError("students: use either student or students, not both")
        if "teacher" in (self.students or {}):
            raise ValueError("students: 'teacher' is the teacher's name, pick another student name")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: repeated seed in {self.seeds}")
        if isinstance(self.task, CustomTaskConfig) and self.data.source in ("glue-tsv", "hub"):
            raise ValueError(f"data.source: {self.data.source} holds GLUE tasks only; custom task "
                             f"{self.task.name!r} reads data.train and data.validation (source: files)")
        if isinstance(self.task, CustomTaskConfig) and self.data.source == "auto" and self.data.train is None:
            raise ValueError(f"data.train: custom task {self.task.name!r} needs data.train and data.validation "
                             "(CSV, TSV, JSONL or parquet files)")
        if self.profile is not None:
            from bench.common.errors import BenchError
            from bench.spec.profile import load_profile

            try:
                load_profile(self.profile)
            except BenchError as exc:
                raise ValueError(f"profile: {exc}") from None
        known = {"teacher", *self.all_students}
        lines = [("variants", self.variants), ("tune.space", self.tune.space if self.tune else None)]
        for where, specs in lines:
            for i, spec in enumerate(specs or []):
                for model in spec.model:
                    if model not in known:
                        raise ValueError(f"{where}[{i}].model: unknown model {model!r} "
                                         f"(this suite defines: {', '.join(sorted(known))})")
                for name in spec.quant:
                    if name in OPENVINO_RECIPES:
                        if "openvino" not in spec.format:
                            raise ValueError(f"{where}[{i}].quant: {name!r} is an OpenVINO recipe (NNCF's); this "
                                             f"line has no format openvino")
                    elif name != "default" and name not in self.quantize.all_recipes:
                        known = sorted([*self.quantize.all_recipes, *OPENVINO_RECIPES])
                        raise ValueError(f"{where}[{i}].quant: unknown recipe {name!r} (quantize.recipes and "
                                         f"the built-ins define: {', '.join(known)})")
        return self

    @property
    def task_name(self) -> str:
        return self.task if isinstance(self.task, str) else self.task.name

    @property
    def task_def(self) -> Task:
        """The task: its text fields, labels, metrics and eval splits (bench/tasks/table.py)."""
        return GLUE_TASKS[self.task] if isinstance(self.task, str) else self.task.to_task()

    @property
    def all_students(self) -> dict[str, StudentConfig]:
        """Students by name: `student:` is named "student"."""
        return dict(self.students or {}) | ({"student": self.student} if self.student else {})

    @property
    def training_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]


# ---------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# Path fields where a relative value taken from the environment means a path from the current
# directory (as the shell that set it meant), not from the suite file's folder.
_ENV_PATH_FIELDS = {"data.path", "data.train", "data.validation"}


def _expand_env(value: Any, where: str, file: str) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; an undefined VAR is an error.

    In data path fields a relative value that comes from the environment at the start of the string
    (`BENCH_DATA_DIR=../shared/data` in `${BENCH_DATA_DIR}/sst2`) becomes absolute against the current
    directory; a relative path written in the suite (defaults included) stays relative to the suite file."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{_key(k)}" if where else _key(k), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match) -> str:
        var, default = match.group(1), match.group(2)
        if var in os.environ and os.environ[var] != "":
            env = os.environ[var]
            if where in _ENV_PATH_FIELDS and match.start() == 0 and not os.path.isabs(os.path.expanduser(env)):
                return os.path.abspath(os.path.expanduser(env))
            return env
        if default is not None:
            return default
        raise BenchError(f"{file}: {where}: environment variable {var} is not set")

    return _ENV.sub(repl, value)


def _read_yaml(path: Path, file: str) -> Any:
    """Safe-load the suite's YAML; a key repeated in any mapping is a BenchError (not last-one-wins)."""
    from bench.spec.yamlload import safe_load_unique

    return safe_load_unique(path.read_text(encoding="utf-8"), file)


def load_suite(path: str | Path) -> Suite:
    """Read, expand and validate a suite file; every problem is a one-line BenchError."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise BenchError(f"{file}: no such suite file")
    try:
        raw = _read_yaml(path, file)
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
    try:
        data = resolve_data(suite.data, suite.task_def, base)
    except BenchError as exc:
        raise BenchError(f"{file}: {exc}") from None
    teacher = suite.teacher.model_copy(update={"source": _local_path(suite.teacher.source, base)})
    from bench.tasks.sources import parse_source, source_shape

    try:  # an unusable model source or layer map is a suite error, found before anything is built
        teacher_source = parse_source(teacher.source, "teacher.source", allow_pickle=suite.allow_pickle)
        students = {name: _resolve_student(cfg, student_field(suite, name), base, teacher.source,
                                           source_shape(teacher_source), suite.allow_pickle)
                    for name, cfg in suite.all_students.items()}
    except BenchError as exc:
        raise BenchError(f"{file}: {exc}") from None
    update = {"data": data, "teacher": teacher}
    if suite.student is not None:
        update["student"] = students["student"]
    elif suite.students is not None:
        update["students"] = students
    resolved = suite.model_copy(update=update)
    try:
        _check_models_as_is(resolved, teacher_source)
        _check_lora_targets(resolved, teacher_source)
    except BenchError as exc:
        raise BenchError(f"{file}: {exc}") from None
    return resolved


def _check_lora_targets(suite: Suite, teacher_source) -> None:
    """Every LoRA target module names a layer of the model it adapts: checked on the meta device from the
    model's config (local and packaged sources; a hub model is checked when it loads)."""
    from bench.tasks.sources import adaptable_module_names, parse_source

    trainings = [("teacher.finetune", teacher_source, suite.teacher.finetune)]
    for name, cfg in suite.all_students.items():
        field = student_field(suite, name)
        source = parse_source(cfg.source, f"{field}.source", allow_pickle=suite.allow_pickle) \
            if cfg.init == "pretrained" else teacher_source
        trainings.append((f"{field}.distill", source, cfg.distill))
    for field, source, cfg in trainings:
        if cfg is None or cfg.lora_settings is None:
            continue
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            raise BenchError(f"{field}.method: lora trains through PEFT, which is not installed "
                             "(pip install 'bench-bert[lora]')")
        names = adaptable_module_names(source, suite.trust_remote_code)
        missing = unmatched_target_modules(names or [], cfg.lora_settings.target_modules)
        if names is not None and missing:
            raise target_modules_error(field, source.spec, names, missing)


def _check_models_as_is(suite: Suite, source) -> None:
    """A model taken as it is must fit the task (checked now for local folders; hub checkpoints when
    they load). An ONNX teacher cannot be fine-tuned, nor lend its layers or logits."""
    import json

    from bench.tasks.onnx_source import check_head, check_onnx_source, onnx_model_file

    task = suite.task_def
    as_is = [("teacher.source", suite.teacher.source, suite.teacher.finetune is None)] + [
        (f"{student_field(suite, n)}.source", c.source, not c.trains) for n, c in suite.all_students.items()]
    for field, spec, untrained in as_is:
        if untrained and spec and (spec == "tiny" or spec.startswith("tiny:")):
            raise BenchError(f"{field}: {spec} is a random model, not a checkpoint fine-tuned for the task, so it "
                             "cannot be measured as it is; fine-tune it (remove `finetune: null` / "
                             "`distill: null`) or give a fine-tuned checkpoint")
        folder = Path(spec) if spec and ":" not in spec else None
        if untrained and spec and spec.startswith("package:"):
            from bench.tasks.sources import _package_model_dir

            folder = _package_model_dir(spec.removeprefix("package:"), field)
        if not untrained or folder is None:
            continue
        graph = onnx_model_file(folder)
        if graph is not None:
            check_onnx_source(graph, task, field)
        elif (folder / "config.json").is_file():
            check_head(json.loads((folder / "config.json").read_text()), task, field, spec)
    if source.kind != "onnx":
        return
    if suite.teacher.finetune is not None:
        raise BenchError("teacher.finetune: the teacher is an ONNX graph, which cannot be fine-tuned; set "
                         "finetune: null to measure it as it is")
    for name, cfg in suite.all_students.items():
        if cfg.trains:
            raise BenchError(f"{student_field(suite, name)}.distill: the teacher is an ONNX graph; distillation "
                             "needs a PyTorch teacher (use the checkpoint the ONNX file was exported from)")


def student_field(suite: Suite, name: str) -> str:
    """How the suite file spells a student's section, for error messages."""
    return "student" if suite.student is not None else f"students.{name}"


def _local_path(value: str, base: Path) -> str:
    local = base / value
    if ":" not in value and not Path(value).is_absolute() and local.exists():
        return str(local.resolve())
    return value


def _resolve_student(cfg: StudentConfig, field: str, base: Path, teacher_source: str,
                     teacher_shape: dict | None, allow_pickle: bool) -> StudentConfig:
    from bench.tasks.sources import parse_source, source_shape

    update: dict = {}
    student_shape = None
    if cfg.init == "pretrained":
        update["source"] = _local_path(cfg.source, base)
        student_shape = source_shape(parse_source(update["source"], f"{field}.source", allow_pickle=allow_pickle))
    elif teacher_shape:
        student_shape = dict(teacher_shape, layers=len(cfg.layers))
    if cfg.general is not None:
        general = {"text": cfg.general.text if cfg.general.text.startswith("task:")
                   else _local_path(cfg.general.text, base)}
        if not general["text"].startswith("task:") and not Path(general["text"]).is_file():
            raise BenchError(f"{field}.general.text: no such text file '{cfg.general.text}' "
                             "(or use task:train for the task's own sentences)")
        if general["text"].startswith("task:") and general["text"] != "task:train":
            raise BenchError(f"{field}.general.text: only task:train is supported, got {general['text']!r}")
        if cfg.general.teacher is not None:
            general["teacher"] = _local_path(cfg.general.teacher, base)
        mlm_teacher = general.get("teacher", teacher_source)
        parse_source(mlm_teacher, f"{field}.general.teacher", allow_pickle=allow_pickle)
        update["general"] = cfg.general.model_copy(update=general)
    check_student_shapes(cfg, field, teacher_shape, student_shape)
    return cfg.model_copy(update=update)


def suite_to_dict(suite: Suite) -> dict:
    return suite.model_dump(mode="json")
