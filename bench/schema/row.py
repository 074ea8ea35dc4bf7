"""The results row as typed parts. JSONL stays flat: a row is the union of its parts' fields.

Each part declares its fields once, with type and meaning; docs/schema.md's table is generated from
these declarations (`python -m bench.schema.doc`, checked by tests/test_schema.py). A field without a
default is one the stage that produces the part always writes; the measuring child's parts are
checked that way when it writes its result and again when the parent reads it (bench.schema.child).

`Row` is every part's field, all optional, so rows from older schema-version-1 files (which lack
fields added since) keep loading. `Row.for_write` is the strict side: identity and outcome present,
and for an `ok` row every field the measurement parts require.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bench.schema.part import Part, f
from bench.schema.scenario_parts import (  # noqa: F401  (the row's parts, one namespace)
    COLD_START_PHASES,
    ColdStart,
    ServerEntry,
    ServerLoad,
    ServerScenario,
    Speedup,
)
from bench.schema.variant import field_of

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "timeout", "memory-limit")
# Primary metrics of regression tasks (bench/tasks/table.py): their rows carry no accuracy.
REGRESSION_METRICS = ("pearson", "spearmanr")


# ------------------------------------------------------------------ written by `bench run` (the parent)
class Identity(Part):
    """Which run and which variant; compare and report join rows on the variant keys and the seed."""

    run_id: str = f("the run directory's name")
    suite: str = f("the suite's `name`")
    task: str = f("the suite's task")
    variant_id: str = f("`model-format-precision[-calibrator][-opt][+recipe]-device-tN`")
    # The variant's fields, declared once (bench.schema.variant.Variant), in the row's column order.
    model: str = field_of("model")
    format: str = field_of("format")
    precision: str = field_of("precision")
    calibration: str = field_of("calibration")
    quant: str = field_of("quant")
    graph: str = field_of("graph")
    device: str = field_of("device")
    threads: int = field_of("threads")
    seed: int | None = f("the training seed of the models measured")


class Outcome(Part):
    status: Literal["ok", "failed", "timeout", "memory-limit"] = f(
        "`ok`, `failed` (crash, non-zero exit, an invalid child result), `timeout` or `memory-limit`")
    error: str | None = f("why the variant was not measured; null when ok", None)


class ArtifactFacts(Part):
    """What was measured: read from the artifact's manifest (bench/store/artifacts.py)."""

    artifact: str = f("the artifact folder measured (results/artifacts/<kind>-<hash>)")
    artifact_build_time_s: float | None = f("how long the artifact took to build", None)
    size_mb: float = f("weights on disk (the format's weight files: `.safetensors`, `.onnx` + external data, "
                       "`.engine`), MiB")
    parity_max_abs_diff: float | None = f("max abs logit difference to the FP32 PyTorch source on "
                                          "`parity_samples` dev examples; null for PyTorch fp32", None)
    parity_label_agreement: float | None = f("share of those examples given the same label; null for a "
                                             "regression head", None)
    graph_fused_ops: dict[str, int] | None = f("fusion counts of the ORT transformer optimizer (optimized "
                                               "graphs)", None)
    graph_fully_fused: bool | None = f("every attention and layer norm fused", None)
    int8_matmul_coverage_pct: float | None = f("INT8 rows: share of matmul-like nodes that run in INT8, "
                                               "counted from the graph's node types (not measured)", None)
    int8_matmul_ops: int | None = f("INT8 rows: matmul-like nodes in INT8 (MatMulInteger, QLinearMatMul, "
                                    "QDQ-wrapped MatMul/Attention)", None)
    fp_matmul_ops: int | None = f("INT8 rows: matmul-like nodes left in float", None)
    quant_weight_type: str | None = f("dynamic INT8 rows: `s8` or `u8` weights (`quantize.weight_type`)", None)
    quant_activation_type: str | None = f("static INT8 rows: `u8` or `s8` activations (`quantize.activation_type`; "
                                          "TensorRT's symmetric graph: `s8`)", None)
    quant_reduce_range: bool | None = f("INT8 rows: 7-bit weights (`quantize.reduce_range`)", None)
    quant_reduce_range_reason: str | None = f("why this weight type and reduce_range (`auto`: the CPU's VNNI flag)",
                                              None)
    quant_per_channel: bool | None = f("INT8 rows: per-channel weight scales", None)
    quant_format: str | None = f("ONNX INT8 rows: `qdq` (static, Quantize/DequantizeLinear pairs) or `qoperator` "
                                 "(integer operators; dynamic INT8 always)", None)
    quant_op_types: list[str] | None = f("ONNX INT8 rows: the op types quantized when not the default list", None)
    quant_nodes_excluded: list[str] | None = f("INT8 rows: nodes kept in float (ONNX: `nodes_to_exclude`, or "
                                               "`bench tune`'s sensitivity pass; OpenVINO accuracy control: the "
                                               "ops NNCF returned to float)", None)
    accuracy_control: dict[str, Any] | None = f(
        "OpenVINO `+accuracy-control` rows: NNCF's bar and what it saw on the held-out train examples it "
        "validated on: `max_drop_pts`, `validation_samples`, `metric`, `fp32_score`, `int8_score_before` (plain "
        "quantization), `int8_score` (returned model), `drop_pts`, `reverted_ops`", None)
    calibration_hash: str | None = f("int8-static: sha256 of the calibration texts", None)
    calibration_samples: int | None = f("int8-static: how many train examples calibrated", None)


class Training(Part):
    """How the measured model was trained (its trained artifact's manifest); null for untrained models."""

    train_dev_accuracy: float | None = f("dev accuracy the Trainer reported at the end of training", None)
    train_s_per_epoch: float | None = f("training-loop wall time per epoch (a resumed build counts only "
                                        "its remaining steps)", None)
    train_rows: int | None = f("rows trained on", None)
    train_loss_terms: str | None = f("students: the loss terms switched on (`hard`, `soft+hard`, "
                                     "`soft+hard+hidden+attn`, ...)", None)
    train_method: Literal["full", "lora"] | None = f("`full` (every weight trained) or `lora` (PEFT LoRA adapters, "
                                                     "merged into the weights before export)", None)
    lora_r: int | None = f("LoRA rank", None)
    lora_alpha: float | None = f("LoRA alpha (the update is scaled by alpha / r)", None)
    trainable_params: int | None = f("parameters the optimizer updated (LoRA: adapters and task head)", None)
    train_runtime_s: float | None = f("training-loop wall time (a resumed build counts only its remaining steps)",
                                      None)
    train_peak_rss_mb: float | None = f("the training process's peak RSS during the training loop (sampled)", None)
    train_rss_growth_mb: float | None = f("that peak minus the RSS when the loop started: activations, gradients "
                                          "and optimizer state", None)
    train_peak_cuda_mb: float | None = f("CUDA training: torch's allocator peak", None)
    merge_parity_max_abs_diff: float | None = f("LoRA: max |Δlogit| between the PEFT model and its merged weights "
                                                "on dev examples", None)


# ------------------------------------------------------------------ written by the measuring child
class RuntimeFacts(Part):
    """The runtime the child loaded (bench/backends/)."""

    load_time_s: float = f("model load, outside the timed loop")
    params: int = f("parameters (PyTorch) or float initialiser elements (ONNX)")
    providers: list[str] | None = f("ONNX Runtime execution providers in use", None)
    onnx_opset: int | None = f("the ONNX graph's default-domain opset", None)
    onnx_op_domains: list[str] | None = f("operator domains the graph uses (`ai.onnx`, `com.microsoft`); "
                                          "`bench check` budgets on them (`allowed_op_domains`)", None)
    ort_session_options: dict[str, Any] | None = f(
        "ONNX rows: intra/inter-op threads, execution mode, graph optimisation level, `enable_cpu_mem_arena`, "
        "`enable_mem_pattern`, `enable_mem_reuse`, the provider's options, `io_binding`", None)
    inference_precision: str | None = f("OpenVINO rows: the precision the compiled model runs its float ops at, "
                                        "read back from it, not the hint asked for (`f32`, `bf16`, `f16`)", None)
    openvino_config: dict[str, Any] | None = f(
        "OpenVINO rows: what the compiled model reports: `device`, `openvino` (version), `performance_hint`, "
        "`num_streams`, `inference_num_threads`, `inference_precision`, `shapes` (`dynamic`)", None)


class TaskMetrics(Part):
    """The task's scores on every eval split through the variant's own runtime (bench/measure/accuracy.py,
    bench/tasks/table.py)."""

    metric: str | None = f("the task's primary metric (`accuracy`, `f1`, `matthews_correlation`, `pearson`, "
                           "`spearmanr`); rows written before tasks have none: read them as `accuracy`", None)
    accuracy: float | None = f("classification: share of the primary eval split's examples labelled correctly "
                               "(written on every classification row); null for a regression", None,
                               validate_default=True)
    score: float = f("the primary metric on the primary eval split: what reports, `bench check` and "
                     "`bench compare` judge by default")
    metrics: dict[str, float] | None = f("every metric of the task on every eval split: `<metric>` on the "
                                         "primary split, `<metric>@<split>` on the others "
                                         "(`accuracy@validation_mismatched`)", None)
    precision_score: float | None = f("binary classification: precision of the positive class (1)", None)
    recall: float | None = f("binary classification: recall of the positive class", None)
    f1: float | None = f("binary classification: F1 of the positive class", None)
    confusion_matrix: list[list[int]] | None = f("binary classification: `[[tn, fp], [fn, tp]]`, positive = 1",
                                                 None)
    eval_samples: int = f("examples in the primary eval split (all of them are scored)")
    score_batch_size: int | None = f("the batch the task metrics were predicted at: 1 where the numerics depend "
                                     "on the batch (dynamic INT8 picks one activation scale per tensor over the "
                                     "whole batch), as SingleStream deploys the row; `measure.eval_batch_size` "
                                     "otherwise; absent on schema-1 rows (batched)", None)
    batched_score: float | None = f("rows scored at batch 1 for that reason: the primary metric at "
                                    "`measure.eval_batch_size` (padded, length-sorted batches), what a batched "
                                    "(Offline) deployment scores", None)
    batched_batch_size: int | None = f("... the batch of `batched_score`", None)
    batched_label_agreement: float | None = f("... share of the primary split's examples given the same "
                                              "label (or score) at batch 1 and batched", None)

    @model_validator(mode="before")
    @classmethod
    def _legacy_accuracy(cls, data: Any) -> Any:
        """A result with accuracy and neither metric nor score is the pre-task shape: metric accuracy."""
        if isinstance(data, dict) and data.get("accuracy") is not None and "score" not in data \
                and data.get("metric") is None:
            data = {**data, "metric": "accuracy", "score": data["accuracy"]}
        return data

    @field_validator("accuracy")
    @classmethod
    def _accuracy_on_classification(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None and info.data.get("metric") not in REGRESSION_METRICS:
            raise PydanticCustomError("missing", "Field required (a classification result)")
        return value


class GridCell(Part):
    batch: int
    seq_len: int
    p50_ms: float
    p90_ms: float
    n: int
    samples_per_s: float
    tokens_per_s: float
    gflops_per_s: float | None = None


class OfflineEntry(Part):
    scenario: Literal["Offline"]
    batch_size: int
    sort_by_length: bool
    samples: int
    batches: int
    passes: int
    wall_s: float
    samples_per_s: float
    tokens_per_s: float
    padded_tokens_per_s: float
    padding_pct: float
    peak_rss_sampled_mb: float | None = None
    gpu_nvml_used_peak_mb: float | None = None
    gpu_nvml_process_peak_mb: float | None = None
    energy_mj_per_sample: float | None = None  # over the timed passes, where a counter is readable
    # OpenVINO: the THROUGHPUT-hint compilation Offline ran in (streams, threads, requests in flight)
    runtime_config: dict[str, Any] | None = None


class Latency(Part):
    """Batch-1 SingleStream over the primary eval split's real examples (bench/measure/latency.py; a pair
    task's two sentences are one sequence), and the optional grid and Offline passes."""

    latency_p50_ms: float = f("median per-call latency, ms")
    latency_p90_ms: float = f("90th percentile, ms")
    latency_p95_ms: float = f("95th percentile, ms")
    latency_p99_ms: float = f("99th percentile, ms")
    latency_mean_ms: float = f("mean, ms")
    latency_stdev_ms: float = f("sample standard deviation, ms")
    latency_min_ms: float = f("fastest call, ms")
    latency_max_ms: float = f("slowest call, ms")
    latency_cv: float = f("coefficient of variation of the per-call times")
    latency_n: int = f("timed calls: the loop cycles the dev examples until `min_iterations` and "
                       "`min_seconds` are both met, after `warmup` calls")
    latency_p50_ci95_low_ms: float | None = f("95 % percentile-bootstrap confidence interval of the median, "
                                              "low end (scipy, seeded)", None)
    latency_p50_ci95_high_ms: float | None = f("... high end", None)
    latency_raw_ms: list[float] = f("every timed call, ms")
    latency_input: str = f("`dev-stream-bs1`")
    tokenization_timed: bool = f("`false`: tokenisation is outside the timed region")
    mean_tokens: float = f("mean tokens per dev example")
    first_call_ms: float = f("the first (cold) call after load, outside the loop")
    scenario: str | None = f("`SingleStream` (MLPerf's one query at a time)", None)
    gflops_per_s: float | None = f("achieved GFLOP/s over the timed calls (analytic BERT FLOPs per "
                                   "example length, bench/measure/flops.py)", None)
    latency_grid: list[GridCell] | None = f(
        "with `measure.grid`: one cell per (batch, seq_len): `p50_ms`, `p90_ms`, `n`, `samples_per_s`, "
        "`tokens_per_s`, `gflops_per_s`; real dev examples cut or padded to exactly seq_len", None)
    offline: list[OfflineEntry] | None = f(
        "with `measure.offline`: one entry per batch size: the whole eval split with dynamic padding "
        "(tokenised untimed): `batch_size`, `sort_by_length`, `samples`, `batches`, `passes`, `wall_s`, "
        "`samples_per_s`, `tokens_per_s` (real), `padded_tokens_per_s`, `padding_pct`, and that pass's "
        "`peak_rss_sampled_mb` and `energy_mj_per_sample` (where `energy_status` is `measured`); OpenVINO rows "
        "run it with the THROUGHPUT hint and say so in `runtime_config`", None)
    energy_status: str | None = f("`measured`, or `unavailable: <why>` (no readable powercap/RAPL, amd_energy or "
                                  "NVML counter); never an estimate (bench/measure/energy.py)", None)
    energy_counters: list[str] | None = f("the counters read (`powercap:intel-rapl:0 (package-0)`, "
                                          "`nvml:GPU0`): machine-wide, other processes and idle power included",
                                          None)
    energy_mj_per_inference: float | None = f("millijoules per batch-1 SingleStream call (warm-up and timed "
                                              "calls), summed over `energy_counters`", None)


class EndToEnd(Part):
    """`measure.end_to_end`: text in, label out at batch 1 over the real dev examples
    (bench/scenarios/end_to_end.py): the fast tokenizer, input conversion, the model, softmax and argmax."""

    e2e_p50_ms: float | None = f("median end-to-end call, ms: what a user of the deployed variant waits for",
                                 None)
    e2e_p95_ms: float | None = f("95th percentile, ms", None)
    e2e_tokenize_p50_ms: float | None = f("median tokenisation of one example, ms", None)
    e2e_tokenizer_share_pct: float | None = f("the tokenizer's share of the end-to-end time, %", None)
    e2e_calls: int | None = f("timed end-to-end calls", None)


class OpTime(Part):
    """One operator type's share of a batch-1 inference (bench/child/op_profile.py)."""

    op: str = f("op type (ONNX) or operator name (PyTorch)")
    kind: str = f("`int8 matmul`, `quantize/dequantize`, `fused`, `float matmul` or `other`")
    ms_per_inference: float = f("its kernel (ORT) or self (PyTorch) time per inference")
    share_pct: float = f("% of the summed op time")
    nodes_per_inference: float = f("nodes (ORT) or calls (PyTorch) of it per inference")


class OpProfile(Part):
    """`measure.op_profile`: where the time goes, from the runtime's own profiler (CPU ONNX and PyTorch)."""

    op_profile: list[OpTime] | None = f("per op type, largest first", None)
    op_profile_kernel_ms: float | None = f("summed op time per inference (excludes the framework's own overhead "
                                           "between ops)", None)
    op_profile_calls: int | None = f("profiled calls", None)
    op_profile_shape: str | None = f("`dev-stream-bs1`, or `BATCHxSEQ_LEN` (`measure.op_profile.batch`/`seq_len`)",
                                     None)
    op_profile_source: str | None = f("`onnxruntime profiler (...)` or `torch.profiler (CPU self time)`", None)


class Memory(Part):
    """The child's memory (bench/measure/memory.py, docs/measurement.md)."""

    rss_before_load_mb: float = f("RSS before the model was loaded")
    peak_rss_mb: float = f("peak RSS from load to the end of the SingleStream loop: the kernel's "
                           "high-water mark (VmHWM)")
    peak_rss_sampled_mb: float | None = f("the same peak sampled every 5 ms by a thread in the child "
                                          "(misses spikes under 5 ms)", None)
    ru_maxrss_mb: float | None = f("`getrusage`'s peak (can include the forked parent's pre-exec peak)", None)
    peak_rss_all_phases_mb: float | None = f("VmHWM after every phase (SingleStream, grid, Offline): what "
                                             "`max_memory_mb` is checked against", None)
    gpu_max_memory_allocated_mb: float | None = f("PyTorch on CUDA: `torch.cuda.max_memory_allocated`", None)
    gpu_max_memory_reserved_mb: float | None = f("PyTorch on CUDA: `torch.cuda.max_memory_reserved`", None)
    gpu_nvml_used_peak_mb: float | None = f("CUDA rows with pynvml: sampled peak of the device's used memory "
                                            "(all processes) above a baseline read before the variant loads",
                                            None)
    gpu_nvml_process_peak_mb: float | None = f("... and of this process's share; absent when NVML never "
                                               "lists the process", None)


class MeasureContext(Part):
    """How the child ran: what makes two numbers comparable."""

    cpu_affinity: list[int] | None = f("the cores the child could run on", None)
    interop_threads: int | None = f("inter-op threads (fixed at 1)", None)
    allocator: str | None = f("`measure.allocator` (`system` or `glibc-retain`)", None)
    malloc_env: dict[str, str] | None = f("malloc variables (`MALLOC_*_`, `GLIBC_TUNABLES`, `LD_PRELOAD`) the "
                                          "child started with, whoever set them", None)
    measure_phase_s: dict[str, float] | None = f(
        "the child's wall seconds per phase, in order: `load` (model and dev stream), `accuracy`, `singlestream`, "
        "`grid`, `offline`, `op_profile` (those that ran); what `bench plan`'s cost model reads", None)


# ------------------------------------------------------------------ written by `bench run` after the child
class Roofline(Part):
    """Against this machine's fp32 matmul peak from `bench calibrate` (CPU rows, same host)."""

    fp32_peak_gflops: float | None = f("the calibrated peak at this thread count", None)
    pct_of_fp32_peak: float | None = f("`gflops_per_s` as % of that peak", None)
    grid_best_pct_of_fp32_peak: float | None = f("the best grid cell's GFLOP/s as % of that peak", None)


class Machine(Part):
    """Where the row was measured; kept by `bench merge`, so merged runs say which machine made each row."""

    host: str | None = f("hostname", None)
    cpu_model: str | None = f("CPU model name", None)
    gpus: list[str] | None = f("GPU names", None)
    shard: str | None = f("`I/N` when measured with `--shard`", None)
    target: str | None = f("the suite's cluster target it was measured on (`bench run --cluster`); reports, "
                           "check and compare judge each target apart", None)
    cluster_attempts: list[dict] | None = f("`bench run --cluster`: the attempts before this row whose node or "
                                            "worker died ({node, error}), each run again on a node of the same "
                                            "target", None)


class Bookkeeping(Part):
    schema_version: int = f("2 (1: every row scored on batched predictions, before `score_batch_size`); rows of "
                            "version 1 still load")
    measure_key: str | None = f("hash of the measurement settings and data: a resumed run re-measures a "
                                "variant whose key changed", None)
    measure_wall_s: float | None = f("wall time of the measuring child", None)
    measured_at: str | None = f("timestamp", None)


# The child writes these parts; the parent writes the others.
CHILD_PARTS: tuple[type[Part], ...] = (RuntimeFacts, TaskMetrics, Latency, EndToEnd, Memory, OpProfile,
                                        MeasureContext)
PARENT_PARTS: tuple[type[Part], ...] = (Identity, Outcome, ArtifactFacts, Training)
LATE_PARTS: tuple[type[Part], ...] = (Roofline, Speedup, ServerScenario, ColdStart, Machine, Bookkeeping)
PARTS: tuple[type[Part], ...] = (*PARENT_PARTS, *CHILD_PARTS, *LATE_PARTS)


def _required(parts) -> tuple[str, ...]:
    return tuple(name for p in parts for name, info in p.model_fields.items() if info.is_required())


IDENTITY_FIELDS = tuple(n for n in Identity.model_fields if n not in ("run_id", "suite", "task", "variant_id"))
# Identity fields added after the first rows were written, with the value those rows meant.
IDENTITY_DEFAULTS = {"graph": "plain", "calibration": "", "quant": ""}
_REQUIRED_ALWAYS = _required((Identity, Outcome)) + ("artifact", "size_mb")
_REQUIRED_WHEN_OK = _required(CHILD_PARTS)


class _RowBase(Part):
    @model_validator(mode="after")
    def _complete_when_written(self, info: ValidationInfo):
        if info.context and info.context.get("write"):
            missing = [n for n in _REQUIRED_ALWAYS if getattr(self, n) is None]
            if self.status == "ok":
                missing += [n for n in _REQUIRED_WHEN_OK if getattr(self, n) is None]
                if self.accuracy is None and self.metric not in REGRESSION_METRICS:
                    missing.append("accuracy")  # every classification row has it
            if missing:
                raise ValueError(f"row lacks required field(s): {', '.join(missing)}")
        return self

    @classmethod
    def for_write(cls, *parts: Part | dict) -> Row:
        """A complete row from its parts (validated strictly); raises ValueError naming the field."""
        flat: dict[str, Any] = {}
        for part in parts:
            flat |= part.model_dump(exclude_unset=True) if isinstance(part, BaseModel) else part
        return cls.model_validate(flat, context={"write": True})

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def _optional(parts) -> dict[str, Any]:
    fields = {}
    for part in parts:
        for name, info in part.model_fields.items():
            default = info.default if not info.is_required() else None
            fields[name] = (info.annotation | None, Field(default, description=info.description))
    return fields


# Every field of every part, optional: what a stored row may hold.
Row = create_model("Row", __base__=_RowBase, __doc__="One results.jsonl line: the union of the parts' fields.",
                   **_optional(PARTS))
ROW_FIELDS = tuple(Row.model_fields)
