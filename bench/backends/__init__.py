"""The model formats bench can build and measure, one folder each: the format's descriptor
(format.py: precisions, devices, why a machine cannot run a variant, how its artifact is built), its
artifact recipes and its runtime. bench/backends/base.py says what a format declares; docs/formats.md
walks through adding one."""

from __future__ import annotations

from bench.backends.base import Format
from bench.backends.onnx.format import OnnxFormat
from bench.backends.openvino.format import OpenVinoFormat
from bench.backends.pytorch.format import PyTorchFormat
from bench.backends.tensorrt.format import TensorRTFormat
from bench.spec.names import FORMAT_NAMES, PRECISIONS

FORMATS: dict[str, Format] = {f.name: f for f in (PyTorchFormat(), OnnxFormat(), TensorRTFormat(),
                                                   OpenVinoFormat())}
# The suite schema names the formats and precisions without importing this registry (bench/spec/names.py).
assert tuple(FORMATS) == FORMAT_NAMES, f"bench.spec.names.FORMAT_NAMES must list {tuple(FORMATS)}"
assert {p for f in FORMATS.values() for p in f.precisions} == set(PRECISIONS), "bench.spec.names.PRECISIONS"


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"no runtime adapter for format {name!r} (known: {', '.join(FORMATS)})") from None
