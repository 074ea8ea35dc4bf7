"""The measuring child's process boundary, typed and checked at both ends.

`bench run` writes a `ChildSpec` (JSON) for `python -m bench.measure.worker`; the worker validates it
when it reads it and validates its own `ChildResult` before writing it; the parent validates the
result file again when it reads it. A result missing a field the measurement parts require, or
carrying one no part declares, fails there with the field named and becomes a `failed` row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from bench.schema.row import CHILD_PARTS, Part
from bench.suite import MeasureConfig


class ChildVariant(Part):
    model: str
    format: str
    precision: str
    device: str
    threads: int = Field(gt=0)
    graph: str = "plain"
    calibration: str = ""


class ChildSpec(Part):
    variant: ChildVariant
    artifact_dir: Path  # the folder the format's runtime loads
    sentences: list[str] = Field(min_length=1)  # the eval split, in order
    labels: list[int]
    max_length: int = Field(gt=0)
    measure: MeasureConfig = MeasureConfig()

    def to_json(self) -> str:
        return self.model_dump_json()


class ChildResult(*CHILD_PARTS):
    """What a successful child measured: every field of the child's parts (bench.schema.row)."""

    status: Literal["ok"] = "ok"
    # A conversion done at load (PyTorch int8/fp16) knows its own weight size; the parent turns it
    # into size_mb and does not store it.
    size_bytes: int | None = None

    def row_fields(self) -> dict:
        return self.model_dump(exclude_unset=True, exclude={"status", "size_bytes"})


class ChildFailure(Part):
    status: Literal["failed", "timeout", "memory-limit"]
    error: str


def validation_message(exc: ValidationError, what: str) -> str:
    """One line naming the first bad field: `child result: accuracy: Field required`."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{what}: {where}: {err['msg']}" + (f" ({len(exc.errors())} problems)" if len(exc.errors()) > 1 else "")
