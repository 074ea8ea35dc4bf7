"""`quantize:` in a suite: the suite-wide ONNX Runtime quantizer settings, and named recipes that vary them
per variant (`variants[].quant`), so one run (or one `bench tune`) can compare per-channel, QOperator vs QDQ,
op types or excluded nodes side by side. bench/build/compress.py applies them; bench/backends/onnx/quantize.py
calls ORT."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bench.spec.data import _as_list
from bench.spec.training import PositiveInt, _Strict

Calibrator = Literal["minmax", "entropy", "percentile"]
QuantFormat = Literal["qdq", "qoperator"]
RecipeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
OpType = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]


class QuantRecipe(_Strict):
    """One named variation: only the fields it sets differ from the suite-wide `quantize:` settings."""

    per_channel: bool | None = None
    weight_type: Literal["auto", "s8", "u8"] | None = None
    reduce_range: Literal["auto"] | bool | None = None
    activation_type: Literal["u8", "s8"] | None = None
    quant_format: QuantFormat | None = None
    op_types: Annotated[list[OpType], Field(min_length=1)] | None = None
    nodes_to_exclude: list[Annotated[str, Field(min_length=1)]] | None = None
    percentile: Annotated[float, Field(gt=90, le=100)] | None = None


# Always available by name (a suite's own recipe of the same name wins). `bench tune` searches them.
BUILTIN_RECIPES: dict[str, QuantRecipe] = {
    "per-channel": QuantRecipe(per_channel=True),
    "qoperator": QuantRecipe(quant_format="qoperator"),
}
# OpenVINO's recipes (format openvino, precision int8-static): NNCF's, not ORT's quantizer, so they are names
# rather than QuantRecipes. `accuracy-control`: nncf.quantize_with_accuracy_control (`quantize.accuracy_control`).
OPENVINO_RECIPES = ("accuracy-control",)


class AccuracyControlConfig(_Strict):
    """OpenVINO `quant: accuracy-control`: NNCF quantizes, measures the drop against the same model's FP32 IR on
    held-out train examples, and returns the ops that cost the most to float until the drop fits."""

    # NNCF's max_drop, absolute, in points x100 of the task's primary metric (1.0: 0.01 accuracy).
    max_drop_pts: Annotated[float, Field(ge=0, le=100)] = 1.0
    # Held-out train examples NNCF validates on: after the calibration ones in the same shuffle, never an
    # eval example (bench tune's sensitivity pass ranks on the same ones).
    validation_samples: PositiveInt = 300
    # NNCF's max_num_iterations: rounds of returning a group of ops (a quantizer and the ops it feeds) to
    # float; default: as many as it takes
    max_iterations: PositiveInt | None = None


class QuantizeConfig(_Strict):
    per_channel: bool = False  # per-channel weight scales (ORT int8)
    # Dynamic INT8 weights. "auto": S8 on CPUs with VNNI; U8 without (ORT's u8s8 kernels saturate in
    # VPMADDUBSW there, u8u8 ones do not), bench/backends/onnx/quantize.py. The choice is recorded in the row.
    weight_type: Literal["auto", "s8", "u8"] = "auto"
    # reduce_range: 7-bit weights, the other way around that saturation. "auto": on exactly when the
    # weights are S8 and the CPU lacks VNNI (dynamic), when the CPU lacks VNNI (static QDQ).
    reduce_range: Literal["auto"] | bool = "auto"
    # Static (QDQ) INT8 activations. u8: ONNX Runtime's CPU provider fuses every quantized weight
    # MatMul into an integer QLinearMatMul; with s8 it fused 12 of 24 on the MiniLM student and ran
    # the rest as DequantizeLinear + float MatMul (0.69x of FP32 against u8's 1.70x, docs/numbers.md). The
    # symmetric graph for TensorRT is always s8.
    activation_type: Literal["u8", "s8"] = "u8"
    # Static INT8 graph format: QDQ (Quantize/DequantizeLinear pairs ORT fuses at load; what TensorRT
    # reads) or QOperator (integer operators such as QLinearMatMul written into the graph).
    quant_format: QuantFormat = "qdq"
    # Op types to quantize. Default: dynamic, ORT's own list (MatMul, Attention, Gather, ...); static,
    # MatMul and Attention (bench/backends/onnx/quantize.py says why). Add Gather to quantize the embeddings.
    op_types: Annotated[list[OpType], Field(min_length=1)] | None = None
    nodes_to_exclude: list[Annotated[str, Field(min_length=1)]] = []  # node names kept in float
    calibration_samples: PositiveInt = 300  # train sentences (never dev) for static INT8
    calibrators: Annotated[list[Calibrator], Field(min_length=1)] = ["minmax"]  # one int8-static variant each
    percentile: Annotated[float, Field(gt=90, le=100)] = 99.999
    # Histogram bins of the entropy (KL) calibrator; it picks a threshold of 128 quantized bins among
    # them. ORT's quantize_static default, 128, leaves one choice (the full range, i.e. minmax). Cost on
    # this CPU at 512: 3.5 s (MiniLM student) to 7 s (teacher) per graph; at TensorRT's 2048: 26 to 52 s.
    entropy_bins: Annotated[int, Field(ge=256, le=8192)] = 512
    recipes: dict[RecipeName, QuantRecipe] = {}  # named variations, picked per variants line with `quant:`
    accuracy_control: AccuracyControlConfig = AccuracyControlConfig()  # OpenVINO's `quant: accuracy-control`

    _lists = field_validator("calibrators", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @model_validator(mode="after")
    def _recipe_names(self) -> QuantizeConfig:
        if "default" in self.recipes:
            raise ValueError("recipes: 'default' names the suite-wide settings, pick another name")
        taken = sorted(set(self.recipes) & {*BUILTIN_RECIPES, *OPENVINO_RECIPES})
        if taken:  # one name, one graph: `+per-channel` means the same in every suite that compares
            raise ValueError(f"recipes: {taken[0]!r} is a built-in recipe, pick another name")
        return self

    @property
    def all_recipes(self) -> dict[str, QuantRecipe]:
        return BUILTIN_RECIPES | self.recipes

    def recipe(self, name: str) -> QuantRecipe:
        """The recipe by name ("" or "default": none)."""
        return QuantRecipe() if name in ("", "default") else self.all_recipes[name]

    def resolved(self, name: str) -> QuantizeConfig:
        """These settings with recipe `name` applied ("" or "default": as they are)."""
        return self.model_copy(update=self.recipe(name).model_dump(exclude_none=True))
