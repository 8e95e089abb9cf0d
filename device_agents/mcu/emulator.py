"""An emulated microcontroller: the device side of SERIAL_PROTOCOL.md behind a real tty.

Usage::

    python3 device_agents/mcu/emulator.py [--tty PATH] [--baud 115200] [--arena 65536] [--max-model 2097152]
                            [--max-payload 4104] [--builtin MODEL.tflite] [--board NAME]
                            [--stream-frames 256] [--exit-on-stdin-eof]

Without ``--tty`` it creates a pty pair, sets it raw, and writes one JSON line
``{"port": "/dev/pts/N", "pid": PID}`` on stdout; the host opens that path like a USB serial port.
With ``--tty`` it serves an existing tty (e.g. one end of a socat pair).

It paces every byte it reads and writes at 10 bits per byte at ``--baud`` (8N1) because a pty
carries data at memory speed whatever baud is set: without pacing, upload times would be fiction
(uart.py).

TFLite Micro runs in a child process: TFLite Micro can ``abort()`` on a broken model, and that
must cost the emulated device its model (ERROR CRASHED), not its life. Samples are timed in the
child with ``time.perf_counter_ns``: they are host timings of the TFLite Micro kernels, labelled
emulated in HELLO, never MCU timings (tflm_worker.py).

SIGUSR1 emulates the reset button: all state (the reply limit HELLO negotiated too) is dropped
and BOOT is sent, as after power-up.
Runs on Python >= 3.8 with numpy and tflite-micro; never imports harness.
"""

import argparse
import hashlib
import json
import os
import select
import signal
import struct
import sys
import time
import tty
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 - Dict is used in type comments

if __package__ in (None, ""):  # run as a script: the device_agents package is two folders up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from device_agents.mcu.stream_requests import StreamRequests
from device_agents.mcu.tflm_worker import Interpreter
from device_agents.mcu.uart import PacedLine
from device_agents.wire import serial_frames as sf

INTER_BYTE_TIMEOUT_S = 0.1  # SERIAL_PROTOCOL.md 1.1: a partial frame idle this long is noise
MAX_ERROR_MESSAGE = 200  # bytes of ERROR message text (section 5), before the reply limit cuts more

# Requests of one fixed payload length (section 2: anything else is BAD_LENGTH, detail = this).
# UPLOAD_CHUNK, SET_INPUT and PING are variable: their handlers check what they need.
FIXED_LENGTHS = {
    sf.T.HELLO: 2, sf.T.UPLOAD_BEGIN: 36, sf.T.UPLOAD_END: 0, sf.T.USE_BUILTIN: 0, sf.T.GET_TENSOR: 2,
    sf.T.RANDOM_INPUT: 4, sf.T.RUN: 4, sf.T.GET_OUTPUT: 7, sf.T.GET_PROFILE: 2, sf.T.EVAL: 0,
    sf.T.STREAM: 24, sf.T.GET_STREAM: 2,
}


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character's byte sequence."""
    return text.encode("utf-8")[:max(0, limit)].decode("utf-8", "ignore")


def has_random_values(dtype_name: str) -> bool:
    """Whether RANDOM_INPUT defines values for this dtype (SERIAL_PROTOCOL.md 3.7)."""
    try:
        sf.random_values(0, [(dtype_name, 0)])
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------- the device

class Device(StreamRequests):
    """Protocol state machine of one emulated MCU (STREAM and GET_STREAM: stream_requests.py)."""

    def __init__(self, line: PacedLine, args: argparse.Namespace) -> None:
        self.line = line
        self.args = args
        self.interp = Interpreter()
        self.decoder = sf.Decoder(max_payload=args.max_payload)
        self.builtin = None  # type: Optional[bytes]
        if args.builtin:
            with open(args.builtin, "rb") as f:
                self.builtin = f.read()
        self.reset()

    def reset(self) -> None:
        """Power-up state: a reset loses RAM, so also the reply limit HELLO negotiated."""
        self.reply_limit = sf.MIN_PAYLOAD
        self.upload = None  # type: Optional[Dict[str, Any]]
        self.model = None  # type: Optional[Dict[str, Any]]
        self.last = None  # type: Optional[Tuple[int, int, bytes]]
        self.drop_stream()
        self.interp.stop()
        self.decoder = sf.Decoder(max_payload=self.args.max_payload)

    def info(self) -> bytes:
        flags = sf.FLAG_EMULATED | sf.FLAG_EVAL | sf.FLAG_STREAM | (sf.FLAG_BUILTIN if self.builtin else 0)
        try:
            from tflite_micro import __version__ as tflm_version
        except ImportError:  # pragma: no cover - only the version string is lost
            tflm_version = "unknown"
        names = {"board": self.args.board, "cpu": "host CPU (emulated MCU)", "tflm_version": tflm_version}
        names = {k: cut_utf8(v, 255) for k, v in names.items()}  # a str8 holds 255 bytes
        fields = {
            "protocol_version": sf.VERSION, "max_payload": self.args.max_payload, "cpu_hz": 0,
            "timer_hz": 1000000000, "timer_resolution_ns": 1, "arena_bytes": self.args.arena,
            "max_model_bytes": self.args.max_model, "max_batch": self.max_batch(), "flags": flags}
        # Section 3.1: HELLO_OK always fits the reply limit (>= 64), so HELLO never fails; the
        # strings give way, tflm_version first, then cpu, then board.
        for key in ("tflm_version", "cpu", "board"):
            excess = len(sf.pack_info(dict(fields, **names))) - self.reply_limit
            if excess <= 0:
                break
            names[key] = cut_utf8(names[key], len(names[key].encode("utf-8")) - excess)
        return sf.pack_info(dict(fields, **names))

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
        # Section 5: the text gives way so the whole payload (8 + N) fits the reply limit, which is
        # 64 bytes until HELLO.
        text = cut_utf8(message, min(MAX_ERROR_MESSAGE, self.reply_limit - 8))
        return self.send(sf.T.ERROR, seq, sf.pack_error(code, req_type, detail, text))

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
            sf.T.GET_PROFILE: self.on_get_profile, sf.T.PING: self.on_ping, sf.T.EVAL: self.on_eval,
            sf.T.STREAM: self.on_stream, sf.T.GET_STREAM: self.on_get_stream,
        }.get(t)
        if handler is None:
            return self.error(seq, t, sf.E.UNKNOWN_TYPE, 0, "unknown message type 0x%02x" % t)
        need = FIXED_LENGTHS.get(t)
        if need is not None and len(p) != need:
            return self.error(seq, t, sf.E.BAD_LENGTH, need,
                              "payload of %d bytes, this request carries %d" % (len(p), need))
        try:
            result = handler(p)
        except struct.error:
            return self.error(seq, t, sf.E.BAD_LENGTH, 0, "payload of %d bytes is malformed" % len(p))
        if isinstance(result, tuple):  # (code, detail, message)
            return self.error(seq, t, int(result[0]), int(result[1]), str(result[2]))
        if len(result) > self.reply_limit:  # section 1: never; a handler bug, not a line fault
            return self.error(seq, t, sf.E.INTERNAL, self.reply_limit,
                              "reply to type 0x%02x does not fit the host's %d bytes" % (t, self.reply_limit))
        return self.send(sf.reply_type(t), seq, result)

    # Handlers return the OK payload, or (code, detail, message) for an ERROR.

    def on_hello(self, p: bytes) -> Any:
        limit = sf.parse_hello_request(p)
        if limit is None or limit < sf.MIN_PAYLOAD:
            return sf.E.BAD_LENGTH, 2, "HELLO carries u16 host_max_payload >= 64"
        # Section 1: no reply longer than the host accepts, nor than this device's own max_payload.
        self.reply_limit = min(limit, sf.MAX_PAYLOAD_V1, self.args.max_payload)
        return self.info()

    def on_ping(self, p: bytes) -> Any:
        if len(p) > self.reply_limit:
            return sf.E.BAD_ARGUMENT, self.reply_limit, "PING payload longer than the host accepts"
        return p

    def on_upload_begin(self, p: bytes) -> Any:
        size, digest = struct.unpack("<I32s", p)
        self.upload, self.model = None, None
        self.drop_stream()
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
        # (a payload is refused as BAD_LENGTH by dispatch, before anything changes)
        if self.builtin is None:
            return sf.E.UNSUPPORTED, 0, "no model is built into this firmware"
        return self.load(self.builtin)

    def load(self, model: bytes) -> Any:
        self.model = None
        self.drop_stream()
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
        # Section 3.5: the name (str8) gives way when the reply would exceed the host's limit.
        room = self.reply_limit - len(sf.pack_tensor(t["dtype"], t["shape"], 0.0, 0, 0, ""))
        return sf.pack_tensor(t["dtype"], t["shape"], t["scale"], t["zero_point"], t["bytes"],
                              cut_utf8(t["name"], min(255, room)))

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
        # Checked for every input first, so a refused request changes nothing (section 3.7).
        for index, t in enumerate(self.model["inputs"]):
            if not has_random_values(t["dtype_name"]):
                return (sf.E.UNSUPPORTED, t["dtype"], "no random values for dtype %s of input %d; send "
                        "inputs with SET_INPUT" % (t["dtype_name"], index))
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

    def on_eval(self, p: bytes) -> Any:
        # Section 3.11: one untimed Invoke on the staged inputs; as many output bytes as fit, the
        # host pages the rest with GET_OUTPUT. (A payload is BAD_LENGTH, refused by dispatch.)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        outputs = self._call("eval")
        return outputs if isinstance(outputs, tuple) else sf.pack_eval(outputs, self.reply_limit)

    def on_get_profile(self, p: bytes) -> Any:
        # Section 3.10: without a profiler the answer is UNSUPPORTED whatever the state or first_op.
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
    ap.add_argument("--stream-frames", type=int, default=256, help="most frames one STREAM batch holds")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin closes, so a vanished host never leaves the emulator running")
    args = ap.parse_args(argv)
    if not sf.MIN_PAYLOAD <= args.max_payload <= sf.MAX_PAYLOAD_V1:
        ap.error("--max-payload must be within %d..%d" % (sf.MIN_PAYLOAD, sf.MAX_PAYLOAD_V1))
    if args.baud <= 0 or args.arena <= 0:
        ap.error("--baud and --arena must be positive")
    if not 1 <= args.stream_frames <= 0xFFFF:
        ap.error("--stream-frames must be within 1..65535")

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
