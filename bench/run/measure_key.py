"""The measurement settings, hashed: one home for both hashes a run records.

- `measure_key` (every row): a variant whose latest row has the same key (and the same artifact) is not
  measured again when a run resumes. Settings that did not exist when older runs were measured are left
  out while unset (and the allocator while `system`), so those runs still resume.
- `measure_config_hash` (run.json `stages.measure.config_hash`): `bench plan`'s cost model prefers earlier
  measurements with the same settings. It hashes the whole `measure:` section as dumped; only sections
  added after the cost model existed are left out while unset, so earlier histories keep matching.
"""

from __future__ import annotations

from bench.spec.measure import MeasureConfig
from bench.store.artifacts import canonical_hash

# Optional sections older runs did not have, left out of both hashes while unset.
_SINCE_RESUME = ("interleave", "op_profile", "server", "cold_start", "end_to_end")
_SINCE_COST_MODEL = ("cold_start", "end_to_end")


def _without_unset(dumped: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in dumped.items() if not (k in keys and v is None)}


def measure_key(measure: MeasureConfig, data_fingerprint: str) -> str:
    settings = _without_unset(measure.model_dump(), _SINCE_RESUME)
    if settings["allocator"] == "system":
        del settings["allocator"]
    return canonical_hash({"measure": settings, "data": data_fingerprint})[:16]


def measure_config_hash(measure: MeasureConfig) -> str:
    return canonical_hash(_without_unset(measure.model_dump(mode="json"), _SINCE_COST_MODEL))[:12]
