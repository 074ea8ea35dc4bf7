import re

import pytest
from conftest import FIXTURE_DATA

from bench.cli import main
from bench.common.errors import BenchError
from bench.plan import make_plan
from bench.spec.suite import load_suite

SUITE = """
name: p
data: {{path: {data}}}
teacher: {{source: "tiny"}}
student: {{layers: [0]}}
measure: {{threads: [1, 2]}}
variants:
{variants}
"""


def plan_for(write_suite, tmp_path, variants: str):
    path = write_suite(SUITE.format(data=tmp_path, variants=variants))
    return make_plan(load_suite(path), str(path))


def test_product_of_lists_and_threads(write_suite, tmp_path):
    plan = plan_for(write_suite, tmp_path, "  - {model: [teacher, student], format: [pytorch, onnx]}")
    assert sorted(v.id for v in plan.variants) == sorted(
        f"{m}-{f}-fp32-cpu-t{t}" for m in ("teacher", "student") for f in ("pytorch", "onnx") for t in (1, 2)
    )
    assert plan.skipped == []


def test_duplicates_are_merged(write_suite, tmp_path):
    plan = plan_for(write_suite, tmp_path, "  - {model: teacher, format: onnx}\n  - {model: teacher, format: onnx}")
    assert len(plan.variants) == 2  # two thread counts, not four


def test_unimplemented_and_unavailable_are_skipped_with_reason(write_suite, tmp_path):
    plan = plan_for(
        write_suite, tmp_path,
        "  - {model: student, format: onnx, precision: int8-static}\n"
        "  - {model: student, format: pytorch, precision: fp16}\n"
        "  - {model: student, format: pytorch, device: cuda}",
    )
    reasons = {s.variant.id: s.reason for s in plan.skipped}
    # int8-static expands over the suite's calibrators (default: minmax) and runs on CPU.
    assert {v.id for v in plan.variants} >= {"student-onnx-int8-static-minmax-cpu-t1"}
    assert "fp16 on cpu: pytorch plans it for cuda devices only" in reasons["student-pytorch-fp16-cpu-t1"]
    import torch

    if not torch.cuda.is_available():
        assert reasons["student-pytorch-fp32-cuda-t1"].startswith("cuda: no GPU")
        assert all(v.device == "cpu" for v in plan.variants)


@pytest.mark.parametrize(
    "line,expect",
    [
        ("{model: student, format: tensorrt, precision: fp16, device: cpu}", "variants[0].device: tensorrt runs on cuda only"),
        ("{model: student, format: pytorch, precision: int8-static}", "variants[0].precision: pytorch does not support int8-static"),
        ("{model: student, format: tensorrt, precision: int8-dynamic, device: cuda}", "tensorrt does not support int8-dynamic"),
    ],
)
def test_invalid_combinations_are_errors(write_suite, tmp_path, line, expect):
    with pytest.raises(BenchError, match=re.escape(expect)):
        plan_for(write_suite, tmp_path, f"  - {line}")


def test_plan_command_prints_runs_and_skips(write_suite, tmp_path, capsys):
    # Real (fixture) data: on a GPU machine the pytorch fp16 variant is runnable and plan checks the data.
    path = write_suite(SUITE.format(data=FIXTURE_DATA / "sst2",
                                    variants="  - {model: teacher, format: [pytorch, tensorrt], precision: fp16, device: cuda}"))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "skip  teacher-tensorrt-fp16-cuda-t1" in out
    assert not list(tmp_path.glob("results*"))  # plan builds and writes nothing


def test_plan_rejects_unknown_model_source(write_suite, tmp_path, capsys):
    path = write_suite(SUITE.format(data=tmp_path, variants="  - {model: teacher, format: pytorch}").replace('"tiny"', '"./no/such/dir"'))
    assert main(["plan", str(path)]) == 2
    assert "teacher.source: './no/such/dir' is not a local model directory" in capsys.readouterr().err
