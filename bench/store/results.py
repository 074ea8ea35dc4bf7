"""The results table and the one way to read a run.

results/<suite>/<run-id>/results.jsonl holds one JSON object per line (bench.schema.Row, flat).
Rows are appended with a single O_APPEND write followed by fsync, so concurrent writers never
interleave and a killed run leaves at most one partial last line, which readers ignore.

`open_run` is how report, check, compare, merge and the scripts read a run: rows validated against
the schema, run.json, the latest row per variant, the reference rows and the variant labels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from bench.common.errors import BenchError
from bench.schema.child import validation_message
from bench.schema.row import IDENTITY_DEFAULTS, IDENTITY_FIELDS, SCHEMA_VERSION, Row

__all__ = ["IDENTITY", "IDENTITY_DEFAULTS", "RESULTS_FILE", "RUN_FILE", "SCHEMA_VERSION", "Run", "append_row",
           "latest_rows", "load_results", "open_run", "read_rows", "reference_mask", "variant_label",
           "with_score"]

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"

# Identity of a row: the variant plus the training seed. compare/report join on these, not on position.
IDENTITY = list(IDENTITY_FIELDS)


def append_row(run_dir: Path, row: Row | dict) -> None:
    data = row.to_json_dict() if isinstance(row, Row) else row
    line = (json.dumps({"schema_version": SCHEMA_VERSION, **data}, sort_keys=False, default=str) + "\n").encode()
    path = run_dir / RESULTS_FILE
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # end the partial line a killed writer left, so ours starts clean
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(run_dir: Path) -> list[dict]:
    """Every complete row as a dict; a final line without its newline (an interrupted write) is skipped."""
    return [row for _, row in _complete_lines(Path(run_dir) / RESULTS_FILE)]


def _complete_lines(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_bytes().split(b"\n")[:-1], 1):  # after the last newline: partial
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError:
            continue  # a partial line from a killed writer, ended by the next append
    return rows


def latest_rows(rows: list[dict]) -> list[dict]:
    """The last row of each (variant, seed, cluster target): a resumed run re-measures failed variants after
    them."""
    latest = {(r["variant_id"], r.get("seed"), r.get("target")): r for r in rows}
    return list(latest.values())


def _with_identity_defaults(row: dict) -> dict:
    return IDENTITY_DEFAULTS | {k: v for k, v in row.items() if v is not None or k not in IDENTITY_DEFAULTS}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def with_score(row: dict) -> dict:
    """`metric` and `score` on every row: the task's primary metric and its value on the primary eval
    split. Rows written before tasks were declared (SST-2) carry neither: they read as metric
    "accuracy", score = accuracy."""
    if _missing(row.get("metric")):
        score = row.get("score")
        return {**row, "metric": "accuracy", "score": row.get("accuracy") if _missing(score) else score}
    return row if "score" in row else {**row, "score": None}


def variant_label(row) -> str:
    """`student onnx int8-static-minmax opt t2`: how reports and plots name a variant."""
    precision = f"{row['precision']}-{row['calibration']}" if row["calibration"] else row["precision"]
    precision += f"+{row['quant']}" if row.get("quant") else ""
    graph = " opt" if row["graph"] == "optimized" else ""
    return f"{row['model']} {row['format']} {precision}{graph} t{row['threads']}"


def reference_mask(df: pd.DataFrame, model: str | None = None) -> pd.Series:
    """Rows of the reference every compressed variant is judged against: the model's PyTorch FP32
    (the format that declares itself the reference, bench/backends/), optionally of one model."""
    from bench.spec.names import REFERENCE

    mask = (df["format"] == REFERENCE.format) & (df["precision"] == REFERENCE.precision)
    return mask & (df["model"] == model) if model is not None else mask


@dataclass
class Run:
    """A run directory read once: its validated rows (file order), and run.json."""

    path: Path
    rows: list[dict]
    info: dict = field(default_factory=dict)
    target: str | None = None  # only the rows measured on this cluster target (`bench run --cluster`)

    @property
    def run_id(self) -> str:
        return self.info.get("run_id") or self.path.name

    @property
    def suite(self) -> str | None:
        return self.info.get("suite")

    @property
    def cpu_model(self) -> str | None:
        return (self.info.get("environment") or {}).get("cpu", {}).get("model")

    @property
    def skipped(self) -> list[dict]:
        """What the plan skipped (and, on a cluster, what each target could not run), with the reasons."""
        skipped = self.info.get("skipped") or []
        return [s for s in skipped if self.target is None or s.get("target") in (None, self.target)]

    @property
    def targets(self) -> list[str]:
        """The cluster targets its rows were measured on (`bench run --cluster`); [] for a run on one machine."""
        return sorted({r["target"] for r in self.rows if r.get("target")})

    def on_target(self, target: str) -> Run:
        """This run's rows measured on `target`: each target is judged apart (its own decision)."""
        if target not in self.targets:
            raise BenchError(f"--target {target}: {self.path} has no rows measured on it "
                             f"(its targets: {', '.join(self.targets) or 'none: it ran on one machine'})")
        return Run(self.path, self.rows, self.info, target)

    def latest(self) -> list[dict]:
        rows = self.rows if self.target is None else [r for r in self.rows if r.get("target") == self.target]
        return latest_rows(rows)

    def frame(self, raw: bool = False) -> pd.DataFrame:
        """The latest row per (variant, seed) as a DataFrame; raw latency samples dropped unless raw=True.
        Every row has `metric` and `score` (see `with_score`: older rows read as accuracy)."""
        rows = self.latest()
        if not raw:
            rows = [{k: v for k, v in r.items() if k != "latency_raw_ms"} for r in rows]
        return pd.DataFrame([with_score(_with_identity_defaults(r)) for r in rows])


def open_run(run_dir: Path | str, side: str = "", target: str | None = None) -> Run:
    """Read a run directory: every complete row checked against the schema (a field no part declares,
    or a wrong type, is a one-line error naming the file, line and field), and run.json if present.
    `target`: only the rows measured on that cluster target (Run.on_target)."""
    run_dir = Path(run_dir)
    where = f"{side} {run_dir}" if side else str(run_dir)
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise BenchError(f"{where}: no {RESULTS_FILE} (is this a run directory?)")
    rows = []
    for number, row in _complete_lines(path):
        try:
            Row.model_validate(row)
        except ValidationError as exc:
            raise BenchError(validation_message(exc, f"{path}:{number}")) from None
        rows.append(row)
    if not rows:
        raise BenchError(f"{side + ' ' if side else ''}{path}: no complete rows")
    info_path = run_dir / RUN_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    run = Run(run_dir, rows, info)
    return run.on_target(target) if target is not None else run


def load_results(run_dir: Path, raw: bool = False) -> pd.DataFrame:
    """The latest rows of a run as a DataFrame (see Run.frame); empty when the run has no rows."""
    rows = read_rows(run_dir)
    return Run(Path(run_dir), rows).frame(raw) if rows else pd.DataFrame()


def pareto_mask(cost: pd.Series, value: pd.Series) -> np.ndarray:
    """True where no other point is at least as cheap and at least as good, and strictly better in one."""
    c, v = cost.to_numpy(float), value.to_numpy(float)
    mask = np.ones(len(c), dtype=bool)
    for i in range(len(c)):
        dominated = (c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))
        mask[i] = not dominated.any()
    return mask
