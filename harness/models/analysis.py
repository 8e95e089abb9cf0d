"""What is inside a .tflite model: per-operator shapes, MACs, FLOPs, parameters and precision.

Pure host-side analysis: the flatbuffer is read with ``ai_edge_litert.tools.flatbuffer_utils``
(no TensorFlow, no interpreter). Only the main subgraph (the one the first signature runs, else
subgraph 0) is analysed; operators are listed in its execution order.

This module reads the graph and holds the results; the rules live beside it, in
harness.models.flops (what each op type counts, with the conventions) and
harness.models.precision (each op's precision and the model's quantization scheme, whose
names are re-exported here).

Parameters and weight bytes are the elements and stored bytes of constant inputs (weights and
biases; integer shape/axis constants are not parameters). Totals count each constant once. The
weights of a constant DEQUANTIZE (float16 or weight-only int8) belong to the op that consumes
its output, and the DEQUANTIZE itself counts 0 FLOPs: it runs on the first Invoke only.

Dynamic shapes: a -1 in a tensor's shape signature is assumed to be 1, and every assumption made
is recorded in ``ModelAnalysis.assumptions``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.files import check_header
from harness.models.flops import KIND_CONVERT, WEIGHTED, count
from harness.models.precision import (
    SCHEME_DESCRIPTIONS,
    SCHEME_DETAILS,
    SCHEMES,
    contract_scheme,
    model_scheme,
    op_precision,
    scheme_of,
)

__all__ = ["SCHEMES", "SCHEME_DETAILS", "SCHEME_DESCRIPTIONS", "ModelAnalysis", "OpInfo", "TensorInfo",
           "analyze", "analyze_model", "contract_scheme", "load_model", "main_subgraph", "scheme_of"]

# Stored dtypes whose constants are parameters; int32/int64 ones count only as a weighted op's bias.
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

    ``scheme`` is the contract's scheme, ``scheme_detail`` the finer one, and ``small_float_layers``
    the float32 ops under the converters' size rule that took no part in it (harness.models.precision)."""

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
    small_float_layers: tuple[int, ...] = ()

    @property
    def scheme(self) -> str:
        """The contract scheme, always one of ``SCHEMES`` (see harness.models.precision)."""
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
            "small_float_layers": list(self.small_float_layers),
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
    """Analyse the .tflite file at ``path``; the counting conventions are in harness.models.flops."""
    path = Path(path)
    model = load_model(path)
    return analyze_model(model, path=str(path), size_bytes=path.stat().st_size)


def analyze_model(model: Any, *, path: str = "<memory>", size_bytes: int = 0) -> ModelAnalysis:
    """Analyse a ``ModelT`` already in memory (the tests and prefixes.py build them)."""
    graph = _Subgraph(model)
    seen: dict[int, tuple[int, int]] = {}  # constant tensor -> (elements, bytes), once for the totals
    ops = [graph.op_info(k, seen) for k in range(len(graph.ops))]
    scheme = model_scheme(ops)
    return ModelAnalysis(
        path=path, size_bytes=size_bytes, subgraph=graph.index, ops=tuple(ops), scheme_detail=scheme.detail,
        total_params=sum(n for n, _ in seen.values()), total_weight_bytes=sum(b for _, b in seen.values()),
        inputs=tuple(graph.infos[i] for i in (graph.sg.inputs or [])),
        outputs=tuple(graph.infos[i] for i in (graph.sg.outputs or [])),
        assumptions=tuple(graph.assumptions), small_float_layers=scheme.small_float_layers,
    )


def main_subgraph(model: Any) -> int:
    """The subgraph the first signature runs, else 0."""
    sigs = model.signatureDefs or []
    return int(sigs[0].subgraphIndex) if sigs else 0


class _Subgraph:
    """The main subgraph as the counting reads it: one TensorInfo per tensor, each op's type, and
    which op produced each tensor. ``assumptions`` collects what was assumed on the way."""

    def __init__(self, model: Any) -> None:
        from ai_edge_litert import schema_py_generated as fb

        self.model = model
        self.index = main_subgraph(model)
        self.sg = model.subgraphs[self.index]
        self.tensors = self.sg.tensors or []
        self.ops = self.sg.operators or []
        self.assumptions: list[str] = []
        type_names = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
        self.infos = self._tensor_infos(type_names)
        others = sum(len(s.operators or []) for k, s in enumerate(model.subgraphs) if k != self.index)
        if others:
            self.assumptions.append(
                f"{others} op(s) in {len(model.subgraphs) - 1} other subgraph(s) (control-flow "
                f"bodies) are not counted; the ops that call them are listed as unknown")
        op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
        self.types = [_op_type(model, op, op_names) for op in self.ops]
        self.producer = {o: k for k, op in enumerate(self.ops) for o in (op.outputs or [])}

    def _tensor_infos(self, type_names: dict[int, str]) -> list[TensorInfo]:
        graph_inputs = set(self.sg.inputs or [])
        infos: list[TensorInfo] = []
        dynamic_inner = 0
        for i, t in enumerate(self.tensors):
            assumed, sig = _assumed_shape(t)
            if assumed != sig and any(s < 0 for s in sig):
                if i in graph_inputs:
                    self.assumptions.append(f"input {_name(t)!r}: shape signature {sig} has dynamic sizes, "
                                            f"assumed {assumed}")
                else:
                    dynamic_inner += 1
            dtype = type_names.get(t.type, f"type{t.type}")
            infos.append(TensorInfo(_name(t), tuple(assumed), dtype, self._is_const(t)))
        if dynamic_inner:
            self.assumptions.append(f"{dynamic_inner} inner tensor(s) have dynamic sizes, each assumed 1")
        return infos

    def _is_const(self, t: Any) -> bool:
        buffers = self.model.buffers
        return (not t.isVariable and bool(t.buffer) and t.buffer < len(buffers)
                and buffers[t.buffer].data is not None and len(buffers[t.buffer].data) > 0)

    def const_dequant(self, k: int) -> bool:
        """Op k is a DEQUANTIZE of a constant: run on the first Invoke only, its output is a weight."""
        op = self.ops[k]
        return (self.types[k] == "DEQUANTIZE" and bool(op.inputs) and op.inputs[0] >= 0
                and self.infos[op.inputs[0]].constant)

    def sources(self, ins: list[int]) -> tuple[list[tuple[int, bool]], list[int]]:
        """The op inputs ``ins`` split into weights, as (source constant tensor, dequantized
        before use) -- constant inputs or outputs of a constant DEQUANTIZE -- and activations."""
        weights: list[tuple[int, bool]] = []
        activations: list[int] = []
        for i in ins:
            if i < 0:
                continue
            if self.infos[i].constant:
                weights.append((i, False))
            elif i in self.producer and self.const_dequant(self.producer[i]):
                weights.append((self.ops[self.producer[i]].inputs[0], True))
            else:
                activations.append(i)
        return weights, activations

    def weight_size(self, weights: list[tuple[int, bool]], weighted: bool,
                    seen: dict[int, tuple[int, int]]) -> tuple[int, int]:
        """(elements, stored bytes) of an op's parameters; each constant enters ``seen`` once."""
        params = nbytes = 0
        for src, _ in weights:
            t = self.infos[src]
            if t.dtype in _NUMERIC_WEIGHT or (weighted and t.dtype in ("int32", "int64")):
                elements = math.prod(t.shape)
                size = len(self.model.buffers[self.tensors[src].buffer].data)
                params += elements
                nbytes += size
                seen.setdefault(src, (elements, size))
        return params, nbytes

    def op_info(self, k: int, seen: dict[int, tuple[int, int]]) -> OpInfo:
        """Op ``k`` counted; its constants not yet in ``seen`` are added for the model's totals."""
        op, op_type = self.ops[k], self.types[k]
        ins = list(op.inputs or [])
        outs = [i for i in (op.outputs or []) if i >= 0]
        weights, activations = self.sources(ins)
        flops: int | None
        if op_type == "DEQUANTIZE" and self.const_dequant(k):
            params = nbytes = 0
            kind, flops = KIND_CONVERT, 0
            consumers = [j for j, o in enumerate(self.ops) if outs and outs[0] in (o.inputs or [])]
            note = (f"constant weights: dequantized on the first Invoke only "
                    f"(used by op {', '.join(map(str, consumers))})")
        else:
            params, nbytes = self.weight_size(weights, op_type in WEIGHTED, seen)
            kind, flops, note = count(op_type, op, self.infos, ins, outs, len(self.model.subgraphs))
        precision = op_precision(op_type, kind, self.infos, activations, weights, outs)
        return OpInfo(k, op_type, kind, tuple(self.infos[i] for i in ins if i >= 0),
                      tuple(self.infos[i] for i in outs), flops, params, nbytes, precision, note)


def _assumed_shape(t: Any) -> tuple[list[int], list[int]]:
    """(shape with every dynamic size assumed 1, shape signature) of tensor ``t``."""
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    sig = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else shape
    assumed = [1 if (d < 0 or s < 0) else d for d, s in zip(shape, sig, strict=False)] or shape
    return assumed, sig


def _op_type(model: Any, op: Any, op_names: dict[int, str]) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = op_names.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode
        custom = custom.decode("utf-8", "replace") if isinstance(custom, bytes) else str(custom)
        return f"CUSTOM:{custom}"
    return name


def _name(t: Any) -> str:
    name = t.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")
