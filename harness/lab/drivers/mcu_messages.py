"""The normalized messages (PROTOCOL.md) a serial board's replies become: pure translations.

HELLO_OK, MODEL_INFO, GET_TENSOR and RUN_OK payloads (SERIAL_PROTOCOL.md), already unpacked by
serial_frames, in; the dicts that the Linux agent would have written for the same facts, out.
Device timer ticks become integer ns here, and nowhere else.
"""

from __future__ import annotations

from typing import Any

from device_agents.wire import serial_frames as sf
from harness.lab.drivers.base import Message

STAGES = ("set_input", "invoke", "get_output")
PROTOCOL_VERSION = 1  # of the normalized messages (PROTOCOL.md)


def ticks_to_ns(ticks: int, timer_hz: int) -> int:
    """Device timer ticks as integer ns, rounded to nearest."""
    return (ticks * 1_000_000_000 + timer_hz // 2) // timer_hz


def dtype_name(code: int) -> str:
    """The numpy name of a TfLiteType code (SERIAL_PROTOCOL.md 3.5)."""
    return sf.DTYPES.get(code, (f"tflite_type_{code}", 0))[0]


def hello_message(info: dict[str, Any], baud: int) -> Message:
    """The ``hello`` message of a board that answered HELLO with ``info`` on a line at ``baud``."""
    cpu = str(info["cpu"])
    if info["cpu_hz"]:
        cpu += f" @ {info['cpu_hz'] / 1e6:g} MHz"
    emulated = bool(info["flags"] & sf.FLAG_EMULATED)
    if info["flags"] & sf.FLAG_CYCLE_COUNTER:
        clock = "cycle counter"
    elif emulated:
        clock = "host perf_counter_ns (emulated MCU)"
    else:
        clock = f"device timer @ {info['timer_hz']} Hz"
    return {"v": PROTOCOL_VERSION, "type": "hello", "agent": "mcu-serial",
            "agent_version": f"serial protocol {info['protocol_version']}",
            "board": {"model": info["board"], "cpu": cpu, "cores": 1, "machine": "microcontroller",
                      "kernel": None, "governor": None,
                      "freq_khz": info["cpu_hz"] // 1000 if info["cpu_hz"] else None,
                      "temp_c": None, "python": None},
            "runtime": {"name": "tflite-micro", "version": info["tflm_version"]},
            "runtimes": {"tflite-micro": info["tflm_version"]},
            "clock": {"name": clock, "resolution_ns": int(info["timer_resolution_ns"]),
                      "hz": int(info["timer_hz"])},
            "emulated": emulated,
            "timing_note": ("host timings of the TFLite Micro kernels, not MCU timings" if emulated
                            else "timed on the microcontroller"),
            "serial": {"baud": baud, "max_payload": info["max_payload"],
                       "max_model_bytes": info["max_model_bytes"], "arena_bytes": info["arena_bytes"],
                       "max_batch": info["max_batch"], "profiler": bool(info["flags"] & sf.FLAG_PROFILER),
                       "builtin_model": bool(info["flags"] & sf.FLAG_BUILTIN)}}


def tensor_json(t: dict[str, Any]) -> dict[str, Any]:
    """One tensor of the ``model`` message, from a GET_TENSOR reply."""
    return {"name": t["name"], "shape": t["shape"], "dtype": t["dtype_name"],
            "quantization": [t["scale"], t["zero_point"]]}


def model_message(path: str, size: int, minfo: dict[str, Any], inputs: list[dict[str, Any]],
                  outputs: list[dict[str, Any]], timer_hz: int) -> Message:
    """The ``model`` message: MODEL_INFO of the loaded model and its tensors (GET_TENSOR replies)."""
    return {"v": PROTOCOL_VERSION, "type": "model", "path": path, "size_bytes": size,
            "inputs": [tensor_json(t) for t in inputs], "outputs": [tensor_json(t) for t in outputs],
            "init_ns": ticks_to_ns(minfo["init_ticks"], timer_hz), "create_ns": None, "allocate_ns": None,
            "threads": 1, "xnnpack": False, "arena_bytes": minfo["arena_bytes"],
            "arena_used_bytes": None if minfo["arena_used_bytes"] == sf.UNKNOWN_U32
            else minfo["arena_used_bytes"], "n_ops": minfo["n_ops"]}


def samples_message(mode: int, block: int, rows: list[tuple[int, ...]], settle: list[tuple[int, ...]],
                    partial: bool) -> Message:
    """The ``samples`` message of one mode of one block; ``rows`` are ns in SAMPLE_FIELDS order."""
    with_invoke = mode == sf.MODE_WITH
    stages = {"set_input": [r[1] for r in rows]}
    if with_invoke:
        stages["invoke"] = [r[2] for r in rows]
    stages["get_output"] = [r[3] for r in rows]
    msg: Message = {"v": PROTOCOL_VERSION, "type": "samples", "mode": "with" if with_invoke else "without",
                    "block": block, "loop_ns": [r[0] for r in rows], "stages": stages,
                    "settle_ns": [r[0] for r in settle], "env": {"temp_c": None, "freq_khz": None}}
    if partial:
        msg["partial"] = True
    return msg
