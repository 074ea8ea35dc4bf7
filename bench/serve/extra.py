"""`bench serve` and the Server scenario need the serve extra; say so before anything runs."""

from __future__ import annotations

from bench.common.errors import BenchError


def require_serve_extra(what: str) -> None:
    """A clear error before anything runs when the `serve` extra is not installed."""
    import importlib

    for module in ("fastapi", "uvicorn", "aiohttp", "httpx", "mlperf_loadgen"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BenchError(f"{what} needs the serve extra ({exc}): pip install 'bench-bert[serve]'") from None
