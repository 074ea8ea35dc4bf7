"""`bench quick MODEL`: measure a model you already have, in one line.

It writes the suite it runs (the model as the suite's teacher, `finetune: null`, so nothing trains),
runs it like `bench run`, and leaves that suite in the run folder as `suite.yaml`, so
`bench run results/<name>/<run-id>/suite.yaml` reproduces the run and is the place to grow it
(more precisions, a student, a grid).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from bench import backends
from bench.common.errors import BenchError
from bench.spec.measure import DEFAULT_THREADS

SUITE_FILE = "suite.yaml"


def _slug(model: str) -> str:
    base = Path(model.rstrip("/")).name or model
    return ("quick-" + re.sub(r"[^A-Za-z0-9._-]+", "-", base.removesuffix(".onnx")).strip("-."))[:64]


def quick_suite(model: str, task: str = "sst2", precisions: list[str] | None = None,
                fmts: list[str] | None = None, threads: list[int] | None = None, data: str | None = None,
                max_eval_samples: int | None = None) -> dict:
    """The suite `bench quick` runs, as a plain mapping (YAML-ready)."""
    from bench.tasks.onnx_source import onnx_model_file

    try:
        local = Path(model).expanduser()
    except RuntimeError:  # `~name` for a user that does not exist
        raise BenchError(f"MODEL: {model!r}: no home folder for {model.split('/')[0]!r}") from None
    source = str(local.resolve()) if local.exists() else model
    is_onnx = local.exists() and onnx_model_file(local) is not None
    fmts = ["onnx"] if is_onnx else (fmts or ["pytorch", "onnx"])
    precisions = precisions or ["fp32"]
    variants = []
    for name in fmts:
        fmt = backends.get(name)
        wanted = [p for p in dict.fromkeys(["fp32", *precisions]) if p in fmt.precisions]
        if wanted:
            variants.append({"model": "teacher", "format": name, "precision": wanted})
    unknown = sorted(set(precisions) - {p for v in variants for p in v["precision"]})
    if unknown:
        raise BenchError(f"--precision: {', '.join(unknown)} is not a precision of {', '.join(fmts)} "
                         f"(see docs/suite.md: formats and precisions)")
    suite: dict = {"name": _slug(model), "task": task, "teacher": {"source": source, "finetune": None},
                   "variants": variants, "measure": {"threads": threads or [DEFAULT_THREADS]}}
    if data is not None or max_eval_samples is not None:
        suite["data"] = {}
    if data is not None:
        suite["data"]["path"] = str(Path(data).expanduser().resolve() / task)
    if max_eval_samples is not None:
        suite["data"]["max_eval_samples"] = max_eval_samples
    return suite


# The suite field each command-line option or argument becomes (error lines name what the user typed).
OPTION_OF_FIELD = (("teacher.source", "MODEL"), ("teacher", "MODEL"), ("task", "--task"),
                   ("data.max_eval_samples", "--max-eval-samples"), ("data.path", "--data"), ("data", "--data"),
                   ("measure.threads", "--threads"), ("measure", "--threads"))


def _option_error(exc: BenchError, path: Path) -> BenchError:
    """The error of the suite `bench quick` wrote, said in terms of the command line: no temporary file,
    and the option or argument (`MODEL`, `--task`, ...) instead of the suite field it became."""
    message = str(exc)
    prefix = f"{path}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
        field, sep, why = message.partition(": ")
        if sep:
            if field.startswith("variants"):
                option = "--precision" if "precision" in field else "--format"
                message = f"{option}: {why}"
            else:
                for name, option in OPTION_OF_FIELD:
                    if field == name or field.startswith(name + ".") or field.startswith(name + "["):
                        message = f"{option}: {why}"
                        break
    message = message.replace(str(path), "the suite bench quick wrote")
    return BenchError(message)


def run_quick(model: str, results_root: Path, run_id: str | None = None, cache_dir: Path | None = None,
              **options) -> Path:
    """Write the suite, run it, keep the suite in the run folder; returns the run folder."""
    from bench.run.suite_run import run_suite
    from bench.spec.suite import load_suite

    text = yaml.safe_dump(quick_suite(model, **options), sort_keys=False)
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-quick-") as tmp:
        path = Path(tmp) / SUITE_FILE
        path.write_text(text)
        try:
            load_suite(path)  # a bad model, task or option is exit 2 before anything is written
        except BenchError as exc:
            raise _option_error(exc, path) from None
        try:
            run_dir = run_suite(path, results_root, run_id, cache_dir=cache_dir)
        except BenchError as exc:
            raise _option_error(exc, path) from None
        finally:
            written = Path(results_root) / yaml.safe_load(text)["name"] / run_id
            if written.is_dir():  # the run folder exists (even if a variant failed): leave the suite in it
                shutil.copy2(path, written / SUITE_FILE)
    return run_dir
