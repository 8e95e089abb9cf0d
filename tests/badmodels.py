"""Bad model files for tests: each helper writes one kind of broken .tflite into a path you choose.

- ``not_a_model``: a text file with a .tflite name (someone passed the wrong file).
- ``truncated``: the first 60 % of a real model (an interrupted copy or upload).
- ``with_unknown_custom_op``: a structurally valid model in which one operator has become a CUSTOM
  op named ``HarnessUnknownOp``, which no runtime registers (a model built for another op set).

LiteRT's behaviour on each, as tests/test_badmodels.py pins it down: the text file and the truncated
file raise ``ValueError`` when the Interpreter is created (the flatbuffer verifier rejects them, the
process survives); the custom op raises ``RuntimeError`` naming the op at ``allocate_tensors``.
"""

from __future__ import annotations

from pathlib import Path

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

UNKNOWN_CUSTOM_OP = "HarnessUnknownOp"
TRUNCATED_FRACTION = 0.6


def not_a_model(path: Path) -> Path:
    """Write a short text file to ``path`` (name it *.tflite) and return ``path``."""
    path.write_text("this is a text file, not a TensorFlow Lite flatbuffer\n")
    return path


def truncated(src: Path, path: Path, fraction: float = TRUNCATED_FRACTION) -> Path:
    """Write the first ``fraction`` (0..1) of the bytes of model ``src`` to ``path``; return ``path``."""
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def with_unknown_custom_op(src: Path, path: Path, op_index: int = 0) -> Path:
    """Copy model ``src`` to ``path`` with operator ``op_index`` of subgraph 0 turned into a CUSTOM op.

    The op keeps its inputs and outputs, so the graph still validates; only the kernel lookup
    fails. Its builtin options are dropped because a custom op carries none.
    """
    model = flatbuffer_utils.read_model(str(src))
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    # Old readers look only at the int8 field; CUSTOM (32) fits in it.
    code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = UNKNOWN_CUSTOM_OP
    code.version = 1
    model.operatorCodes.append(code)
    op = model.subgraphs[0].operators[op_index]
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.builtinOptionsType = schema.BuiltinOptions.NONE
    op.builtinOptions = None
    op.customOptions = None
    flatbuffer_utils.write_model(model, str(path))
    return path
