"""One cold start: `python -m bench.child.cold_start SPEC.json OUT.json SPAWNED_AT`.

A fresh process loads the variant as a deployment would and answers two dev examples, timing each phase
(bench/scenarios/cold_start.py starts it, several times). SPAWNED_AT is the parent's wall clock just before
the spawn, so `interpreter` covers Python's own start. bench's own bookkeeping here (reading the spec, which
imports pydantic) is timed apart as `harness` and left out of the total: a deployment does not pay it.
"""

import time

_MAIN_AT = time.time()  # first, before any import this module makes

import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str]) -> int:
    spec_path, out_path, spawned_at = Path(argv[0]), Path(argv[1]), float(argv[2])
    from bench.common.lifetime import die_with_parent
    from bench.schema.child import ChildSpec
    from bench.schema.scenario_parts import COLD_START_PHASES

    die_with_parent()
    spec = ChildSpec.model_validate_json(spec_path.read_bytes())
    variant, path = spec.variant, Path(spec.artifact_dir)
    texts = spec.eval_sets[0].split().texts
    phases = {"interpreter": (_MAIN_AT - spawned_at) * 1e3}
    harness_ms = (time.time() - _MAIN_AT) * 1e3
    clock = time.perf_counter

    t = clock()
    # The runtime library (each backend's runtime.py imports it: onnxruntime, torch) and the tokenizer's.
    importlib.import_module(f"bench.backends.{variant.format}.runtime")
    from bench.backends.runtime import load_runtime
    from bench.backends.tokenizer import FastTokenizer
    from bench.scenarios.end_to_end import answer

    phases["import"] = (clock() - t) * 1e3
    t = clock()
    tokenizer = FastTokenizer(path)
    phases["tokenizer_load"] = (clock() - t) * 1e3
    t = clock()
    runtime = load_runtime(variant.format, path, variant.device, variant.threads, variant.precision,
                           spec.measure.ort_gpu_provider)
    phases["model_load"] = (clock() - t) * 1e3
    for name, i in (("first_call", 0), ("second_call", 1 % len(texts))):
        t = clock()
        encoding = texts.take([i]).encode(tokenizer, truncation=True, max_length=spec.max_length)
        answer(runtime.logits(runtime.run(runtime.prepare(encoding))))
        phases[name] = (clock() - t) * 1e3
    from bench.measure.memory import mb, vmhwm_bytes

    out = {"phases_ms": {k: round(phases[k], 3) for k in COLD_START_PHASES}, "harness_ms": round(harness_ms, 3),
           "peak_rss_mb": mb(vmhwm_bytes())}
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
