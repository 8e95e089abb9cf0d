"""What a model computes in: each operator's precision and the whole model's quantization scheme.

The model's quantization scheme comes in two fields (``ModelAnalysis.to_json`` gives both):

- ``scheme``: the contract of ``harness analyze --json``, always one of ``SCHEMES``: float32,
  float16, dynamic_int8, int8, int16x8, mixed. Scripts may switch on it.
- ``scheme_detail``: the finer label, one of ``SCHEME_DETAILS``. It equals ``scheme`` except
  where the contract's six have no exact name: weight_only_int8, dynamic_int4 and
  weight_only_int4 (quantized weights, float activations) are ``scheme`` dynamic_int8, and
  legacy uint8 (full integer) is ``scheme`` int8. Kernels differ between these (a weight-only
  model runs float32 kernels), so throughput is fitted per ``scheme_detail``.

Which ops vote (``model_scheme``): only ops with weights, once there are any. Weight tensors under
``SMALL_WEIGHTS`` elements that stayed float32 do not vote either when the large layers agree on a
float-activation scheme (dynamic range, weight-only, float16): TensorFlow's converter leaves
exactly those in float32 by rule, so its ``Optimize.DEFAULT`` output is ``dynamic_int8``, not
``mixed``. ``ModelAnalysis.small_float_layers`` names them. In a full-integer model a float32
layer is no converter rule (the converter quantizes every layer it calibrates, whatever its size),
so there it still makes the model ``mixed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.models.flops import KIND_COMPUTE, KIND_CONVERT, WEIGHTED

if TYPE_CHECKING:
    from harness.models.analysis import OpInfo, TensorInfo

SCHEMES = ("float32", "float16", "dynamic_int8", "int8", "int16x8", "mixed")
"""The whole-model schemes of the issue's JSON contract: ``ModelAnalysis.scheme`` is always one."""

SCHEME_DETAILS = ("float32", "float16", "dynamic_int8", "weight_only_int8", "int8", "int16x8", "uint8",
                  "dynamic_int4", "weight_only_int4", "mixed")
"""Finer whole-model schemes (``ModelAnalysis.scheme_detail``). ``weight_only_int8`` (int8
weights dequantized to float32 before a float32 kernel, as ai-edge-quantizer's
weight_only_wi8_afp32 writes them), legacy ``uint8`` and the int4 variants extend the contract's
list, because calling them by a contract name alone would hide what the kernels do."""

_CONTRACT_SCHEME = {"weight_only_int8": "dynamic_int8", "dynamic_int4": "dynamic_int8",
                    "weight_only_int4": "dynamic_int8", "uint8": "int8"}
# Why the finer schemes fold that way: the first three keep float activations and quantized
# weights (the contract's dynamic_int8 family); uint8 is full-integer like int8.

SMALL_WEIGHTS = 1024
"""Weight tensors with fewer elements stay float32 in dynamic-range quantization: TFLite's
``kWeightsMinNumElementsDefault`` (quantize_weights.cc), the MLIR quantizer's
``tfl-min-elements-for-weights`` default, and ai-edge-quantizer's ``dynamic_legacy_wi8_afp32``
recipe (``min_weight_elements``) all use 1024. Their float16 conversion has no such rule."""

SCHEME_DESCRIPTIONS = {
    "weight_only_int8": "weight-only int8: weights dequantized once, float32 kernels",
    "weight_only_int4": "weight-only int4: weights dequantized once, float32 kernels",
    "dynamic_int4": "dynamic-range int4: int4 weights, activations quantized on the fly",
    "uint8": "uint8: legacy full-integer quantization",
}
"""What each ``scheme_detail`` that differs from its contract ``scheme`` means, for people."""

# Activation dtype -> precision label. Integer/bool data (indices, shapes) is its own label and
# takes no part in the whole-model scheme.
_ACT_PRECISION = {"float32": "float32", "float16": "float16", "int8": "int8", "int16": "int16x8",
                  "uint8": "uint8"}
_FLOAT_ACT_SCHEMES = {"float32", "float16", "dynamic_int8", "weight_only_int8", "dynamic_int4", "weight_only_int4"}
_SCHEME_LABELS = set(SCHEME_DETAILS) - {"mixed"}


def contract_scheme(detail: str) -> str:
    """The contract scheme (one of ``SCHEMES``) of a finer ``scheme_detail``."""
    return _CONTRACT_SCHEME.get(detail, detail)


def op_precision(op_type: str, kind: str, infos: Sequence[TensorInfo], activations: list[int],
                 weights: list[tuple[int, bool]], outs: list[int]) -> str:
    """What the op computes in, from its activation, weight and output tensor types.

    ``activations`` and ``outs`` are tensor indices into ``infos``; ``weights`` are (constant
    tensor, dequantized by a DEQUANTIZE before use) pairs. The result is float32, float16,
    dynamic_int8, weight_only_int8, int8, int16x8, uint8 (or their int4 forms), "A->B" for a
    conversion, or an integer dtype name for index and shape data.
    """
    out_dtype = infos[outs[0]].dtype if outs else ""
    if kind == KIND_CONVERT:
        src = infos[weights[0][0]].dtype if weights else (infos[activations[0]].dtype if activations else "")
        return f"{src}->{out_dtype}"
    act = infos[activations[0]].dtype if activations else out_dtype
    if op_type in ("SHAPE", "RANK") and out_dtype:
        act = out_dtype
    label = _ACT_PRECISION.get(act, act)
    if op_type not in WEIGHTED or not weights or act != "float32":
        return label
    main = max(weights, key=lambda w: math.prod(infos[w[0]].shape))
    wdtype, dequantized = infos[main[0]].dtype, main[1]
    if wdtype in ("float16", "bfloat16"):
        return "float16"
    if wdtype in ("int8", "int4", "int2", "uint4", "uint8"):
        bits = "int8" if wdtype in ("int8", "uint8") else wdtype
        return f"weight_only_{bits}" if dequantized else f"dynamic_{bits}"
    return label


@dataclass(frozen=True)
class Scheme:
    """The whole model's scheme: ``detail`` is one of ``SCHEME_DETAILS``; ``small_float_layers``
    are the indices of the float32 ops left out of the vote by the size rule (``SMALL_WEIGHTS``)."""

    detail: str
    small_float_layers: tuple[int, ...] = ()


def weight_elements(op: OpInfo) -> int:
    """Elements of the op's largest constant input: the weight tensor a quantizer's size rule sees."""
    return max((math.prod(t.shape) for t in op.inputs if t.constant), default=0)


def model_scheme(ops: Sequence[OpInfo]) -> Scheme:
    """The whole model's scheme, or ``mixed`` when the ops that vote do not agree.

    Weighted ops (conv, fully connected, ...) vote; small float32 ones only where a converter
    would not have left them float (see the module's docstring). A model without weighted ops
    is named by its other compute ops. Conversions, data movement, unknown ops and integer index
    math never vote.
    """
    votes = [op for op in ops if op.kind == KIND_COMPUTE and op.precision in _SCHEME_LABELS]
    weighted = [op for op in votes if op.type in WEIGHTED and op.params]
    if not weighted:
        rest = {op.precision for op in votes}
        if not rest:
            shape_like = {op.precision for op in ops if op.precision in _SCHEME_LABELS}
            if len(shape_like) == 1:
                return Scheme(shape_like.pop())
            return Scheme("mixed" if shape_like else "float32")
        return Scheme(rest.pop() if len(rest) == 1 else "mixed")
    small = [op for op in weighted if op.precision == "float32" and weight_elements(op) < SMALL_WEIGHTS]
    large = {op.precision for op in weighted if op not in small}
    if len(large) == 1 and small and next(iter(large)) in _FLOAT_ACT_SCHEMES - {"float32"}:
        return Scheme(large.pop(), tuple(op.index for op in small))
    precisions = {op.precision for op in weighted}
    return Scheme(precisions.pop() if len(precisions) == 1 else "mixed")


def scheme_of(ops: Sequence[OpInfo]) -> str:
    """The whole model's ``scheme_detail`` (one of ``SCHEME_DETAILS``): ``model_scheme(ops).detail``."""
    return model_scheme(ops).detail
