"""`bench profile SUITE VARIANT_ID`: where one variant's time goes, per operator, on this machine.

Builds what the variant needs (from the artifact cache when it is there, like `bench run`), then
profiles it in a child process with the variant's threads (bench/child/op_profile.py): ONNX Runtime's
profiler for ONNX variants, torch.profiler for PyTorch ones, batch 1 over the dev stream (or
`--batch B --seq-len L`: B dev examples padded to L tokens per call, a grid cell). Prints the
ops largest first and the time by kind; `--json FILE` writes the same numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from bench.common.errors import BenchError
from bench.schema.op_kinds import KINDS, by_kind


def profile_variant(suite_path: Path, variant_id: str, results_root: Path, cache_dir: Path | None, calls: int,
                    seed: int | None = None, batch: int = 1, seq_len: int | None = None) -> dict:
    from bench.build.pipeline import build_all
    from bench.data.load import load_task_data
    from bench.launch.environment import child_env
    from bench.plan import Plan, make_plan
    from bench.run.suite_run import measure_spec
    from bench.spec.suite import OpProfileConfig, load_suite
    from bench.store.artifacts import ArtifactStore, cache_root

    try:
        shape = OpProfileConfig(calls=calls, batch=batch, seq_len=seq_len)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BenchError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    suite = load_suite(suite_path)
    plan = make_plan(suite, str(suite_path))
    variant = next((v for v in plan.variants if v.id == variant_id), None)
    if variant is None:
        skipped = {s.variant.id: s.reason for s in plan.skipped}
        why = f": skipped here ({skipped[variant_id]})" if variant_id in skipped else \
            f" (its variants: {', '.join(v.id for v in plan.variants)})"
        raise BenchError(f"variant {variant_id!r} is not measured by suite {suite.name}{why}")
    if seed is not None and seed not in suite.training_seeds:
        raise BenchError(f"--seed {seed}: suite {suite.name} trains seeds {suite.training_seeds}")
    data = load_task_data(suite.data, suite.task_def, suite.seed)
    built = build_all(suite, Plan(variants=[variant], skipped=[]), data,
                      ArtifactStore(cache_root(results_root, cache_dir)), seed)
    spec = measure_spec(suite, variant, built, data)
    spec = spec.model_copy(update={"measure": spec.measure.model_copy(update={"op_profile": shape})})
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        spec_path, out_path, log_path = (Path(tmp) / n for n in ("spec.json", "profile.json", "log"))
        spec_path.write_text(spec.to_json())
        with open(log_path, "w") as log:
            proc = subprocess.run([sys.executable, "-m", "bench.child.op_profile", str(spec_path), str(out_path)],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=child_env(variant.threads, suite.measure.allocator),
                                  timeout=suite.measure.timeout_s)
        if proc.returncode != 0 or not out_path.is_file():
            lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
            raise BenchError(f"profiling {variant_id} failed (exit code {proc.returncode}): "
                             f"{lines[-1] if lines else 'no output'}")
        result = json.loads(out_path.read_text())
    if not result:
        raise BenchError(f"{variant_id}: no op profiler is wired for {variant.format} on {variant.device} "
                         "(CPU ONNX Runtime and CPU PyTorch only)")
    return {"variant": variant_id, "seed": built.seed, "artifact": str(built.artifacts[variant.artifact_key].path),
            **result}


def format_profile(result: dict, top: int = 25) -> str:
    ops = result["op_profile"]
    kinds = by_kind(ops)
    total = result["op_profile_kernel_ms"]
    lines = [f"## {result['variant']} (seed {result['seed']})", "",
             f"{total:.4g} ms of op time per call ({result['op_profile_shape']}), {result['op_profile_calls']} "
             f"calls ({result['op_profile_source']}); artifact `{result['artifact']}`.", "",
             "| kind | ms / call | share |", "|---|---|---|"]
    lines += [f"| {k} | {kinds[k]:.4g} | {100 * kinds[k] / total if total else 0:.1f} % |" for k in KINDS]
    lines += ["", "| op | kind | ms / call | share | nodes / call |", "|---|---|---|---|---|"]
    lines += [f"| {o['op']} | {o['kind']} | {o['ms_per_inference']:.4g} | {o['share_pct']:.1f} % | "
              f"{o['nodes_per_inference']:g} |" for o in ops[:top]]
    if len(ops) > top:
        rest = sum(o["ms_per_inference"] for o in ops[top:])
        lines.append(f"| ({len(ops) - top} more) | | {rest:.4g} | {100 * rest / total if total else 0:.1f} % | |")
    return "\n".join(lines)
