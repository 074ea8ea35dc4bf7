"""The load generator's process boundary (bench/child/load_client.py): what to offer the server, and
what came back at one rate. A LoadResult is the row's ServerLoad plus what the parent scores and drops
(the answers, the issue times)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from bench.schema.part import Part
from bench.schema.scenario_parts import ServerLoad


class LoadSpec(Part):
    url: str  # the server's base URL
    items: list[str | list[str]] = Field(min_length=1)  # the dev examples; a pair task: [first, second]
    target_qps: Annotated[float, Field(gt=0)]
    duration_s: Annotated[float, Field(gt=0)]
    p99_bound_ms: Annotated[float, Field(gt=0)]
    request_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    seed: int = 0
    log_dir: Path  # LoadGen's logs (mlperf_log_summary.txt, mlperf_log_detail.txt)
    cpus: list[int] | None = None  # pin the client (LoadGen and the HTTP loop) to these cores


class LoadResult(ServerLoad):
    client_cpu_pct: float  # always measured by the client (ServerLoad allows null for older rows)
    answers: dict[int, int | float] = {}  # dev example index -> the label (or score) the server answered
    issue_times_s: list[float] = []  # when LoadGen issued each query, from the first (the arrival process)
