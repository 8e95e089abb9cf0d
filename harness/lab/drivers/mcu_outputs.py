"""What the host reads off a serial board's Invokes: outputs, the op profile, the evaluation pass.

- ``outputs_message``: the outputs of the last Invoke (GET_OUTPUT, paged by offset), after the
  timed blocks; ``profile_message``: its per-op times (GET_PROFILE, paged), firmware with a
  profiler only.
- ``run_eval``, the evaluation pass: the device holds one staged input set, so the host stages each sample (mcu_inputs.DeviceInputs,
SET_INPUT) and sends EVAL (SERIAL_PROTOCOL.md 3.11): one Invoke outside any RUN batch, untimed,
whose reply carries the outputs as far as they fit one reply; the rest comes with GET_OUTPUT,
which pages by offset. The outputs are decoded in their own dtypes (int8 stays int8) and sent on
as the same normalized `eval` messages the Linux agent writes, cut by the agent's own
``EvalChunks``, then one `eval_summary` (PROTOCOL.md, eval mode).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from device_agents.linux.tflite_agent import EvalChunks
from device_agents.wire import serial_frames as sf
from harness.errors import TransportError
from harness.lab.drivers.base import Emit, Message
from harness.lab.drivers.mcu_inputs import DeviceInputs
from harness.lab.drivers.mcu_messages import PROTOCOL_VERSION, ticks_to_ns

# (type, payload, **request options) -> the OK reply frame: McuDriver._req
Request = Callable[..., sf.Frame]


def _protocol(target: str, what: str) -> TransportError:
    return TransportError(what, target=target, hint="flash the firmware that ships with harness")


def fetch_output(request: Request, target: str, index: int, data: bytes, total: int | None,
                 max_payload: int) -> bytes:
    """Output ``index`` of the last Invoke: ``data`` (its first bytes, already received) completed
    with GET_OUTPUT from the next offset on; ``total`` its size (None: as the device says)."""
    while total is None or len(data) < total:
        want = min(0xFFFF, max_payload - 8)
        reply = request(sf.T.GET_OUTPUT, struct.pack("<BIH", index, len(data), want),
                        what=f"GET_OUTPUT {index} at byte {len(data)}")
        got_total, offset = struct.unpack_from("<II", reply.payload)
        if (total is not None and got_total != total) or offset != len(data):
            raise _protocol(target, f"GET_OUTPUT {index} answered {got_total} bytes at offset {offset}, "
                                    f"asked for offset {len(data)} of {total}")
        total = got_total
        data += reply.payload[8:]
        if len(reply.payload) == 8:  # nothing more: the device's total was reached (or it holds back)
            break
    if len(data) != total:
        raise _protocol(target, f"output {index} came with {len(data)} of its {total} bytes")
    return data


def outputs_message(request: Request, target: str, outputs: list[dict[str, Any]], max_payload: int) -> Message:
    """The ``outputs`` message: the output values of the last Invoke, to check against a reference."""
    values = []
    for index, spec in enumerate(outputs):
        data = fetch_output(request, target, index, b"", None, max_payload)
        arr = np.frombuffer(data, dtype=spec["dtype_name"]).reshape(spec["shape"])
        values.append({"name": spec["name"], "shape": spec["shape"], "dtype": spec["dtype_name"],
                       "values": arr.ravel().tolist()})
    return {"v": PROTOCOL_VERSION, "type": "outputs", "outputs": values}


def profile_message(request: Request, timer_hz: int) -> Message:
    """The ``op_profile`` message: per-op times of the last Invoke, from firmware with a profiler."""
    ops: list[dict[str, Any]] = []
    total = None
    while total is None or len(ops) < total:
        p = request(sf.T.GET_PROFILE, struct.pack("<H", len(ops)), what="GET_PROFILE").payload
        total, _, count = struct.unpack_from("<HHB", p)
        offset = 5
        for _ in range(count):
            index, ticks = struct.unpack_from("<HI", p, offset)
            op, offset = sf.unpack_str8(p, offset + 6)
            ops.append({"index": index, "op": op, "ns": ticks_to_ns(ticks, timer_hz)})
        if not count:
            break
    return {"v": PROTOCOL_VERSION, "type": "op_profile", "ops": ops, "source": "firmware profiler, last Invoke"}


def eval_once(request: Request, target: str, sizes: list[int], max_payload: int, work_s: float,
              sample: int) -> list[bytes]:
    """EVAL on the staged sample: each output's bytes, what did not fit its reply fetched after."""
    reply = request(sf.T.EVAL, b"", work_s=work_s, what=f"EVAL of sample {sample}")
    try:
        total, data = sf.unpack_eval(reply.payload)
    except ValueError as exc:
        raise _protocol(target, f"EVAL of sample {sample}: {exc}") from exc
    if total != sum(sizes):
        raise _protocol(target, f"EVAL of sample {sample} returned {total} output bytes; the outputs "
                                f"hold {sum(sizes)}")
    out, at = [], 0
    for index, size in enumerate(sizes):
        piece = data[at:at + size]
        at += size
        out.append(piece if len(piece) == size else
                   fetch_output(request, target, index, piece, size, max_payload))
    return out


def run_eval(request: Request, target: str, staged: DeviceInputs, outputs: list[dict[str, Any]],
             emit: Emit, max_payload: int, work_s: float) -> None:
    """Every staged sample through EVAL, in order; `eval` messages, then `eval_summary` (whose
    ``wall_ns`` is the host's: line time included)."""
    sizes = [int(o["bytes"]) for o in outputs]
    chunks = EvalChunks(len(outputs), lambda fields: emit({"v": PROTOCOL_VERSION, "type": "eval", **fields}))
    t0 = time.monotonic_ns()
    for k in range(staged.count):
        staged.stage(k)
        raw = eval_once(request, target, sizes, max_payload, work_s, k)
        chunks.add([np.frombuffer(r, dtype=o["dtype_name"]).tolist() for r, o in zip(raw, outputs, strict=True)])
    chunks.flush()
    emit({"v": PROTOCOL_VERSION, "type": "eval_summary", "samples": staged.count,
          "wall_ns": time.monotonic_ns() - t0, "wall_host_measured": True})
