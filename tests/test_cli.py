"""The CLI never shows a traceback for a user's mistake: help works, duplicate YAML keys are one-line
errors, -v/-q work anywhere on the line."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from bench.cli import build_parser, main

GOLDEN_RUN = Path(__file__).resolve().parent / "golden" / "baseline"


def _subcommands() -> list[str]:
    """Every subcommand the parser knows: a new one is covered without touching this file."""
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


@pytest.fixture(autouse=True)
def _restore_bench_log_level():
    logger = logging.getLogger("bench")
    level = logger.level
    yield
    logger.setLevel(level)


# ---------------------------------------------------------------- --help


def test_subcommands_discovered():
    assert {"plan", "run", "check", "compare", "calibrate"} <= set(_subcommands())


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bench")
    for name in _subcommands():
        assert name in out


@pytest.mark.parametrize("command", _subcommands())
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bench {command}")
    assert "--verbose" in out and "--quiet" in out


# ---------------------------------------------------------------- duplicate YAML keys


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bench: error: ")
    return lines[0]


def _line_of(text: str, prefix: str, nth: int = 0) -> int:
    """1-based line number of the nth line of text starting with prefix."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith(prefix)]
    return hits[nth]


def test_valid_suite_plans(tiny_suite):
    assert main(["plan", str(tiny_suite())]) == 0


def test_duplicate_top_level_key(tiny_suite, write_suite, capsys):
    text = tiny_suite().read_text() + "seed: 8\n"
    path = write_suite(text, "dup.yaml")
    assert main(["plan", str(path)]) == 2
    first, second = _line_of(text, "seed:"), _line_of(text, "seed:", 1)
    assert _one_error_line(capsys) == f"bench: error: {path}: duplicate key 'seed' (lines {first} and {second})"


def test_duplicate_block(tiny_suite, write_suite, capsys):
    text = tiny_suite().read_text() + "measure:\n  threads: [2]\n"
    path = write_suite(text, "dup.yaml")
    assert main(["run", str(path)]) == 2
    line = _one_error_line(capsys)
    assert "'measure'" in line and str(path) in line
    assert f"(lines {_line_of(text, 'measure:')} and {_line_of(text, 'measure:', 1)})" in line


def test_duplicate_nested_key_in_teacher_finetune(tiny_suite, write_suite, capsys):
    text = tiny_suite().read_text()
    old = next(line for line in text.splitlines() if line.startswith("  finetune:"))
    text = text.replace(old, "  finetune:\n    epochs: 1\n    lr: 1.0e-3\n    batch_size: 16\n    lr: 2.0e-3")
    path = write_suite(text, "dup.yaml")
    assert main(["plan", str(path)]) == 2
    first, second = _line_of(text, "    lr:"), _line_of(text, "    lr:", 1)
    assert _one_error_line(capsys) == f"bench: error: {path}: duplicate key 'lr' (lines {first} and {second})"


def test_duplicate_key_in_flow_mapping(tiny_suite, write_suite, capsys):
    text = tiny_suite().read_text().replace("finetune: {epochs: 1,", "finetune: {epochs: 1, epochs: 2,")
    path = write_suite(text, "dup.yaml")
    assert main(["plan", str(path)]) == 2
    n = _line_of(text, "  finetune:")
    assert _one_error_line(capsys) == f"bench: error: {path}: duplicate key 'epochs' (lines {n} and {n})"


def test_existing_yaml_errors_unchanged(write_suite, capsys):
    path = write_suite("name: [unclosed\n")
    assert main(["plan", str(path)]) == 2
    assert "invalid YAML" in _one_error_line(capsys)
    path.write_bytes(b"name: \xff\n")
    assert main(["plan", str(path)]) == 2
    assert "not UTF-8 text" in _one_error_line(capsys)


def test_unsafe_tags_still_refused(write_suite, capsys):
    path = write_suite("name: !!python/object/apply:os.system ['true']\n")
    assert main(["plan", str(path)]) == 2
    assert "invalid YAML" in _one_error_line(capsys)


def test_merge_keys_may_be_overridden():
    from bench.spec.yamlload import safe_load_unique

    assert safe_load_unique("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n", "f.yaml") == {
        "a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}


def test_duplicate_key_in_profile(tmp_path, capsys):
    profile = tmp_path / "edge.yaml"
    profile.write_text("threads: 1\nmax_size_mb: 40\ndevice: cpu\nmax_size_mb: 400\n")
    assert main(["check", str(GOLDEN_RUN), "--profile", str(profile)]) == 2
    assert _one_error_line(capsys) == f"bench: error: {profile}: duplicate key 'max_size_mb' (lines 2 and 4)"


# ---------------------------------------------------------------- -v / -q anywhere


@pytest.mark.parametrize(("argv", "level"), [
    (["plan", "{suite}", "-v"], logging.DEBUG),
    (["-v", "plan", "{suite}"], logging.DEBUG),  # the subparser must not reset it to False
    (["plan", "{suite}", "--quiet"], logging.WARNING),
    (["-q", "plan", "{suite}"], logging.WARNING),
    (["plan", "{suite}"], logging.INFO),
])
def test_verbose_quiet_anywhere(tiny_suite, argv, level):
    suite = str(tiny_suite())
    assert main([a.replace("{suite}", suite) for a in argv]) == 0
    assert logging.getLogger("bench").level == level


@pytest.mark.parametrize("argv", [["plan", "{suite}", "-v", "-q"], ["-v", "plan", "{suite}", "-q"],
                                  ["-q", "-v", "plan", "{suite}"]])
def test_verbose_and_quiet_conflict(tiny_suite, argv, capsys):
    suite = str(tiny_suite())
    assert main([a.replace("{suite}", suite) for a in argv]) == 2
    line = _one_error_line(capsys)
    assert "--verbose" in line and "--quiet" in line


def test_quiet_hides_bench_info(caplog):
    with caplog.at_level(logging.DEBUG):  # capture everything the bench logger lets through
        assert main(["-q", "check", str(GOLDEN_RUN), "--profile", "edge-cpu-1t"]) in (0, 1)
        logging.getLogger("bench.test").info("progress")
        logging.getLogger("bench.test").warning("attention")
    messages = [r.getMessage() for r in caplog.records if r.name == "bench.test"]
    assert messages == ["attention"]


@pytest.mark.parametrize("breaker", ["\x1e", "\x0b", "\x85", "\u2028"])
def test_an_error_stays_one_line_whatever_line_breaks_the_user_text_holds(tiny_suite, write_suite, capsys, breaker):
    # str.splitlines() breaks on these too (found by the suite fuzzer with data.path: "\x1e").
    import yaml

    suite = yaml.safe_load(tiny_suite().read_text())
    suite["data"]["path"] = f"no{breaker}such"
    path = write_suite(yaml.safe_dump(suite, allow_unicode=True), "breaker.yaml")
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"bench: error: {path}: data.path")
