"""Suite → plan: the variants to build and measure, and those skipped with the reason.

Invalid combinations (TensorRT on CPU, static INT8 in PyTorch, ...) are suite errors (exit 2).
Valid combinations this machine or this release cannot run are skipped, with the reason printed by
`bench plan` and `bench run`, and never reported as measured.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bench import backends
from bench.backends import probes
from bench.common.errors import BenchError
from bench.schema.variant import Variant
from bench.spec.suite import MeasureConfig, Suite


@dataclass(frozen=True)
class Skipped:
    variant: Variant
    reason: str


@dataclass(frozen=True)
class Plan:
    variants: list[Variant]
    skipped: list[Skipped]


def skip_reason(v: Variant, measure: MeasureConfig) -> str | None:
    """Why this machine cannot run `v`, or None: device-wide reasons first (no GPU, half precision on CPU),
    then the format's own. On a cluster each target's node answers it (bench/run/cluster.py)."""
    fmt = backends.get(v.format)
    if v.device == "cpu" and v.precision in ("fp16", "bf16") and v.precision not in fmt.cpu_half_precisions:
        return f"{v.precision} on cpu: {v.format} plans it for cuda devices only"
    if v.device == "cuda" and not probes.cuda_available():
        return "cuda: no GPU (torch.cuda.is_available() is False)"
    return fmt.skip_reason(v, measure)


def _check_valid(index: int, fmt: backends.Format, precision: str, device: str, file: str) -> None:
    where = f"{file}: variants[{index}]"
    if precision not in fmt.precisions:
        allowed = ", ".join(sorted(fmt.precisions))
        raise BenchError(f"{where}.precision: {fmt.name} does not support {precision} (allowed: {allowed})")
    if device not in fmt.devices:
        raise BenchError(f"{where}.device: {fmt.name} runs on {' or '.join(sorted(fmt.devices))} only, "
                         f"got {device!r}")


def onnx_models(suite: Suite) -> set[str]:
    """Models whose source is an ONNX graph (measured as it is): they exist in format onnx only."""
    from bench.tasks.onnx_source import is_onnx_source

    sources = {"teacher": suite.teacher.source} | {
        name: cfg.source for name, cfg in suite.all_students.items() if not cfg.trains and cfg.source}
    return {name for name, src in sources.items() if is_onnx_source(src)}


def make_plan(suite: Suite, file: str = "suite", here: bool = True) -> Plan:
    """Expand every variants line into the product of its lists, one variant per thread count. `here`: skip
    what this machine cannot run; False (a cluster run) plans every valid variant, and each target's node
    says what it cannot run."""
    seen: dict[Variant, None] = {}
    onnx_only = onnx_models(suite)
    for i, spec in enumerate(suite.variants):
        for model, name, precision, device, graph in itertools.product(
            spec.model, spec.format, spec.precision, spec.device, spec.graph
        ):
            fmt = backends.get(name)
            _check_valid(i, fmt, precision, device, file)
            if model in onnx_only and name != "onnx":
                raise BenchError(f"{file}: variants[{i}].format: {model} is an ONNX model (its source is a .onnx "
                                 f"graph); it is measured as format onnx only, not {name}")
            graph = graph if fmt.has_graph_variants else "plain"
            calibrations = fmt.calibrations(precision, suite.quantize)
            recipes = fmt.quant_recipes(precision, spec.quant)
            # Threads only matter on CPU; a GPU variant is measured once.
            threads = spec.threads or suite.measure.threads
            threads = threads if device == "cpu" else threads[:1]
            for t, calibration, quant in itertools.product(threads, calibrations, recipes):
                seen.setdefault(Variant(model, name, precision, device, t, graph, calibration, quant))
    runnable, skipped = [], []
    for v in seen:
        reason = skip_reason(v, suite.measure) if here else None
        (skipped.append(Skipped(v, reason)) if reason else runnable.append(v))
    return Plan(variants=runnable, skipped=skipped)


def shard_plan(plan: Plan, index: int, count: int) -> Plan:
    """Shard `index` of `count` (1-based): every count-th variant in id order, so each shard is the same
    on every machine and the shards together are the whole plan."""
    ordered = sorted(plan.variants, key=lambda v: v.id)
    return Plan(variants=ordered[index - 1 :: count], skipped=plan.skipped)


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise BenchError(f"--shard: expected I/N with 1 <= I <= N, got {text!r}")
    return int(index), int(count)


def format_plan(plan: Plan, suite: Suite, bill=None) -> str:
    """The variants run and skipped; with `bill` (bench.run.bill.Bill), what the run builds, the rows it writes
    and its estimated wall time."""
    seeds = len(suite.training_seeds)
    lines = [f"suite {suite.name}: {len(plan.variants)} variant(s) to measure, {len(plan.skipped)} skipped; "
             f"{seeds} seed(s): {len(plan.variants) * seeds} rows"]
    for v in plan.variants:
        lines.append(f"  run   {v.id}")
    for s in plan.skipped:
        lines.append(f"  skip  {s.variant.id}: {s.reason}")
    if bill is not None:
        lines.append(bill.format())
    return "\n".join(lines)
