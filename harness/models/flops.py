"""FLOP counting rules: how much arithmetic one TFLite operator does per Invoke.

Counting conventions (the usual ones; bias adds and fused activations are not counted):

- **FLOPs = 2 x MACs, always.** MACs are "MAC-equivalents", so an op that does one addition per
  element is half a MAC per element (``macs`` may then end in .5).
- CONV_2D: N*OH*OW*OC * KH*KW*(IC/groups). DEPTHWISE_CONV_2D: N*OH*OW*OC * KH*KW.
  CONV_3D: out * KD*KH*KW*IC. TRANSPOSE_CONV: N*IH*IW*IC * KH*KW*OC (each input pixel scatters
  a whole kernel). FULLY_CONNECTED: out elements * input depth. BATCH_MATMUL: out elements * K.
- Pooling (average, max, L2): one compare or add per window element, counted as one
  MAC-equivalent: out elements * FH*FW MACs. Reductions (MEAN, SUM, REDUCE_MAX, ...) likewise
  count one MAC-equivalent per *input* element.
- Elementwise arithmetic and comparisons: one FLOP per output element (SQUARED_DIFFERENCE two,
  ADD_N one per extra operand). Activations: one FLOP per element, transcendental ones included.
- SOFTMAX / LOG_SOFTMAX: five FLOPs per element (max, subtract, exp, sum, divide).
- QUANTIZE / DEQUANTIZE: two FLOPs per element (scale and zero point). A DEQUANTIZE of a
  constant (float16 or weight-only int8 weights) costs nothing per Invoke: the LiteRT kernel
  dequantizes it on the first Invoke and keeps the result, so it counts 0 and its weights are
  attributed to the op that consumes them (harness.models.analysis decides which DEQUANTIZE that is).
- Data-movement ops (RESHAPE, TRANSPOSE, CONCATENATION, PAD, ..., and resource-variable
  handles and reads): 0 FLOPs, listed as ``shape``.
- Anything else, custom ops and control flow included, is ``unknown``: its FLOPs are None,
  never a silent 0, and the totals say how many ops they leave out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.models.analysis import TensorInfo

    # A kernel rule: (tensor infos, the op's input indices, its first output shape, its builtin
    # options) -> FLOPs. Each unpacks the weight shape the way the TFLite schema lays it out.
    Kernel = Callable[[Sequence[TensorInfo], list[int], tuple[int, ...], Any], int]

KIND_COMPUTE, KIND_CONVERT, KIND_SHAPE, KIND_UNKNOWN = "compute", "convert", "shape", "unknown"

WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D",
            "CONV_3D_TRANSPOSE", "BATCH_MATMUL", "EMBEDDING_LOOKUP"}
"""Op types whose constant input 1 is a weight tensor (and whose int32/int64 constants are biases)."""

_POOL = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
_REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL",
           "ARG_MAX", "ARG_MIN"}
_ELEMENTWISE = {
    "ADD": 1, "SUB": 1, "MUL": 1, "DIV": 1, "MAXIMUM": 1, "MINIMUM": 1, "SQUARED_DIFFERENCE": 2,
    "POW": 1, "FLOOR_DIV": 1, "FLOOR_MOD": 1, "ABS": 1, "NEG": 1, "SQRT": 1, "RSQRT": 1, "EXP": 1,
    "LOG": 1, "SIN": 1, "COS": 1, "SQUARE": 1, "FLOOR": 1, "CEIL": 1, "ROUND": 1, "SIGN": 1,
    "LESS": 1, "LESS_EQUAL": 1, "GREATER": 1, "GREATER_EQUAL": 1, "EQUAL": 1, "NOT_EQUAL": 1,
    "LOGICAL_AND": 1, "LOGICAL_OR": 1, "LOGICAL_NOT": 1, "SELECT": 1, "SELECT_V2": 1,
}
_ACTIVATION = {"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
               "ELU", "LEAKY_RELU", "PRELU", "GELU"}
_SOFTMAX = {"SOFTMAX": 5, "LOG_SOFTMAX": 5}
_CONVERT = {"QUANTIZE": 2, "DEQUANTIZE": 2, "CAST": 1}
_SHAPE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PAD", "PADV2",
          "MIRROR_PAD", "SLICE", "STRIDED_SLICE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V", "PACK",
          "UNPACK", "SHAPE", "TILE", "BROADCAST_TO", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
          "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "FILL",
          "ZEROS_LIKE", "ONES_LIKE", "RANK", "EMBEDDING_LOOKUP",
          # resource variables: handles and reads of state, no arithmetic
          "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}
_CONTROL_FLOW = ("WHILE", "IF", "CALL", "CALL_ONCE")

def _conv_2d(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    _, kh, kw, icg = infos[ins[1]].shape
    return 2 * math.prod(out0) * kh * kw * icg


def _depthwise(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    _, kh, kw, _ = infos[ins[1]].shape
    return 2 * math.prod(out0) * kh * kw


def _conv_3d(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    kd, kh, kw, ic, _ = infos[ins[1]].shape
    return 2 * math.prod(out0) * kd * kh * kw * ic


def _transpose_conv(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    oc, kh, kw, _ = infos[ins[1]].shape
    return 2 * math.prod(infos[ins[2]].shape) * kh * kw * oc


def _fully_connected(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    return 2 * math.prod(out0) * infos[ins[1]].shape[-1]


def _batch_matmul(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    lhs = infos[ins[0]].shape
    depth = lhs[-2] if (opts is not None and getattr(opts, "adjX", False)) else lhs[-1]
    return 2 * math.prod(out0) * depth


def _pool(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    return 2 * math.prod(out0) * opts.filterHeight * opts.filterWidth


def _reduce(infos: Sequence[TensorInfo], ins: list[int], out0: tuple[int, ...], opts: Any) -> int:
    return 2 * math.prod(infos[ins[0]].shape)


_KERNELS: dict[str, Kernel] = {
    "CONV_2D": _conv_2d, "DEPTHWISE_CONV_2D": _depthwise, "CONV_3D": _conv_3d,
    "TRANSPOSE_CONV": _transpose_conv, "FULLY_CONNECTED": _fully_connected, "BATCH_MATMUL": _batch_matmul,
    **dict.fromkeys(_POOL, _pool), **dict.fromkeys(_REDUCE, _reduce),
}


def count(op_type: str, op: Any, infos: Sequence[TensorInfo], ins: list[int], outs: list[int],
          n_subgraphs: int) -> tuple[str, int | None, str]:
    """(kind, FLOPs, note) of one op of type ``op_type`` (``op`` is its ``OperatorT``), with
    ``ins`` and ``outs`` its tensor indices into ``infos``. A rule whose shapes do not fit makes
    the op unknown, with a note saying so, rather than raising."""
    try:
        return _rule(op_type, op, infos, ins, outs, n_subgraphs)
    except (IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
        return KIND_UNKNOWN, None, f"shapes do not fit the {op_type} rule ({exc})"


def _rule(op_type: str, op: Any, infos: Sequence[TensorInfo], ins: list[int], outs: list[int],
          n_subgraphs: int) -> tuple[str, int | None, str]:
    """(kind, FLOPs, note) for one op; raises IndexError/ValueError when shapes do not fit."""
    out_elems = sum(math.prod(infos[o].shape) for o in outs)
    if op_type in _KERNELS:
        out0 = infos[outs[0]].shape if outs else ()
        return KIND_COMPUTE, _KERNELS[op_type](infos, ins, out0, op.builtinOptions), ""
    if op_type == "ADD_N":
        return KIND_COMPUTE, (len(ins) - 1) * out_elems, ""
    if op_type in _ELEMENTWISE:
        return KIND_COMPUTE, _ELEMENTWISE[op_type] * out_elems, ""
    if op_type in _ACTIVATION:
        return KIND_COMPUTE, out_elems, ""
    if op_type in _SOFTMAX:
        return KIND_COMPUTE, _SOFTMAX[op_type] * out_elems, ""
    if op_type in _CONVERT:
        return KIND_CONVERT, _CONVERT[op_type] * out_elems, ""
    if op_type in _SHAPE:
        return KIND_SHAPE, 0, "data movement: 0 FLOPs"
    if op_type.startswith("CUSTOM:"):
        return KIND_UNKNOWN, None, "custom op: FLOPs unknown"
    if n_subgraphs > 1 and op_type in _CONTROL_FLOW:
        return KIND_UNKNOWN, None, "control flow: its subgraphs are not counted"
    return KIND_UNKNOWN, None, f"no FLOP rule for {op_type}"
