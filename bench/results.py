"""The results table: one JSON object per line in results/<suite>/<run-id>/results.jsonl.

Rows are appended with a single O_APPEND write followed by fsync, so concurrent writers never
interleave and a killed run leaves at most one partial last line, which readers ignore.
The schema is versioned (`schema_version`); README.md documents every field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"

# Identity of a row: the variant plus the suite seed. compare/report join on these, not on position.
IDENTITY = ["model", "format", "precision", "calibration", "graph", "device", "threads", "seed"]
# Identity fields added after the first rows were written, with the value those rows meant.
IDENTITY_DEFAULTS = {"graph": "plain", "calibration": ""}


def append_row(run_dir: Path, row: dict) -> None:
    line = (json.dumps({"schema_version": SCHEMA_VERSION, **row}, sort_keys=False, default=str) + "\n").encode()
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
    """Every complete row; a final line without its newline (an interrupted write) is skipped."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # the piece after the last newline is partial
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a partial line from a killed writer, ended by the next append
    return rows


def latest_rows(rows: list[dict]) -> list[dict]:
    """The last row of each (variant, seed): a resumed run re-measures failed variants after them."""
    latest = {(r["variant_id"], r.get("seed")): r for r in rows}
    return list(latest.values())


def load_results(run_dir: Path, raw: bool = False) -> pd.DataFrame:
    """Rows as a DataFrame; raw latency samples dropped unless raw=True (they are large)."""
    rows = latest_rows(read_rows(run_dir))
    if not raw:
        rows = [{k: v for k, v in r.items() if k != "latency_raw_ms"} for r in rows]
    rows = [IDENTITY_DEFAULTS | {k: v for k, v in r.items() if v is not None or k not in IDENTITY_DEFAULTS}
            for r in rows]
    return pd.DataFrame(rows)
