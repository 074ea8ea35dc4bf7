"""The suite file's vocabulary of formats and precisions, and the reference every variant is judged
against. Kept here, at the floor, so the suite schema, the stored rows and the gates can name them
without importing the backends; bench/backends/__init__.py checks that its registry says the same."""

from __future__ import annotations

from dataclasses import dataclass

# One per folder under bench/backends/ (docs/formats.md: adding a backend).
FORMAT_NAMES = ("pytorch", "onnx", "tensorrt", "openvino")
# Every precision some format accepts, in the order messages list them.
PRECISIONS = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static", "int8")


@dataclass(frozen=True)
class Reference:
    """The variant every compressed one is judged against (accuracy drop, parity, speedup)."""

    format: str
    precision: str


# The trained model as it comes out of training: what every variant is compared with.
REFERENCE = Reference(format="pytorch", precision="fp32")
# The model whose reference variant is the bar (accuracy drop vs teacher, interleaved speedup).
REFERENCE_MODEL = "teacher"


def is_reference_variant(variant) -> bool:
    """The teacher at the reference format and precision (a Variant, or anything with those fields)."""
    return (variant.model, variant.format, variant.precision) == (REFERENCE_MODEL, REFERENCE.format,
                                                                  REFERENCE.precision)
