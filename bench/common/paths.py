"""Output paths stay inside their root (results/, reports/)."""

from __future__ import annotations

from pathlib import Path

from bench.common.errors import BenchError


def confined(root: Path, *parts: str) -> Path:
    """root/parts, refusing anything that resolves outside root (e.g. a run id of '../../etc')."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise BenchError(f"output path {path} is outside {root}")
    return path
