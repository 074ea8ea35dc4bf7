"""PyTorch artifacts: the trained folder itself (fp32), or a record that the runtime converts the
trained weights at load (int8-dynamic, fp16, bf16), with its parity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.build.compress import Compressor
    from bench.store.artifacts import Artifact


def converted(c: Compressor, model: Artifact, precision: str, device: str) -> Artifact:
    """No new weights: the runtime converts at load. The artifact records parity and points at the source."""

    def build(out: Path) -> dict:
        parity = c.parity(model, out, "pytorch", f"pytorch-{precision}-{model.kind}", None, device=device,
                              precision=precision, runtime_dir=model.path)
        return {"weights_dir": str(model.path), **parity}

    spec = {"precision": precision, "device": device, **c.parity_spec()}
    return c.store.get_or_build(f"pytorch-{precision}-{model.kind}", spec, [model], build)
