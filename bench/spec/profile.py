"""Judging profiles: budgets for `bench check`, `bench report` and `bench tune`.

A profile is bench/spec/profiles/<name>.yaml or any YAML file: which rows to judge (threads, device) and
a limit per budget key, validated like a suite (strict types, unknown keys are an error, one line naming
the file and the key). What each budget means and how it judges a row is bench/gate/check.py's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError

from bench.common.errors import BenchError
from bench.spec.messages import _format_error
from bench.spec.training import _Strict
from bench.spec.yamlload import safe_load_unique

_SCOPE = ("name", "threads", "device")  # which rows a profile judges; every other field is a budget


Limit = Annotated[float, Field(ge=0, strict=True)]  # strict: `true` is not a number, "40" is not either
Count = Annotated[int, Field(ge=1, strict=True)]
Text = Annotated[str, Field(strict=True)]


class Profile(_Strict):
    """An edge profile: which rows to judge (threads, device) and a limit per budget key; None: not judged."""

    name: str
    threads: Count | None = None
    device: Text | None = None
    max_size_mb: Limit | None = None
    max_peak_rss_mb: Limit | None = None
    max_p95_ms_bs1: Limit | None = None
    # Points (×100) of the task's primary metric, not only accuracy: the names predate tasks.
    max_accuracy_drop_vs_teacher_pts: Limit | None = None
    max_accuracy_drop_vs_fp32_pts: Limit | None = None
    max_opset: Count | None = None
    min_int8_matmul_coverage_pct: Limit | None = None
    allowed_op_domains: Annotated[tuple[Text, ...], Field(strict=False)] | None = None  # YAML gives a list
    min_server_qps: Limit | None = None  # measure.server: the highest offered rate within the p99 bound
    max_cold_start_ms: Limit | None = None  # measure.cold_start: median spawn to first answer
    max_e2e_p95_ms: Limit | None = None  # measure.end_to_end: text in, label out at batch 1
    max_energy_mj_per_inference: Limit | None = None  # a readable energy counter (never an estimate)

    def budgets(self) -> list[str]:
        """The keys this profile sets, in declaration order (bench/gate/check.py judges each one)."""
        return [k for k in type(self).model_fields if k not in _SCOPE and getattr(self, k) is not None]


# What a key takes, in the one-line error; every other key takes a number >= 0.
_EXPECTED = {"threads": "a positive integer", "max_opset": "a positive integer", "device": "a string",
             "allowed_op_domains": "a list of domain names"}


def _profile_error(err: dict, data: dict, file: str) -> str:
    """One line naming the file and the key, in the suite's style (bench.spec.messages)."""
    key = err["loc"][0] if err["loc"] else None
    allowed = [k for k in Profile.model_fields if k != "name"]
    if err["type"] == "extra_forbidden":
        return f"{file}: unknown key {key!r} (allowed: {', '.join(allowed)})"
    if key in allowed:
        return f"{file}: {key}: expected {_EXPECTED.get(key, 'a number >= 0')}, got {data[key]!r}"
    return _format_error(err, file)


def _profile_file(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if Path(text).suffix in (".yaml", ".yml") or "/" in text or Path(text).is_file():
        if not Path(text).is_file():
            raise BenchError(f"profile file not found: {text}")
        return Path(text)
    try:
        folder = resources.files("bench.spec") / "profiles"
    except (ModuleNotFoundError, TypeError):
        folder = Path(__file__).resolve().parent / "profiles"
    path = folder / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise BenchError(f"unknown profile {text!r} (known: {', '.join(known)}; or pass a YAML file path)")
    return Path(str(path))


def load_profile(name_or_path: str | Path) -> Profile:
    """A bare name loads bench/spec/profiles/<name>.yaml; anything ending in .yaml or holding a / is a path."""
    path = _profile_file(name_or_path)
    try:
        data = safe_load_unique(path.read_text(), path)
    except yaml.YAMLError as exc:
        raise BenchError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise BenchError(f"{path}: a profile is a mapping of budget keys, got {type(data).__name__}")
    if "name" in data:  # the name is the file's stem, not a key
        raise BenchError(_profile_error({"type": "extra_forbidden", "loc": ("name",)}, data, str(path)))
    try:
        return Profile.model_validate({**data, "name": path.stem})
    except ValidationError as exc:
        raise BenchError(_profile_error(exc.errors()[0], data, str(path))) from None
