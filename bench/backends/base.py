"""What a model format declares: its precisions and devices, why a machine cannot run a variant, how
its artifact is built from a trained model, the runtime that measures it, and its weight files.

plan, compress, run, the measuring child and the plots ask the format (bench.backends.get) instead of
branching on its name; a new format is one module here and one line in bench/backends/__init__.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bench.backends.runtime import Runtime
    from bench.build.compress import Compressor
    from bench.schema.variant import Variant
    from bench.spec.suite import MeasureConfig, QuantizeConfig
    from bench.store.artifacts import Artifact


class Format:
    name: ClassVar[str]
    precisions: ClassVar[frozenset[str]]
    devices: ClassVar[frozenset[str]] = frozenset({"cpu", "cuda"})
    has_graph_variants: ClassVar[bool] = False  # `graph: optimized` means something for this format
    weight_suffixes: ClassVar[tuple[str, ...]]  # the files counted in size_mb
    torch_cuda_memory: ClassVar[bool] = False  # the child reads torch.cuda's allocator peaks
    # Precisions whose logits for one example depend on the other examples of its batch: dynamic INT8
    # picks one activation scale per tensor over the whole batch (padding included). Their judged accuracy
    # is measured at batch 1, as SingleStream deploys them (bench/child/worker.py).
    batch_dependent_precisions: ClassVar[frozenset[str]] = frozenset()

    # `bench tune` measures cheap candidates first: a rank per precision, across formats (lower first);
    # a precision without one goes last.
    search_cost: ClassVar[dict[str, int]] = {}
    # Precisions whose artifact is a graph of quantized nodes the sensitivity pass can keep in float one
    # by one (bench/tune/node_ranking.py).
    node_quantized_precisions: ClassVar[frozenset[str]] = frozenset()
    # fp16/bf16 the format runs on a CPU (the plan skips the others there: they are planned for cuda).
    cpu_half_precisions: ClassVar[frozenset[str]] = frozenset()

    def converts_at_load(self, precision: str) -> bool:
        """The runtime converts the trained weights when it loads them: the artifact's size on disk is not
        the variant's, which is known only once measured (the runtime reports it)."""
        return False

    def batch_dependent(self, precision: str) -> bool:
        return precision in self.batch_dependent_precisions

    def calibrations(self, precision: str, quantize: QuantizeConfig) -> list[str]:
        """One variant per calibrator where the precision is calibrated; [""] otherwise."""
        return [""]

    def quant_recipes(self, precision: str, names: list[str]) -> list[str]:
        """The quantize recipes a variants line's `quant:` asks for, where this format applies them
        ("" for the suite-wide settings); [""] where it has none."""
        return [""]

    def skip_reason(self, variant: Variant, measure: MeasureConfig) -> str | None:
        """Why this machine cannot run a valid variant (planned as skipped, never reported)."""
        return None

    def build(self, compressor: Compressor, variant: Variant, model: Artifact) -> Artifact:
        """The artifact the variant measures, built from the trained model through the cache."""
        raise NotImplementedError

    def runtime(self, path: Path, device: str, threads: int, precision: str, gpu_provider: str) -> Runtime:
        """Load the artifact in `path` for measuring (bench/backends/)."""
        raise NotImplementedError

    def size_bytes(self, weights_dir: Path) -> int:
        return sum(f.stat().st_size for f in Path(weights_dir).iterdir() if f.suffix in self.weight_suffixes)
