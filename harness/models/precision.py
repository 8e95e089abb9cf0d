"""What a model computes in: each operator's precision and the whole model's quantization scheme.

The model's quantization scheme comes in two fields (``ModelAnalysis.to_json`` gives both):

- ``scheme``: the contract of ``harness analyze --json``, always one of ``SCHEMES``: float32,
  float16, dynamic_int8, int8, int16x8, mixed. Scripts may switch on it.
- ``scheme_detail``: the finer label, one of ``SCHEME_DETAILS``. It equals ``scheme`` except
  where the contract's six have no exact name: weight_only_int8, dynamic_int4 and
  weight_only_int4 (quantized weights, float activations) are ``scheme`` dynamic_int8, and
  legacy uint8 (full integer) is ``scheme`` int8. Kernels differ between these (a weight-only
  model runs float32 kernels), so throughput is fitted per ``scheme_detail``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def scheme_of(ops: Sequence[OpInfo]) -> str:
    """The whole model's ``scheme_detail`` (one of ``SCHEME_DETAILS``), or ``mixed`` when its
    compute ops do not agree.

    Weighted ops (conv, fully connected, ...) name the scheme; the other compute ops must then
    run in the activation type that scheme implies (float32 for float16 / dynamic / weight-only
    models). Conversions, data movement, unknown ops and integer index math do not vote.
    """
    votes = [op for op in ops if op.kind == KIND_COMPUTE and op.precision in _SCHEME_LABELS]
    weighted = {op.precision for op in votes if op.type in WEIGHTED and op.params}
    rest = {op.precision for op in votes if not (op.type in WEIGHTED and op.params)}
    if not weighted and not rest:
        shape_like = {op.precision for op in ops if op.precision in _SCHEME_LABELS}
        return shape_like.pop() if len(shape_like) == 1 else ("float32" if not shape_like else "mixed")
    if not weighted:
        return rest.pop() if len(rest) == 1 else "mixed"
    if len(weighted) > 1:
        return "mixed"
    scheme = next(iter(weighted))
    implied = "float32" if scheme in _FLOAT_ACT_SCHEMES else scheme
    return scheme if rest <= {implied, scheme} else "mixed"
