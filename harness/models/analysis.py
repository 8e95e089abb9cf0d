"""What is inside a .tflite model: per-operator shapes, MACs, FLOPs, parameters and precision.

Pure host-side analysis: the flatbuffer is read with ``ai_edge_litert.tools.flatbuffer_utils``
(no TensorFlow, no interpreter). Only the main subgraph (the one the first signature runs, else
subgraph 0) is analysed; operators are listed in its execution order.

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
  dequantizes it on the first Invoke and keeps the result, so it counts 0 and its weights are attributed to the op
  that consumes them.
- Data-movement ops (RESHAPE, TRANSPOSE, CONCATENATION, PAD, ..., and resource-variable
  handles and reads): 0 FLOPs, listed as ``shape``.
- Anything else, custom ops and control flow included, is ``unknown``: its ``flops`` is None,
  never a silent 0, and the totals say how many ops they leave out.

Parameters and weight bytes are the elements and stored bytes of constant inputs (weights and
biases; integer shape/axis constants are not parameters). Totals count each constant once.

Dynamic shapes: a -1 in a tensor's shape signature is assumed to be 1, and every assumption made
is recorded in ``ModelAnalysis.assumptions``.

The model's quantization scheme comes in two fields (``to_json`` gives both):

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.files import check_header

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


def contract_scheme(detail: str) -> str:
    """The contract scheme (one of ``SCHEMES``) of a finer ``scheme_detail``."""
    return _CONTRACT_SCHEME.get(detail, detail)


_KIND_COMPUTE, _KIND_CONVERT, _KIND_SHAPE, _KIND_UNKNOWN = "compute", "convert", "shape", "unknown"

# Op types whose constant input 1 is a weight tensor (and whose int32/int64 constants are biases).
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D",
             "CONV_3D_TRANSPOSE", "BATCH_MATMUL", "EMBEDDING_LOOKUP"}
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

# Activation dtype -> precision label. Integer/bool data (indices, shapes) is its own label and
# takes no part in the whole-model scheme.
_ACT_PRECISION = {"float32": "float32", "float16": "float16", "int8": "int8", "int16": "int16x8",
                  "uint8": "uint8"}
_FLOAT_ACT_SCHEMES = {"float32", "float16", "dynamic_int8", "weight_only_int8", "dynamic_int4", "weight_only_int4"}
_NUMERIC_WEIGHT = {"float32", "float16", "bfloat16", "int8", "uint8", "int16", "int4", "int2", "uint4"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as an operator sees it. ``shape`` has the assumed sizes (no -1)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "constant": self.constant}


@dataclass(frozen=True)
class OpInfo:
    """One operator of the main subgraph.

    ``flops`` is None for ops without a counting rule (``kind == "unknown"``). ``params`` are
    elements and ``weight_bytes`` stored bytes of this op's constant inputs (weights, biases).
    ``precision`` is what the op computes in: float32, float16, dynamic_int8, weight_only_int8,
    int8, int16x8, uint8, "A->B" for conversions, or an integer dtype name for index/shape data.
    """

    index: int
    type: str
    kind: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    flops: int | None
    params: int
    weight_bytes: int
    precision: str
    note: str = ""

    @property
    def macs(self) -> int | float | None:
        """MAC-equivalents: FLOPs / 2 (a half when an op does an odd number of single FLOPs)."""
        if self.flops is None:
            return None
        return self.flops // 2 if self.flops % 2 == 0 else self.flops / 2

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "type": self.type, "kind": self.kind, "macs": self.macs,
            "flops": self.flops, "params": self.params, "weight_bytes": self.weight_bytes,
            "precision": self.precision,
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "note": self.note,
        }


@dataclass(frozen=True)
class ModelAnalysis:
    """A whole model. Totals over ops with a rule; ``uncounted_ops`` lists the rest.

    ``scheme`` is the contract's scheme, ``scheme_detail`` the finer one (module docstring)."""

    path: str
    size_bytes: int
    subgraph: int
    ops: tuple[OpInfo, ...]
    scheme_detail: str  # one of SCHEME_DETAILS; ``scheme`` folds it into the contract's six
    total_params: int
    total_weight_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    assumptions: tuple[str, ...] = ()

    @property
    def scheme(self) -> str:
        """The contract scheme, always one of ``SCHEMES`` (see the module docstring)."""
        return contract_scheme(self.scheme_detail)

    @property
    def total_flops(self) -> int:
        return sum(op.flops for op in self.ops if op.flops is not None)

    @property
    def total_macs(self) -> int | float:
        flops = self.total_flops
        return flops // 2 if flops % 2 == 0 else flops / 2

    @property
    def uncounted_ops(self) -> tuple[int, ...]:
        """Indices of ops whose FLOPs are unknown, so the totals leave them out."""
        return tuple(op.index for op in self.ops if op.flops is None)

    @property
    def layers_by_precision(self) -> Mapping[str, tuple[int, ...]]:
        """Op indices per precision, in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for op in self.ops:
            groups.setdefault(op.precision, []).append(op.index)
        return {k: tuple(v) for k, v in groups.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "size_bytes": self.size_bytes, "subgraph": self.subgraph,
            "total_macs": self.total_macs, "total_flops": self.total_flops,
            "total_params": self.total_params, "total_weight_bytes": self.total_weight_bytes,
            "scheme": self.scheme, "scheme_detail": self.scheme_detail,
            "layers_by_precision": {k: list(v) for k, v in self.layers_by_precision.items()},
            "uncounted_ops": list(self.uncounted_ops), "assumptions": list(self.assumptions),
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "ops": [op.to_json() for op in self.ops],
        }


def load_model(path: Path) -> Any:
    """The model as a flatbuffer object (``schema_py_generated.ModelT``), with buffers inlined.

    Raises ConfigError naming the file when it is missing or not a TFLite flatbuffer.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    check_header(path)
    try:
        return flatbuffer_utils.read_model(str(path))
    except Exception as exc:  # the flatbuffer reader raises anything on a truncated file
        raise ConfigError(f"{path}: cannot parse the TFLite flatbuffer ({type(exc).__name__}: {exc})",
                          hint="the file is probably truncated: copy or export it again") from exc


def analyze(path: Path | str) -> ModelAnalysis:
    """Analyse the .tflite file at ``path``; see the module docstring for the conventions."""
    path = Path(path)
    model = load_model(path)
    return analyze_model(model, path=str(path), size_bytes=path.stat().st_size)


def analyze_model(model: Any, *, path: str = "<memory>", size_bytes: int = 0) -> ModelAnalysis:
    """Analyse a ``ModelT`` already in memory (the tests and prefixes.py build them)."""
    from ai_edge_litert import schema_py_generated as fb

    type_names = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    sg_index = main_subgraph(model)
    sg = model.subgraphs[sg_index]
    tensors = sg.tensors or []
    assumptions: list[str] = []

    def is_const(t: Any) -> bool:
        return (not t.isVariable and bool(t.buffer) and t.buffer < len(model.buffers)
                and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 0)

    graph_inputs = set(sg.inputs or [])
    infos: list[TensorInfo] = []
    dynamic_inner = 0
    for i, t in enumerate(tensors):
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        sig = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else shape
        assumed = [1 if (d < 0 or s < 0) else d for d, s in zip(shape, sig, strict=False)] or shape
        if assumed != sig and any(s < 0 for s in sig):
            if i in graph_inputs:
                assumptions.append(f"input {_name(t)!r}: shape signature {sig} has dynamic sizes, "
                                   f"assumed {assumed}")
            else:
                dynamic_inner += 1
        infos.append(TensorInfo(_name(t), tuple(assumed), type_names.get(t.type, f"type{t.type}"), is_const(t)))
    if dynamic_inner:
        assumptions.append(f"{dynamic_inner} inner tensor(s) have dynamic sizes, each assumed 1")
    others = sum(len(s.operators or []) for k, s in enumerate(model.subgraphs) if k != sg_index)
    if others:
        assumptions.append(f"{others} op(s) in {len(model.subgraphs) - 1} other subgraph(s) (control-flow "
                           f"bodies) are not counted; the ops that call them are listed as unknown")

    producer: dict[int, int] = {}
    for k, op in enumerate(sg.operators or []):
        for o in op.outputs or []:
            producer[o] = k

    def op_type(op: Any) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode
            custom = custom.decode("utf-8", "replace") if isinstance(custom, bytes) else str(custom)
            return f"CUSTOM:{custom}"
        return name

    ops_t = sg.operators or []
    types = [op_type(op) for op in ops_t]

    def const_dequant(k: int) -> bool:
        """Op k is a DEQUANTIZE of a constant: run on the first Invoke only, its output is a weight."""
        op = ops_t[k]
        return types[k] == "DEQUANTIZE" and bool(op.inputs) and op.inputs[0] >= 0 and infos[op.inputs[0]].constant

    ops: list[OpInfo] = []
    seen_consts: set[int] = set()
    total_params = total_bytes = 0
    for k, op in enumerate(ops_t):
        kind_type = types[k]
        ins = [i for i in (op.inputs or [])]
        outs = [i for i in (op.outputs or []) if i >= 0]
        in_infos = tuple(infos[i] for i in ins if i >= 0)
        out_infos = tuple(infos[i] for i in outs)
        # Weight sources: constant inputs, or inputs made by a constant DEQUANTIZE (their source).
        weights: list[tuple[int, bool]] = []  # (source constant tensor, dequantized before use)
        activations: list[int] = []
        for i in ins:
            if i < 0:
                continue
            if infos[i].constant:
                weights.append((i, False))
            elif i in producer and const_dequant(producer[i]):
                weights.append((ops_t[producer[i]].inputs[0], True))
            else:
                activations.append(i)
        note = ""
        flops: int | None
        weighted = kind_type in _WEIGHTED
        if kind_type == "DEQUANTIZE" and const_dequant(k):
            params = nbytes = 0
            kind, flops = _KIND_CONVERT, 0
            consumers = [j for j, o in enumerate(ops_t) if outs and outs[0] in (o.inputs or [])]
            note = (f"constant weights: dequantized on the first Invoke only "
                    f"(used by op {', '.join(map(str, consumers))})")
        else:
            params = nbytes = 0
            for src, _ in weights:
                t = infos[src]
                if t.dtype in _NUMERIC_WEIGHT or (weighted and t.dtype in ("int32", "int64")):
                    count = math.prod(t.shape)
                    data = model.buffers[tensors[src].buffer].data
                    params += count
                    nbytes += len(data)
                    if src not in seen_consts:
                        seen_consts.add(src)
                        total_params += count
                        total_bytes += len(data)
            try:
                kind, flops, note = _count(kind_type, op, infos, ins, outs, len(model.subgraphs))
            except (IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
                kind, flops, note = _KIND_UNKNOWN, None, f"shapes do not fit the {kind_type} rule ({exc})"
        precision = _precision(kind_type, kind, infos, activations, weights, outs, weighted)
        ops.append(OpInfo(k, kind_type, kind, in_infos, out_infos, flops, params, nbytes, precision, note))

    return ModelAnalysis(
        path=path, size_bytes=size_bytes, subgraph=sg_index, ops=tuple(ops), scheme_detail=scheme_of(ops),
        total_params=total_params, total_weight_bytes=total_bytes,
        inputs=tuple(infos[i] for i in (sg.inputs or [])), outputs=tuple(infos[i] for i in (sg.outputs or [])),
        assumptions=tuple(assumptions),
    )


def main_subgraph(model: Any) -> int:
    """The subgraph the first signature runs, else 0."""
    sigs = model.signatureDefs or []
    return int(sigs[0].subgraphIndex) if sigs else 0


def _name(t: Any) -> str:
    name = t.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _count(op_type: str, op: Any, infos: Sequence[TensorInfo], ins: list[int], outs: list[int],
           n_subgraphs: int) -> tuple[str, int | None, str]:
    """(kind, FLOPs, note) for one op; raises IndexError/ValueError when shapes do not fit."""
    out_elems = sum(math.prod(infos[o].shape) for o in outs)
    out0 = infos[outs[0]].shape if outs else ()
    opts = op.builtinOptions
    if op_type == "CONV_2D":
        _, kh, kw, icg = infos[ins[1]].shape
        return _KIND_COMPUTE, 2 * math.prod(out0) * kh * kw * icg, ""
    if op_type == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = infos[ins[1]].shape
        return _KIND_COMPUTE, 2 * math.prod(out0) * kh * kw, ""
    if op_type == "CONV_3D":
        kd, kh, kw, ic, _ = infos[ins[1]].shape
        return _KIND_COMPUTE, 2 * math.prod(out0) * kd * kh * kw * ic, ""
    if op_type == "TRANSPOSE_CONV":
        oc, kh, kw, _ = infos[ins[1]].shape
        return _KIND_COMPUTE, 2 * math.prod(infos[ins[2]].shape) * kh * kw * oc, ""
    if op_type == "FULLY_CONNECTED":
        depth = infos[ins[1]].shape[-1]
        return _KIND_COMPUTE, 2 * math.prod(out0) * depth, ""
    if op_type == "BATCH_MATMUL":
        lhs = infos[ins[0]].shape
        depth = lhs[-2] if (opts is not None and getattr(opts, "adjX", False)) else lhs[-1]
        return _KIND_COMPUTE, 2 * math.prod(out0) * depth, ""
    if op_type in _POOL:
        return _KIND_COMPUTE, 2 * math.prod(out0) * opts.filterHeight * opts.filterWidth, ""
    if op_type in _REDUCE:
        return _KIND_COMPUTE, 2 * math.prod(infos[ins[0]].shape), ""
    if op_type == "ADD_N":
        return _KIND_COMPUTE, (len(ins) - 1) * out_elems, ""
    if op_type in _ELEMENTWISE:
        return _KIND_COMPUTE, _ELEMENTWISE[op_type] * out_elems, ""
    if op_type in _ACTIVATION:
        return _KIND_COMPUTE, out_elems, ""
    if op_type in _SOFTMAX:
        return _KIND_COMPUTE, _SOFTMAX[op_type] * out_elems, ""
    if op_type in _CONVERT:
        return _KIND_CONVERT, _CONVERT[op_type] * out_elems, ""
    if op_type in _SHAPE:
        return _KIND_SHAPE, 0, "data movement: 0 FLOPs"
    if op_type.startswith("CUSTOM:"):
        return _KIND_UNKNOWN, None, "custom op: FLOPs unknown"
    if n_subgraphs > 1 and op_type in ("WHILE", "IF", "CALL", "CALL_ONCE"):
        return _KIND_UNKNOWN, None, "control flow: its subgraphs are not counted"
    return _KIND_UNKNOWN, None, f"no FLOP rule for {op_type}"


def _precision(op_type: str, kind: str, infos: Sequence[TensorInfo], activations: list[int],
               weights: list[tuple[int, bool]], outs: list[int], weighted: bool) -> str:
    """What the op computes in, from its activation, weight and output tensor types."""
    out_dtype = infos[outs[0]].dtype if outs else ""
    if kind == _KIND_CONVERT:
        src = infos[weights[0][0]].dtype if weights else (infos[activations[0]].dtype if activations else "")
        return f"{src}->{out_dtype}"
    act = infos[activations[0]].dtype if activations else out_dtype
    if op_type in ("SHAPE", "RANK") and out_dtype:
        act = out_dtype
    label = _ACT_PRECISION.get(act, act)
    if not weighted or not weights or act != "float32":
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
    votes = [op for op in ops if op.kind == _KIND_COMPUTE and op.precision in _SCHEME_LABELS]
    weighted = {op.precision for op in votes if op.type in _WEIGHTED and op.params}
    rest = {op.precision for op in votes if not (op.type in _WEIGHTED and op.params)}
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


_SCHEME_LABELS = set(SCHEME_DETAILS) - {"mixed"}
