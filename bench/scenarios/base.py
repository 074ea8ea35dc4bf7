"""How a variant is measured: one scenario each, behind one interface.

A scenario takes a prepared variant and returns the fields of its row part:

- in the measuring child (bench/child/worker.py), on the variant it has loaded (`Loaded`):
  SingleStream (single_stream.py: batch 1 over the dev stream, always), the batch x length grid
  (grid.py, `measure.grid`), Offline (offline.py, `measure.offline`) and text in, label out
  (end_to_end.py, `measure.end_to_end`);
- across processes, run by the parent once the child has measured the variant (`Measured`): the
  interleaved speedup over the reference (interleave.py, `measure.interleave`), the Server
  scenario (server.py, `measure.server`) and cold starts in fresh processes (cold_start.py,
  `measure.cold_start`).

A new scenario is one module here, named by the measure section that turns it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bench.backends.runtime import Runtime
    from bench.measure.energy import EnergyMeter
    from bench.measure.memory import PeakSampler
    from bench.schema.child import ChildSpec
    from bench.schema.variant import Variant
    from bench.spec.measure import MeasureConfig
    from bench.tasks.table import Texts


@dataclass
class Loaded:
    """A variant loaded in the measuring child, ready to time (bench.measure.stream.load_stream): the
    primary eval split's texts, each example tokenised (unpadded) and converted to the runtime's inputs."""

    spec: ChildSpec
    runtime: Runtime
    tokenizer: Any
    texts: Texts
    encodings: list[dict]
    stream: list
    sampler: PeakSampler | None = None
    energy: EnergyMeter | None = None  # the machine's energy counters, or why there are none
    timed: Any = None  # the call SingleStream timed (the runtime's, or the planted slowdown's wrapper)
    samples: Any = None  # SingleStream's per-call milliseconds, unrounded


@dataclass
class Measured:
    """A variant the measuring child has measured: its spec and, for rounds, the child still serving it."""

    variant: Variant
    spec: ChildSpec
    serving: Any = None  # the child's RoundWorker side (interleave), None when it did not stay up


class InChild(Protocol):
    name: str  # also the measure_phase_s key of its phase

    def wanted(self, measure: MeasureConfig) -> bool:
        """Whether the suite's measure settings ask for it."""

    def run(self, loaded: Loaded) -> dict:
        """Its row fields, measured on the loaded variant."""


class AcrossProcesses(Protocol):
    def measure(self, measured: Measured) -> Any:
        """Its row part (bench.schema.row), measured with the variant's own process or a server of it."""
