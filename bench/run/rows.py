"""One measured row from its parts: identity, outcome, the artifact's and training's facts (from their
manifests), what the measuring child returned, the roofline, the scenarios run across processes, the machine
and bookkeeping; and its log lines."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bench import backends
from bench.build.pipeline import Built
from bench.schema import (
    ArtifactFacts,
    Bookkeeping,
    ColdStart,
    Identity,
    Machine,
    Outcome,
    Roofline,
    Row,
    ServerScenario,
    Speedup,
    Training,
)
from bench.schema.child import ChildFailure, ChildResult
from bench.schema.variant import Variant
from bench.store.results import SCHEMA_VERSION

if TYPE_CHECKING:
    from bench.run.suite_run import RunContext

log = logging.getLogger(__name__)


def _roofline(result: ChildResult, variant: Variant, peaks: dict) -> Roofline:
    """% of this machine's fp32 matmul peak (from `bench calibrate`) at the variant's thread count."""
    peak = peaks.get(str(variant.threads)) if variant.device == "cpu" else None
    if not peak or result.gflops_per_s is None:
        return Roofline()
    best_cell = max((c.gflops_per_s or 0 for c in result.latency_grid or []), default=None)
    return Roofline(fp32_peak_gflops=peak, pct_of_fp32_peak=round(100 * result.gflops_per_s / peak, 2),
                    grid_best_pct_of_fp32_peak=round(100 * best_cell / peak, 2) if best_cell else None)


def _older_int8_format(kind: str) -> str | None:
    """The format of an ONNX INT8 graph built before quantize recipes (whose cache keys are kept): it
    records none, because it was fixed then."""
    for prefix, fmt in (("onnx-int8-dynamic", "qoperator"), ("onnx-int8-static", "qdq")):
        if kind.startswith(prefix):
            return fmt
    return None


def _artifact_facts(artifact, fmt, size_bytes: int | None) -> ArtifactFacts:
    """What the manifest of the measured artifact says about it (bench/build/compress.py writes `info`)."""
    info = artifact.info
    return ArtifactFacts(
        artifact=artifact.path.name, artifact_build_time_s=artifact.build_time_s,
        size_mb=round((size_bytes or fmt.size_bytes(artifact.weights_dir)) / 2**20, 3),
        parity_max_abs_diff=info.get("parity_max_abs_diff"), parity_label_agreement=info.get("parity_label_agreement"),
        graph_fused_ops=info.get("fused_ops"), graph_fully_fused=info.get("fully_fused"),
        int8_matmul_coverage_pct=info.get("int8_matmul_coverage_pct"), int8_matmul_ops=info.get("int8_matmul_ops"),
        fp_matmul_ops=info.get("fp_matmul_ops"), quant_weight_type=info.get("weight_type"),
        quant_activation_type=info.get("activation_type"),
        quant_reduce_range=info.get("reduce_range"),
        quant_reduce_range_reason=info.get("reduce_range_reason"), quant_per_channel=info.get("per_channel"),
        quant_format=info.get("quant_format") or _older_int8_format(artifact.kind),
        quant_op_types=info.get("op_types"),
        quant_nodes_excluded=info.get("nodes_excluded", [] if _older_int8_format(artifact.kind) else None),
        accuracy_control=info.get("accuracy_control"),
        calibration_hash=info.get("calibration_hash"), calibration_samples=info.get("calibration_samples"))


def _training(model) -> Training:
    info = model.info
    per_epoch = info.get("train_s_per_epoch") or (
        info.get("train_runtime_s") and round(info["train_runtime_s"] / info["epochs"], 2))
    trained = info.get("train_rows") is not None
    return Training(train_dev_accuracy=info.get("dev_accuracy"), train_s_per_epoch=per_epoch,
                    train_rows=info.get("train_rows"), train_loss_terms=info.get("loss"),
                    train_method=info.get("method") or ("full" if trained else None),
                    lora_r=info.get("lora_r"), lora_alpha=info.get("lora_alpha"),
                    trainable_params=info.get("trainable_params"), train_runtime_s=info.get("train_runtime_s"),
                    train_peak_rss_mb=info.get("train_peak_rss_mb"),
                    train_rss_growth_mb=info.get("train_rss_growth_mb"),
                    train_peak_cuda_mb=info.get("train_peak_cuda_mb"),
                    merge_parity_max_abs_diff=info.get("merge_parity_max_abs_diff"))


def row_for(ctx: RunContext, variant: Variant, built: Built, result: ChildResult | ChildFailure,
             wall_s: float, scenarios: tuple[Speedup, ServerScenario | None, ColdStart | None],
             machine: Machine | None = None) -> Row:
    """The row from its parts: identity, outcome, artifact and training facts, what the child measured,
    roofline, the scenarios run across processes (interleaved speedup, Server, cold start), machine and
    bookkeeping. Validated strictly (bench.schema.Row.for_write)."""
    suite, (speedup, server, cold_start) = ctx.suite, scenarios
    ok = isinstance(result, ChildResult)
    identity = Identity(run_id=ctx.run_id, suite=suite.name, task=suite.task_name,
                        variant_id=variant.id, **variant.as_dict(), seed=built.seed)
    outcome = Outcome(status=result.status, error=None if ok else result.error)
    facts = _artifact_facts(built.artifacts[variant.artifact_key], backends.get(variant.format),
                            result.size_bytes if ok else None)
    measured = (result.row_fields(), _roofline(result, variant, ctx.peaks)) if ok else ()
    bookkeeping = Bookkeeping(schema_version=SCHEMA_VERSION, measure_wall_s=round(wall_s, 2),
                              measure_key=ctx.measure_key)
    return Row.for_write(identity, outcome, facts, _training(built.models[variant.model]), *measured, speedup,
                         server or ServerScenario(), cold_start or ColdStart(), machine or ctx.machine, bookkeeping,
                         {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def log_row(row: Row, wall: float) -> None:
    if row.status != "ok":
        log.error("  %s: %s", row.status, row.error)
        return
    log.info("  %s %.4f  p50 %.2f ms  p90 %.2f ms  (%.1f s)", row.metric, row.score,
             row.latency_p50_ms, row.latency_p90_ms, wall)
    if row.speedup_vs_reference is not None:
        log.info("  speedup vs %s %.3fx [%.3f, %.3f] over %d interleaved rounds", row.speedup_reference,
                 row.speedup_vs_reference, row.speedup_ci_low, row.speedup_ci_high, len(row.speedup_rounds))
    elif row.speedup_error:
        log.warning("  speedup rounds: %s", row.speedup_error)
    for entry in row.server or []:
        log.log(logging.WARNING if entry.error else logging.INFO,
                "  server (%s): max %s qps with p99 <= %g ms%s", entry.batching,
                "none" if entry.max_qps is None else f"{entry.max_qps:g}", entry.p99_bound_ms,
                f"; {entry.error}" if entry.error else "")
    if row.cold_start_ms is not None:
        log.info("  cold start %.0f ms (%s)", row.cold_start_ms,
                 ", ".join(f"{k} {v:.0f}" for k, v in row.cold_start_phases_ms.items()))
    elif row.cold_start_error:
        log.warning("  cold start: %s", row.cold_start_error)
    if row.e2e_p50_ms is not None:
        log.info("  end to end p50 %.2f ms, p95 %.2f ms (tokenizer %.0f %%)", row.e2e_p50_ms, row.e2e_p95_ms,
                 row.e2e_tokenizer_share_pct)
