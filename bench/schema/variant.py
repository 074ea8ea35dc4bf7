"""A variant: one model in one format, precision, graph and quantize recipe on one device and thread
count. The one declaration of its fields: the plan expands suites into Variants, the measuring child's
spec carries one (bench.schema.child.ChildSpec), and the results row's identity columns take their
meanings and defaults from here (bench.schema.row.Identity)."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass


@dataclass(frozen=True, order=True, config=ConfigDict(extra="forbid"))
class Variant:
    model: str = Field(description="`teacher`, `student` or a name under `students:`")
    format: str = Field(description="`pytorch`, `onnx`, `tensorrt` or `openvino` (bench/backends/)")
    precision: str = Field(description="`fp32`, `fp16`, `bf16`, `int8-dynamic`, `int8-static` or `int8`")
    device: str = Field(description="`cpu` or `cuda`")
    threads: int = Field(gt=0, description="intra-op threads of the measuring child")
    graph: str = Field("plain", description="`plain`, or `optimized` (ONNX Runtime transformer optimizer)")
    calibration: str = Field("", description="the int8-static calibrator (`minmax`, `entropy`, `percentile`); "
                                             "empty otherwise")
    quant: str = Field("", description="ONNX INT8: the quantize recipe (`quantize.recipes`, `variants[].quant`); "
                                       "empty for the suite-wide `quantize:` settings")

    @property
    def id(self) -> str:
        precision = f"{self.precision}-{self.calibration}" if self.calibration else self.precision
        graph = "-opt" if self.graph == "optimized" else ""
        recipe = f"+{self.quant}" if self.quant else ""  # last before the fixed -device-tN: never ambiguous
        return f"{self.model}-{self.format}-{precision}{graph}{recipe}-{self.device}-t{self.threads}"

    @property
    def artifact_key(self) -> tuple:
        """What the artifact depends on: not the device or thread count it is measured with."""
        return (self.model, self.format, self.precision, self.graph, self.calibration, self.quant)

    def as_dict(self) -> dict:
        return asdict(self)


def field_of(name: str):
    """The declaration of one of Variant's fields, for a record that lists it among its own columns."""
    return Variant.__pydantic_fields__[name]
