"""What TFLite Micro can run, judged on the host before a model is sent to it, and the one repair.

TFLite Micro loads some models and quietly computes garbage; harness checks for each known case
before an upload (harness.lab.drivers.mcu), so a variant is either run as it is, run repaired
(and said so), or reported as unsupported on that board with the reason:

- **External (offset) buffers.** ai-edge-quantizer writes weight buffers outside the flatbuffer
  (a buffer's ``offset`` and ``size`` point past it) when its buffers of 1 KiB or more add up to
  256 KiB or more. TFLite Micro reads those buffers as zeros: a 10-class MobileNetV2 quantized to
  int8 scored 10 % (chance) on TFLite Micro against 93 % on LiteRT, with no error. Re-serialising
  the model with its buffers inline (``flatbuffer_utils.write_model(read_model(src), dst)``)
  gives the same weights inside the flatbuffer: the *repair*, the same model in another layout.
- **Per-channel DEQUANTIZE of constant weights** (weight-only int8 models):
  TFLite Micro's DEQUANTIZE applies one scale to every channel, so each weight channel but the
  first is scaled wrongly. Repairing it would mean computing other weights (another model), so
  such a model is unsupported.
- **float16 weights** (a DEQUANTIZE from float16: TFLite Micro's takes int8, int16 and uint8 only)
  and **hybrid (dynamic-range) ops** (int8 weights with float activations, quantized on the fly:
  TFLite Micro has no hybrid kernels) are refused by TFLite Micro when it loads the model; the
  check names them before the upload, and ``refusal`` turns such a refusal from a device, whose
  error code may say something else (the emulator reports ARENA_TOO_SMALL), into the same
  reason.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import AgentError
from harness.models.analysis import analyze, load_model, main_subgraph
from harness.models.files import sha256

log = logging.getLogger(__name__)

UNSUPPORTED_CODE = "unsupported_model"  # the error code of a model a runtime cannot run at all
UNSUPPORTED_HINT = ("run this variant on a Linux board (LiteRT), or quantize to full int8 for TFLite Micro "
                    "(harness quantize MODEL --kinds int8 --calibration FILE.npz)")
# What a TFLite Micro refusal says when the model holds float16 weights or hybrid ops.
_HYBRID = "hybrid (dynamic-range) ops: TFLite Micro has no hybrid kernels"
_FLOAT16 = "float16 weights: TFLite Micro's DEQUANTIZE takes int8, int16 and uint8 only"


@dataclass(frozen=True)
class MicroCheck:
    """What TFLite Micro would make of a model: ``unsupported`` is the reason it cannot run it
    (None: it can), ``offset_buffers`` how many buffers keep their data outside the flatbuffer
    (each read as zeros; the repair inlines them)."""

    unsupported: str | None
    offset_buffers: int


def offset_buffers(path: Path) -> int:
    """How many buffers of the file keep their data after the flatbuffer (offset > 1); 0 for a
    file that cannot be read as a model (the runtime will say what is wrong with it)."""
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.Model.GetRootAs(path.read_bytes(), 0)
        return sum(1 for i in range(model.BuffersLength()) if (model.Buffers(i).Offset() or 0) > 1)
    except Exception:  # not our job to diagnose a broken file here
        return 0


def check(path: Path) -> MicroCheck:
    """The model at ``path`` judged for TFLite Micro (module docstring). A model the host cannot
    analyse is left to the device to judge (unsupported None)."""
    try:
        analysis = analyze(path)
        model = load_model(path)
    except Exception:  # analysis is the host's opinion; the device is the judge of what loads
        return MicroCheck(None, offset_buffers(path))
    reasons = []
    float16 = ([op.index for op in analysis.ops if op.precision == "float16->float32"]  # the DEQUANTIZEs
               or [op.index for op in analysis.ops if op.precision == "float16"])
    hybrid = [op.index for op in analysis.ops if op.precision.startswith("dynamic_")]
    per_channel = per_channel_dequantize(model)
    if float16:
        reasons.append(f"float16 weights (ops {_list(float16)}): TFLite Micro's DEQUANTIZE takes int8, "
                       "int16 and uint8 only")
    if hybrid:
        reasons.append(f"hybrid (dynamic-range) ops {_list(hybrid)}: TFLite Micro has no hybrid kernels")
    if per_channel:
        reasons.append(f"per-channel weight-only int8 (DEQUANTIZE ops {_list(per_channel)}): TFLite Micro's "
                       "DEQUANTIZE applies one scale to every channel, so its outputs would be silently wrong")
    return MicroCheck("; ".join(reasons) or None, offset_buffers(path))


def per_channel_dequantize(model: Any) -> list[int]:
    """Indices of the DEQUANTIZE ops of the main subgraph whose input is a constant quantized
    with more than one scale (per channel)."""
    from ai_edge_litert import schema_py_generated as fb

    sg = model.subgraphs[main_subgraph(model)]
    found = []
    for k, op in enumerate(sg.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != fb.BuiltinOperator.DEQUANTIZE or not op.inputs:
            continue
        t = sg.tensors[op.inputs[0]]
        data = model.buffers[t.buffer].data if 0 < t.buffer < len(model.buffers) else None
        scales = t.quantization.scale if t.quantization is not None else None
        if data is not None and len(data) and scales is not None and len(scales) > 1:
            found.append(k)
    return found


def inline(src: Path, dst: Path) -> Path:
    """``src`` re-serialised with every buffer inside the flatbuffer, written to ``dst``."""
    from ai_edge_litert.tools import flatbuffer_utils

    flatbuffer_utils.write_model(flatbuffer_utils.read_model(str(src)), str(dst))
    return dst


def for_micro(path: Path, target: str) -> tuple[bytes, dict[str, Any] | None]:
    """The bytes of ``path`` to send to TFLite Micro on ``target``, and the ``repair`` message's
    fields when its offset buffers were inlined (None when nothing was repaired).

    Raises AgentError (code ``unsupported_model``, the reason in its message) when TFLite Micro
    cannot run the model at all.
    """
    verdict = check(path)
    if verdict.unsupported:
        raise AgentError(f"{path.name} cannot run on TFLite Micro: {verdict.unsupported}", code=UNSUPPORTED_CODE,
                         target=target, hint=UNSUPPORTED_HINT)
    if not verdict.offset_buffers:
        return path.read_bytes(), None
    with tempfile.TemporaryDirectory(prefix="harness-micro-") as tmp:
        model = inline(path, Path(tmp) / path.name).read_bytes()
    log.info("%s: %s keeps %d buffers outside its flatbuffer, which TFLite Micro reads as zeros: sending "
             "it with them inlined", target, path.name, verdict.offset_buffers)
    return model, {"what": "external_buffers", "file": path.name, "buffers": verdict.offset_buffers,
                   "bytes": len(model), "sha256": sha256(model)}


def refused(exc: AgentError, model: str) -> AgentError | None:
    """A device's refusal of ``model`` as an ``unsupported_model`` error when its message means
    TFLite Micro cannot run the model at all (``refusal``), else None."""
    reason = refusal(exc.message)
    if reason is None:
        return None
    return AgentError(f"{model} cannot run on TFLite Micro: {reason} (the device refused it: {exc.message})",
                      code=UNSUPPORTED_CODE, target=exc.target, hint=UNSUPPORTED_HINT)


def refusal(message: str) -> str | None:
    """The reason a TFLite Micro refusal ``message`` means a model it cannot run at all (float16
    weights, hybrid ops), or None for any other failure."""
    low = message.lower()
    if "hybrid models are not supported" in low:
        return _HYBRID
    if "dequantize" in low and "input->type" in low:  # its type check on a float16 input
        return _FLOAT16
    return None


def _list(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:6]))
    return shown + (f" and {len(indices) - 6} more" if len(indices) > 6 else "")
