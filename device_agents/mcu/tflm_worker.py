"""The emulated MCU's TFLite Micro, in a child process: abort() there costs the model, not the device.

TFLite Micro can ``abort()`` on a broken model. The interpreter therefore lives in a forked child
(``_worker``) that answers the parent's requests over a pipe; ``Interpreter`` is the parent's
handle, and turns a child that died into ERROR CRASHED and starts a fresh one for the next model.

Requests (tuples, first item the op) and replies (``("ok", value)`` or ``("err", code, detail,
message)`` with SERIAL_PROTOCOL.md error codes)::

    ("load", model_bytes, arena_bytes) -> {"arena_used_bytes", "init_ns", "n_ops", "inputs", "outputs"}
    ("set_input", index, offset, data) -> offset + len(data), where the write ended
    ("random", seed)                   -> None
    ("run", mode, count)               -> [(total_ns, set_input_ns, invoke_ns, get_output_ns)] * count
    ("output", index)                  -> the last Invoke's output bytes

Samples are timed in the child with ``time.perf_counter_ns``: host timings of the TFLite Micro
kernels, never MCU timings. Runs on Python >= 3.8 with numpy and tflite-micro; never imports harness.
"""

import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 - List is used in type comments

from device_agents.wire import serial_frames as sf


def _capture_fd2(fn: Any) -> Tuple[Any, str, Optional[BaseException]]:
    """Run ``fn`` with fd 2 captured: TFLite Micro reports through C stdio, not exceptions."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        result, error = None, None
        try:
            result = fn()
        except Exception as exc:  # reported to the host as an ERROR frame, never lost
            error = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace"), error


def _tensor_details(details: Dict[str, Any], index: int, prefix: str) -> Dict[str, Any]:
    import numpy as np

    dtype = np.dtype(details["dtype"]).name
    q = details.get("quantization_parameters") or {}
    scales = list(q.get("scales", []))
    zps = list(q.get("zero_points", []))
    shape = [int(d) for d in details["shape"]]
    count = int(np.prod(shape)) if shape else 1
    return {"dtype": sf.DTYPE_CODES.get(dtype, 0), "dtype_name": dtype, "shape": shape,
            "scale": float(scales[0]) if scales else 0.0, "zero_point": int(zps[0]) if zps else 0,
            "bytes": count * np.dtype(dtype).itemsize, "count": count, "name": "%s%d" % (prefix, index)}


def _classify_load_error(log: str, exc: BaseException) -> Tuple[int, int, str]:
    """(error code, detail, message) for a model TFLite Micro refused."""
    text = (log.strip() + " " + str(exc)).strip()
    op = re.search(r"Didn't find op for builtin opcode '([^']+)'|Failed to get registration from op code (\S+)",
                   log)
    if op:
        return sf.E.UNSUPPORTED_OP, 0, "op %s is not in this firmware: %s" % (op.group(1) or op.group(2), text)
    if "custom" in log.lower() and "not found" in log.lower():
        return sf.E.UNSUPPORTED_OP, 0, text
    missing = re.search(r"missing: (\d+)", log)
    if missing or "allocate" in text.lower():
        return sf.E.ARENA_TOO_SMALL, 0, text
    if "type" in log.lower() and "not supported" in log.lower():
        return sf.E.UNSUPPORTED_OP, 0, text
    return sf.E.BAD_MODEL, 0, text


def _worker(conn: Any) -> None:
    """Child process: owns the TFLite Micro interpreter, answers the parent's requests."""
    # Forked from the device: take back the default signals, so SIGTERM ends this child and the
    # reset button (SIGUSR1) is the parent's business only.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    interp = None
    model_ref = None  # type: Optional[bytes]
    inputs = []  # type: List[Dict[str, Any]]
    outputs = []  # type: List[Dict[str, Any]]
    staged = []  # type: List[Any]
    last_outputs = None  # type: Optional[List[Any]]
    while True:
        try:
            req = conn.recv()
        except (EOFError, OSError):
            return
        op = req[0]
        try:
            if op == "load":
                _, model, arena = req
                interp, last_outputs = None, None

                def create(model: bytes = model, arena: int = arena) -> Any:
                    # kAllocationRecording (sic: the API's spelling) lets us read the arena used.
                    return runtime.Interpreter.from_bytes(
                        model, arena_size=arena,
                        intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)

                t0 = time.perf_counter_ns()
                it, log, exc = _capture_fd2(create)
                init_ns = time.perf_counter_ns() - t0
                if exc is not None or it is None:
                    code, detail, msg = _classify_load_error(log, exc or RuntimeError("no interpreter"))
                    conn.send(("err", code, detail, msg))
                    continue
                _, alloc_log, _ = _capture_fd2(it.print_allocations)
                used = re.search(r"Arena allocation total (\d+) bytes", alloc_log)
                obj = runtime.convert_bytearray_to_object(bytearray(model))
                n_ops = len(obj.subgraphs[0].operators or []) if obj.subgraphs else 0
                n_in = len(obj.subgraphs[0].inputs) if obj.subgraphs else 0
                n_out = len(obj.subgraphs[0].outputs) if obj.subgraphs else 0
                inputs = [_tensor_details(it.get_input_details(i), i, "input") for i in range(n_in)]
                outputs = [_tensor_details(it.get_output_details(i), i, "output") for i in range(n_out)]
                staged = [np.zeros(t["shape"], dtype=t["dtype_name"]) for t in inputs]
                interp = it
                # TFLite Micro reads the flatbuffer in place: the bytes must outlive the interpreter.
                model_ref = model  # noqa: F841
                conn.send(("ok", {"arena_used_bytes": int(used.group(1)) if used else sf.UNKNOWN_U32,
                                  "init_ns": init_ns, "n_ops": n_ops, "inputs": inputs, "outputs": outputs}))
            elif interp is None:
                conn.send(("err", sf.E.BAD_STATE, 0, "no model loaded"))
            elif op == "set_input":
                _, index, offset, data = req
                buf = bytearray(staged[index].tobytes())
                buf[offset:offset + len(data)] = data
                staged[index] = np.frombuffer(bytes(buf), dtype=staged[index].dtype).reshape(staged[index].shape)
                conn.send(("ok", offset + len(data)))
            elif op == "random":
                try:
                    values = sf.random_values(req[1], [(t["dtype_name"], t["count"]) for t in inputs])
                except ValueError as exc:  # the parent checks first; this keeps the code right anyway
                    conn.send(("err", sf.E.UNSUPPORTED, 0, str(exc)))
                    continue
                staged = [np.array(v, dtype=t["dtype_name"]).reshape(t["shape"])
                          for v, t in zip(values, inputs)]
                conn.send(("ok", None))
            elif op == "run":
                _, mode, count = req
                rows = []
                clock = time.perf_counter_ns
                n_in, n_out = len(staged), len(outputs)
                for _ in range(count):
                    t0 = clock()
                    for i in range(n_in):
                        interp.set_input(staged[i], i)
                    t1 = clock()
                    if mode == sf.MODE_WITH:
                        interp.invoke()
                    t2 = clock()
                    got = [interp.get_output(j) for j in range(n_out)]
                    t3 = clock()
                    rows.append((t3 - t0, t1 - t0, t2 - t1 if mode == sf.MODE_WITH else 0, t3 - t2))
                if mode == sf.MODE_WITH and count:
                    # The planner lets inputs reuse output memory, so the arena no longer holds
                    # these values after a run without Invoke: keep the copies of the last one.
                    last_outputs = [np.array(o, copy=True) for o in got]
                conn.send(("ok", rows))
            elif op == "output":
                if last_outputs is None:
                    conn.send(("err", sf.E.BAD_STATE, 0, "no Invoke has run since the model was loaded"))
                else:
                    conn.send(("ok", np.ascontiguousarray(last_outputs[req[1]]).tobytes()))
            else:
                conn.send(("err", sf.E.INTERNAL, 0, "worker does not know %r" % (op,)))
        except Exception as exc:  # the parent turns it into an ERROR frame
            code = sf.E.INVOKE_FAILED if op == "run" else sf.E.INTERNAL
            conn.send(("err", code, 0, "%s: %s" % (type(exc).__name__, exc)))


class Interpreter:
    """The parent's handle on the TFLite Micro child; restarts it after a crash."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        self.proc = None  # type: Any
        self.conn = None  # type: Any

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def call(self, *req: Any) -> Tuple[str, Any]:
        """("ok", value) or ("err", (code, detail, message)); a dead child is ERROR CRASHED."""
        if self.proc is None or not self.proc.is_alive():
            if req[0] != "load":
                return "err", (sf.E.BAD_STATE, 0, "no model loaded")
            self._start()
        try:
            self.conn.send(req)
            reply = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.proc.join(1.0)
            status = self.proc.exitcode
            self.stop()
            how = ("signal %d" % -status) if status is not None and status < 0 else ("status %s" % status)
            return "err", (sf.E.CRASHED, 0, "TFLite Micro aborted the interpreter process (%s) during %s; "
                           "the model is unloaded" % (how, req[0]))
        if reply[0] == "ok":
            return "ok", reply[1]
        return "err", tuple(reply[1:])

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(2.0)
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn = None, None
