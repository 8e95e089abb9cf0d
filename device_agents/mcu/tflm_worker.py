"""The emulated MCU's TFLite Micro, in a child process: abort() there costs the model, not the device.

TFLite Micro can ``abort()`` on a broken model. The interpreter therefore lives in a forked child
(``_worker``: a ``_Worker`` with one method per request) that answers the parent's requests over
a pipe; ``Interpreter`` is the parent's
handle, and turns a child that died into ERROR CRASHED and starts a fresh one for the next model.

Requests (tuples, first item the op) and replies (``("ok", value)`` or ``("err", code, detail,
message)`` with SERIAL_PROTOCOL.md error codes)::

    ("load", model_bytes, arena_bytes) -> {"arena_used_bytes", "init_ns", "n_ops", "inputs", "outputs"}
                                          (tensors named as in the flatbuffer, as the firmware does)
    ("set_input", index, offset, data) -> offset + len(data), where the write ended
    ("random", seed)                   -> None
    ("run", mode, count)               -> [(total_ns, set_input_ns, invoke_ns, get_output_ns)] * count
    ("output", index)                  -> the last Invoke's output bytes
    ("eval",)                          -> [output bytes] of one untimed Invoke (SERIAL_PROTOCOL.md 3.11)
    ("stream", request fields)         -> {"records", "result", "error"}: one STREAM batch (3.12), its
                                          records kept when an Invoke fails ("error" then set)

Samples are timed in the child with ``time.perf_counter_ns``: host timings of the TFLite Micro
kernels, never MCU timings. A stream's schedule runs in the child too, on the same clock: its
waits spin (sleeping only until ``SPIN_NS`` before a frame far away), its work spins are busy. Runs on Python >= 3.8 with numpy and tflite-micro; never imports harness.
"""

import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss

# A stream's wait sleeps until this long before a frame and spins the rest, as an MCU spins on its
# timer: measured on a loaded 2-core host, a process that had just spun a frame's work and then
# slept 0.2 ms woke up to 4 ms late (the scheduler ran another process's whole slice first), so
# only waits longer than a few scheduler slices sleep.
SPIN_NS = 20000000


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


def _tensor_details(details: Dict[str, Any], name: str) -> Dict[str, Any]:
    import numpy as np

    dtype = np.dtype(details["dtype"]).name
    q = details.get("quantization_parameters") or {}
    scales = list(q.get("scales", []))
    zps = list(q.get("zero_points", []))
    shape = [int(d) for d in details["shape"]]
    count = int(np.prod(shape)) if shape else 1
    return {"dtype": sf.DTYPE_CODES.get(dtype, 0), "dtype_name": dtype, "shape": shape,
            "scale": float(scales[0]) if scales else 0.0, "zero_point": int(zps[0]) if zps else 0,
            "bytes": count * np.dtype(dtype).itemsize, "count": count, "name": name}


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


class _Worker:
    """The child's state: one TFLite Micro interpreter and the inputs staged for it.

    One method per request op; each returns the reply's value or raises ``_Refused``.
    """

    def __init__(self) -> None:
        import numpy as np
        from tflite_micro.python.tflite_micro import runtime

        self.np = np
        self.runtime = runtime
        self.interp = None  # type: Any
        self.model_ref = None  # type: Optional[bytes]
        self.inputs = []  # type: List[Dict[str, Any]]
        self.outputs = []  # type: List[Dict[str, Any]]
        self.staged = []  # type: List[Any]
        self.last_outputs = None  # type: Optional[List[Any]]

    def serve(self, conn: Any) -> None:
        while True:
            try:
                req = conn.recv()
            except (EOFError, OSError):
                return
            op = req[0]
            handler = getattr(self, "op_" + str(op), None)
            try:
                if op != "load" and self.interp is None:
                    raise _Refused(sf.E.BAD_STATE, "no model loaded")
                if handler is None:
                    raise _Refused(sf.E.INTERNAL, "worker does not know %r" % (op,))
                conn.send(("ok", handler(*req[1:])))
            except _Refused as exc:
                conn.send(("err", exc.code, exc.detail, exc.message))
            except Exception as exc:  # the parent turns it into an ERROR frame
                code = sf.E.INVOKE_FAILED if op in ("run", "eval") else sf.E.INTERNAL
                conn.send(("err", code, 0, "%s: %s" % (type(exc).__name__, exc)))

    def op_load(self, model: bytes, arena: int) -> Dict[str, Any]:
        runtime = self.runtime
        self.interp, self.last_outputs = None, None

        def create() -> Any:
            # kAllocationRecording (sic: the API's spelling) lets us read the arena used.
            return runtime.Interpreter.from_bytes(
                model, arena_size=arena, intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)

        t0 = time.perf_counter_ns()
        it, log, exc = _capture_fd2(create)
        init_ns = time.perf_counter_ns() - t0
        if exc is not None or it is None:
            code, detail, msg = _classify_load_error(log, exc or RuntimeError("no interpreter"))
            raise _Refused(code, msg, detail)
        _, alloc_log, _ = _capture_fd2(it.print_allocations)
        used = re.search(r"Arena allocation total (\d+) bytes", alloc_log)
        sg = runtime.convert_bytearray_to_object(bytearray(model)).subgraphs
        sg0 = sg[0] if sg else None
        # Tensors are named as in the flatbuffer, as the firmware names them (tflm_backend.cpp).
        names = [(t.name or b"").decode("utf-8", "replace") for t in sg0.tensors] if sg0 else []
        ins, outs = (list(sg0.inputs), list(sg0.outputs)) if sg0 else ([], [])
        self.inputs = [_tensor_details(it.get_input_details(i), names[t]) for i, t in enumerate(ins)]
        self.outputs = [_tensor_details(it.get_output_details(i), names[t]) for i, t in enumerate(outs)]
        self.staged = [self.np.zeros(t["shape"], dtype=t["dtype_name"]) for t in self.inputs]
        self.interp = it
        # TFLite Micro reads the flatbuffer in place: the bytes must outlive the interpreter.
        self.model_ref = model
        return {"arena_used_bytes": int(used.group(1)) if used else sf.UNKNOWN_U32, "init_ns": init_ns,
                "n_ops": len(sg0.operators or []) if sg0 else 0, "inputs": self.inputs, "outputs": self.outputs}

    def op_set_input(self, index: int, offset: int, data: bytes) -> int:
        old = self.staged[index]
        buf = bytearray(old.tobytes())
        buf[offset:offset + len(data)] = data
        self.staged[index] = self.np.frombuffer(bytes(buf), dtype=old.dtype).reshape(old.shape)
        return offset + len(data)

    def op_random(self, seed: int) -> None:
        try:
            values = sf.random_values(seed, [(t["dtype_name"], t["count"]) for t in self.inputs])
        except ValueError as exc:  # the parent checks first; this keeps the code right anyway
            raise _Refused(sf.E.UNSUPPORTED, str(exc))
        self.staged = [self.np.array(v, dtype=t["dtype_name"]).reshape(t["shape"])
                       for v, t in zip(values, self.inputs)]

    def op_run(self, mode: int, count: int) -> List[Tuple[int, int, int, int]]:
        interp, staged = self.interp, self.staged
        rows = []
        clock = time.perf_counter_ns
        n_in, n_out = len(staged), len(self.outputs)
        got = []  # type: List[Any]
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
            self.last_outputs = [self.np.array(o, copy=True) for o in got]
        return rows

    def op_eval(self) -> List[bytes]:
        """One iteration of op_run's loop with Invoke, untimed: the outputs, kept as the last Invoke's."""
        interp = self.interp
        for i, array in enumerate(self.staged):
            interp.set_input(array, i)
        interp.invoke()
        self.last_outputs = [self.np.array(interp.get_output(j), copy=True) for j in range(len(self.outputs))]
        return [bytes(self.np.ascontiguousarray(o).tobytes()) for o in self.last_outputs]

    def op_stream(self, *fields: int) -> Dict[str, Any]:
        """One STREAM batch (SERIAL_PROTOCOL.md 3.12) on perf_counter_ns: each frame one iteration
        of op_run's loop with Invoke; the records of the frames before a failing Invoke are kept."""
        interp, staged, n_out = self.interp, self.staged, len(self.outputs)
        perf = time.perf_counter_ns
        t0 = perf()
        got = []  # type: List[Any]

        def clock() -> int:
            return perf() - t0

        def wait(target: int) -> int:
            left = target - clock()
            if left > SPIN_NS:
                time.sleep((left - SPIN_NS) / 1e9)
            return ss.spin_until(clock, target)

        def frame() -> int:
            for i, array in enumerate(staged):
                interp.set_input(array, i)
            t1 = perf()
            interp.invoke()
            t2 = perf()
            got[:] = [interp.get_output(j) for j in range(n_out)]
            return t2 - t1

        records = []  # type: List[ss.Record]
        result, error = None, None
        try:
            result = ss.run_batch(ss.Request(*fields), clock, frame, records, wait)
        except Exception as exc:  # an Invoke that failed: the frames before it stay recorded
            error = (sf.E.INVOKE_FAILED, 0, "%s: %s" % (type(exc).__name__, exc))
        if got:  # the last Invoke's outputs, as op_run keeps them
            self.last_outputs = [self.np.array(o, copy=True) for o in got]
        return {"records": [tuple(r) for r in records], "result": tuple(result) if result else None,
                "error": error}

    def op_output(self, index: int) -> bytes:
        if self.last_outputs is None:
            raise _Refused(sf.E.BAD_STATE, "no Invoke has run since the model was loaded")
        return bytes(self.np.ascontiguousarray(self.last_outputs[index]).tobytes())


class _Refused(Exception):
    """A request the worker answers with an ERROR code (SERIAL_PROTOCOL.md section 5)."""

    def __init__(self, code: int, message: str, detail: int = 0) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.detail = detail
        self.message = message


def _worker(conn: Any) -> None:
    """Child process: owns the TFLite Micro interpreter, answers the parent's requests."""
    # Forked from the device: take back the default signals, so SIGTERM ends this child and the
    # reset button (SIGUSR1) is the parent's business only.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    _Worker().serve(conn)


class Interpreter:
    """The parent's handle on the TFLite Micro child; restarts it after a crash."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")  # type: Any
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
