"""`bench quick`'s errors name what the user typed (issue 30): the argument or option (`MODEL`, `--task`,
`--threads`, `--precision`, ...), never the temporary suite file it wrote; exit 2, nothing written."""

from __future__ import annotations

import pytest
from conftest import FIXTURE_DATA

from bench.cli import main

TINY = "tiny:layers=1,hidden=16,heads=2,intermediate=32"
CASES = [
    ([TINY], "MODEL: tiny:layers=1,hidden=16,heads=2,intermediate=32 is a random model"),
    (["/nonexistent/model"], "MODEL: '/nonexistent/model' is not a local model directory"),
    (["someone/sst2-model"], "MODEL: 'someone/sst2-model' is not a local directory and the hub is offline"),
    (["someone/sst2-model", "--task", "nosuchtask"], "--task: unknown task 'nosuchtask'"),
    (["someone/sst2-model", "--threads", "0"], "--threads: Input should be greater than 0"),
    (["someone/sst2-model", "--max-eval-samples", "0"], "--max-eval-samples: Input should be greater than 0"),
    (["~bench_no_such_user/model"], "MODEL: '~bench_no_such_user/model': no home folder"),
    (["someone/sst2-model", "--precision", "int3"], "--precision: int3 is not a precision"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[c[1][:20] for c in CASES])
def test_quick_errors_name_the_option_not_a_temporary_file(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    results = tmp_path / "results"
    capsys.readouterr()
    code = main(["quick", *args, "--results-dir", str(results), "--data", str(FIXTURE_DATA)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("bench: error: " + message.split(":")[0] + ":") and message in lines[0], err
    assert "bench-quick-" not in err and "suite.yaml" not in err and "teacher.source" not in err
    assert not results.exists()
