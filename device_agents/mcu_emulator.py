"""An emulated microcontroller: the device side of SERIAL_PROTOCOL.md behind a real tty.

Usage::

    python3 mcu_emulator.py [--tty PATH] [--baud 115200] [--arena 65536] [--max-model 2097152]
                            [--max-payload 4104] [--builtin MODEL.tflite] [--board NAME]
                            [--exit-on-stdin-eof]

Without ``--tty`` it creates a pty pair, sets it raw, and writes one JSON line
``{"port": "/dev/pts/N", "pid": PID}`` on stdout; the host opens that path like a USB serial port.
With ``--tty`` it serves an existing tty (e.g. one end of a socat pair).

It paces every byte it reads and writes at 10 bits per byte at ``--baud`` (8N1) because a pty
carries data at memory speed whatever baud is set: without pacing, upload times would be fiction.

TFLite Micro runs in a child process: TFLite Micro can ``abort()`` on a broken model, and that
must cost the emulated device its model (ERROR CRASHED), not its life. Samples are timed in the
child with ``time.perf_counter_ns``: they are host timings of the TFLite Micro kernels, labelled
emulated in HELLO, never MCU timings.

SIGUSR1 emulates the reset button: all state is dropped and BOOT is sent, as after power-up.
Runs on Python >= 3.8 with numpy and tflite-micro; never imports harness.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import select
import signal
import struct
import sys
import tempfile
import time
import tty
from typing import Any, Dict, List, Optional, Tuple

try:  # a plain module next to this file when run as a script, a package module under harness
    import serial_frames as sf  # type: ignore
except ImportError:  # pragma: no cover - imported as device_agents.mcu_emulator
    from device_agents import serial_frames as sf

INTER_BYTE_TIMEOUT_S = 0.1  # SERIAL_PROTOCOL.md 1.1: a partial frame idle this long is noise
WRITE_SLICE = 256  # bytes per paced write, so a long reply trickles out like a UART's


# ------------------------------------------------------------------- the TFLite Micro child

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
                values = sf.random_values(req[1], [(t["dtype_name"], t["count"]) for t in inputs])
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


# ------------------------------------------------------------------- the paced UART

class PacedLine:
    """A tty whose bytes move no faster than a UART at ``baud`` (8N1)."""

    def __init__(self, fd: int, baud: int) -> None:
        self.fd = fd
        self.byte_s = sf.BITS_PER_BYTE / float(baud)
        self.rx_clock = 0.0
        self.tx_clock = 0.0

    def read(self, timeout: float) -> bytes:
        """Bytes received within ``timeout`` s (b"" if none), released at the line rate."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 8192)
        except OSError:  # EIO: no process holds the other end
            time.sleep(min(timeout, 0.05))
            return b""
        self.rx_clock = max(self.rx_clock, time.monotonic()) + len(data) * self.byte_s
        _sleep_until(self.rx_clock)
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            piece, view = view[:WRITE_SLICE], view[WRITE_SLICE:]
            self.tx_clock = max(self.tx_clock, time.monotonic()) + len(piece) * self.byte_s
            _sleep_until(self.tx_clock)
            while piece:
                try:
                    n = os.write(self.fd, piece)
                except BlockingIOError:
                    select.select([], [self.fd], [], 0.05)
                    continue
                piece = piece[n:]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# ------------------------------------------------------------------- the device

class Device:
    """Protocol state machine of one emulated MCU."""

    def __init__(self, line: PacedLine, args: argparse.Namespace) -> None:
        self.line = line
        self.args = args
        self.interp = Interpreter()
        self.decoder = sf.Decoder(max_payload=args.max_payload)
        self.builtin = None  # type: Optional[bytes]
        if args.builtin:
            with open(args.builtin, "rb") as f:
                self.builtin = f.read()
        self.reply_limit = sf.MIN_PAYLOAD
        self.reset()

    def reset(self) -> None:
        self.upload = None  # type: Optional[Dict[str, Any]]
        self.model = None  # type: Optional[Dict[str, Any]]
        self.last = None  # type: Optional[Tuple[int, int, bytes]]
        self.interp.stop()
        self.decoder = sf.Decoder(max_payload=self.args.max_payload)

    def info(self) -> bytes:
        flags = sf.FLAG_EMULATED | (sf.FLAG_BUILTIN if self.builtin else 0)
        try:
            from tflite_micro import __version__ as tflm_version
        except ImportError:  # pragma: no cover - only the version string is lost
            tflm_version = "unknown"
        return sf.pack_info({
            "protocol_version": sf.VERSION, "max_payload": self.args.max_payload, "cpu_hz": 0,
            "timer_hz": 1000000000, "timer_resolution_ns": 1, "arena_bytes": self.args.arena,
            "max_model_bytes": self.args.max_model, "max_batch": self.max_batch(), "flags": flags,
            "board": self.args.board, "cpu": "host CPU (emulated MCU)", "tflm_version": tflm_version})

    def max_batch(self) -> int:
        return max(1, min(0xFFFF, sf.max_batch_rows(min(self.args.max_payload, self.reply_limit))))

    def send(self, type_: int, seq: int, payload: bytes = b"") -> bytes:
        raw = sf.encode(type_, seq, payload)
        self.line.write(raw)
        return raw

    def serve(self, stop: Any) -> None:
        self.send(sf.T.BOOT, 0, struct.pack("<H", sf.VERSION))
        idle_since = time.monotonic()
        while not stop():
            data = self.line.read(0.05)
            now = time.monotonic()
            if data:
                idle_since = now
                events = self.decoder.feed(data)
            elif self.decoder.pending() and now - idle_since >= INTER_BYTE_TIMEOUT_S:
                events = []
                while self.decoder.pending():
                    self.decoder.drop_partial()
                    events += self.decoder.feed(b"")
            else:
                continue
            for event in events:
                if isinstance(event, sf.Rejected):
                    if event.reason == "version":
                        self.error(event.seq, event.type, sf.E.BAD_VERSION, sf.VERSION,
                                   "this device speaks protocol version %d" % sf.VERSION)
                    else:
                        self.error(event.seq, event.type, sf.E.FRAME_TOO_LONG, self.args.max_payload,
                                   "payload of %d bytes exceeds max_payload" % event.length)
                else:
                    self.handle(event)

    def error(self, seq: int, req_type: int, code: int, detail: int, message: str) -> bytes:
        return self.send(sf.T.ERROR, seq, sf.pack_error(code, req_type, detail, message))

    def handle(self, frame: sf.Frame) -> None:
        if frame.type != sf.T.HELLO and self.last and self.last[:2] == (frame.seq, frame.crc):
            self.line.write(self.last[2])  # a retransmission: same answer, not executed twice
            return
        raw = self.dispatch(frame)
        self.last = (frame.seq, frame.crc, raw) if frame.type != sf.T.HELLO else None

    def dispatch(self, f: sf.Frame) -> bytes:
        t, seq, p = f.type, f.seq, f.payload
        handler = {
            sf.T.HELLO: self.on_hello, sf.T.UPLOAD_BEGIN: self.on_upload_begin,
            sf.T.UPLOAD_CHUNK: self.on_upload_chunk, sf.T.UPLOAD_END: self.on_upload_end,
            sf.T.USE_BUILTIN: self.on_use_builtin, sf.T.GET_TENSOR: self.on_get_tensor,
            sf.T.SET_INPUT: self.on_set_input, sf.T.RANDOM_INPUT: self.on_random_input,
            sf.T.RUN: self.on_run, sf.T.GET_OUTPUT: self.on_get_output,
            sf.T.GET_PROFILE: self.on_get_profile, sf.T.PING: self.on_ping,
        }.get(t)
        if handler is None:
            return self.error(seq, t, sf.E.UNKNOWN_TYPE, 0, "unknown message type 0x%02x" % t)
        try:
            result = handler(p)
        except struct.error:
            return self.error(seq, t, sf.E.BAD_LENGTH, 0, "payload of %d bytes is malformed" % len(p))
        if isinstance(result, tuple):  # (code, detail, message)
            return self.error(seq, t, int(result[0]), int(result[1]), str(result[2]))
        return self.send(sf.reply_type(t), seq, result)

    # Handlers return the OK payload, or (code, detail, message) for an ERROR.

    def on_hello(self, p: bytes) -> Any:
        limit = sf.parse_hello_request(p)
        if limit is None or limit < sf.MIN_PAYLOAD:
            return sf.E.BAD_LENGTH, 2, "HELLO carries u16 host_max_payload >= 64"
        self.reply_limit = min(limit, sf.MAX_PAYLOAD_V1)
        return self.info()

    def on_ping(self, p: bytes) -> Any:
        if len(p) > self.reply_limit:
            return sf.E.BAD_ARGUMENT, self.reply_limit, "PING payload longer than the host accepts"
        return p

    def on_upload_begin(self, p: bytes) -> Any:
        size, digest = struct.unpack("<I32s", p)
        self.upload, self.model = None, None
        if size == 0:
            return sf.E.BAD_ARGUMENT, 0, "model_bytes is 0"
        if size > self.args.max_model:
            return (sf.E.MODEL_TOO_LARGE, self.args.max_model, "model of %d bytes exceeds the %d bytes "
                    "this device accepts" % (size, self.args.max_model))
        self.upload = {"size": size, "sha256": digest, "data": bytearray()}
        return struct.pack("<I", self.args.max_payload - 4)

    def on_upload_chunk(self, p: bytes) -> Any:
        (offset,) = struct.unpack_from("<I", p)
        data = p[4:]
        up = self.upload
        if up is None:
            return sf.E.BAD_STATE, 0, "no upload in progress (did the device reset?)"
        if not data or offset + len(data) > up["size"]:
            return sf.E.BAD_ARGUMENT, up["size"], "chunk at %d+%d is outside the model" % (offset, len(data))
        if offset == len(up["data"]):
            up["data"] += data
        return struct.pack("<I", len(up["data"]))

    def on_upload_end(self, p: bytes) -> Any:
        if p:
            return sf.E.BAD_LENGTH, 0, "UPLOAD_END has no payload"
        up = self.upload
        if up is None or len(up["data"]) != up["size"]:
            got = len(up["data"]) if up else 0
            return sf.E.BAD_STATE, got, "upload incomplete: %d bytes received" % got
        self.upload = None
        if hashlib.sha256(bytes(up["data"])).digest() != up["sha256"]:
            return sf.E.HASH_MISMATCH, 0, "SHA-256 of the received model differs from UPLOAD_BEGIN's"
        return self.load(bytes(up["data"]))

    def on_use_builtin(self, p: bytes) -> Any:
        if self.builtin is None:
            return sf.E.UNSUPPORTED, 0, "no model is built into this firmware"
        return self.load(self.builtin)

    def load(self, model: bytes) -> Any:
        self.model = None
        self.interp.stop()  # a fresh child per model: no state survives from the last one
        status, value = self.interp.call("load", model, self.args.arena)
        if status != "ok":
            return value
        used = value["arena_used_bytes"]
        if used != sf.UNKNOWN_U32 and used > self.args.arena:
            return sf.E.ARENA_TOO_SMALL, used, "model needs %d arena bytes, arena is %d" % (used, self.args.arena)
        self.model = dict(value, sha256=hashlib.sha256(model).digest(), size=len(model))
        return sf.pack_model_info({
            "sha256": self.model["sha256"], "model_bytes": len(model), "arena_bytes": self.args.arena,
            "arena_used_bytes": used, "init_ticks": min(value["init_ns"], sf.UNKNOWN_U32 - 1),
            "n_inputs": len(value["inputs"]), "n_outputs": len(value["outputs"]), "n_ops": value["n_ops"]})

    def on_get_tensor(self, p: bytes) -> Any:
        which, index = struct.unpack("<BB", p)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        tensors = self.model["inputs" if which == 0 else "outputs"]
        if which > 1 or index >= len(tensors):
            return sf.E.BAD_INDEX, len(tensors), "no tensor %d" % index
        t = tensors[index]
        return sf.pack_tensor(t["dtype"], t["shape"], t["scale"], t["zero_point"], t["bytes"], t["name"])

    def _call(self, *req: Any) -> Any:
        status, value = self.interp.call(*req)
        if status == "ok":
            return value
        if value[0] == sf.E.CRASHED:
            self.model = None
        return tuple(value)

    def on_set_input(self, p: bytes) -> Any:
        index, offset = struct.unpack_from("<BI", p)
        data = p[5:]
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        if index >= len(self.model["inputs"]):
            return sf.E.BAD_INDEX, len(self.model["inputs"]), "no input %d" % index
        size = self.model["inputs"][index]["bytes"]
        if offset + len(data) > size:
            return sf.E.BAD_ARGUMENT, size, "input %d holds %d bytes" % (index, size)
        result = self._call("set_input", index, offset, data)
        return result if isinstance(result, tuple) else struct.pack("<I", result)

    def on_random_input(self, p: bytes) -> Any:
        (seed,) = struct.unpack("<I", p)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        result = self._call("random", seed)
        return result if isinstance(result, tuple) else b""

    def on_run(self, p: bytes) -> Any:
        mode, _, count = struct.unpack("<BBH", p)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        if mode > 1 or not 1 <= count <= self.max_batch():
            return sf.E.BAD_ARGUMENT, self.max_batch(), "RUN mode %d count %d" % (mode, count)
        rows = self._call("run", mode, count)
        return rows if isinstance(rows, tuple) else sf.pack_samples(mode, rows)

    def on_get_output(self, p: bytes) -> Any:
        index, offset, max_len = struct.unpack("<BIH", p)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        if index >= len(self.model["outputs"]):
            return sf.E.BAD_INDEX, len(self.model["outputs"]), "no output %d" % index
        data = self._call("output", index)
        if isinstance(data, tuple):
            return data
        if offset > len(data):
            return sf.E.BAD_ARGUMENT, len(data), "offset %d past the output's end" % offset
        n = min(max_len, len(data) - offset, self.reply_limit - 8)
        return struct.pack("<II", len(data), offset) + data[offset:offset + n]

    def on_get_profile(self, p: bytes) -> Any:
        return sf.E.UNSUPPORTED, 0, "the tflite-micro Python interpreter has no per-operator profiler"


def _open_line(args: argparse.Namespace) -> Tuple[int, Optional[int]]:
    """(fd the device reads and writes, fd kept open only to keep a pty alive)."""
    if args.tty:
        fd = os.open(args.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        print(json.dumps({"port": args.tty, "pid": os.getpid()}), flush=True)
        return fd, None
    master, slave = os.openpty()
    # Raw before anyone opens it: an echoing pty would hand the device its own replies.
    tty.setraw(slave)
    tty.setraw(master)
    os.set_blocking(master, False)
    # The slave stays open here so the pty survives the host closing and reopening its port.
    print(json.dumps({"port": os.ttyname(slave), "pid": os.getpid()}), flush=True)
    return master, slave


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tty", help="serve this tty instead of creating a pty")
    ap.add_argument("--baud", type=int, default=115200, help="line rate the reads and writes are paced at")
    ap.add_argument("--arena", type=int, default=64 * 1024, help="tensor arena size in bytes")
    ap.add_argument("--max-model", type=int, default=2 * 1024 * 1024, help="largest model accepted, bytes")
    ap.add_argument("--max-payload", type=int, default=4104, help="largest frame payload, bytes")
    ap.add_argument("--builtin", help="a .tflite file playing the model built into the firmware")
    ap.add_argument("--board", default="mcu-emulator", help="board name reported in HELLO")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin closes, so a vanished host never leaves the emulator running")
    args = ap.parse_args(argv)
    if not sf.MIN_PAYLOAD <= args.max_payload <= sf.MAX_PAYLOAD_V1:
        ap.error("--max-payload must be within %d..%d" % (sf.MIN_PAYLOAD, sf.MAX_PAYLOAD_V1))
    if args.baud <= 0 or args.arena <= 0:
        ap.error("--baud and --arena must be positive")

    state = {"stop": False, "reset": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGINT, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGUSR1, lambda *_: state.update(reset=True))
    fd, _keep = _open_line(args)
    device = Device(PacedLine(fd, args.baud), args)

    def stop() -> bool:
        if args.exit_on_stdin_eof:
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if ready and not os.read(sys.stdin.fileno(), 1024):
                state["stop"] = True
        if state["reset"]:
            state["reset"] = False
            device.reset()
            device.send(sf.T.BOOT, 0, struct.pack("<H", sf.VERSION))
        return bool(state["stop"])

    try:
        device.serve(stop)
    finally:
        device.interp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
