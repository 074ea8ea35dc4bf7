"""The model formats bench can build and measure, one module each (bench/formats/base.py says what a
format declares). Adding a format: a module here and its line in FORMATS (docs/formats.md)."""

from __future__ import annotations

from bench.formats.base import Format, Reference
from bench.formats.onnx import OnnxFormat
from bench.formats.pytorch import PyTorchFormat
from bench.formats.tensorrt import TensorRTFormat

FORMATS: dict[str, Format] = {f.name: f for f in (PyTorchFormat(), OnnxFormat(), TensorRTFormat())}
FORMAT_NAMES = tuple(FORMATS)
_ORDER = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static", "int8")  # how messages list them
_ALL = {p for f in FORMATS.values() for p in f.precisions}
PRECISIONS = tuple(p for p in _ORDER if p in _ALL) + tuple(sorted(_ALL - set(_ORDER)))
# The trained model as it comes out of training: what every variant is compared with.
REFERENCE = Reference(format="pytorch", precision="fp32")


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"no runtime adapter for format {name!r} (known: {', '.join(FORMATS)})") from None
