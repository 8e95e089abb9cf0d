"""Shared pieces of the serial tests: tiny real models, a running emulator, a faulty line.

- ``fc_model``: a one-op FULLY_CONNECTED .tflite built with the flatbuffer schema that ships with
  tflite-micro (no TensorFlow needed), plus variants TFLite Micro refuses or crashes on.
- ``running_emulator``: device_agents/mcu/emulator.py on a real pty, stopped afterwards.
- ``LineProxy``: a pty-in-the-middle between the host and the emulator's pty that can drop,
  duplicate, flip or garble bytes in either direction, like a bad cable or a wrong baud rate.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import tty
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from device_agents.wire import serial_frames as sf
from harness.config import SerialOptions, Target
from harness.lab.drivers.emulator import EmulatedMcu
from harness.lab.drivers.mcu import McuDriver
from harness.plan import Plan

Fault = Callable[[bytes], bytes]
QUICK_PLAN = Plan(warmup=2, warmup_time_s=0.0, iterations=20, blocks=2, settle=1, seed=3)


def _buffer(buffers: list[Any], arr: np.ndarray) -> int:
    """Appends ``arr``'s bytes as a model buffer; its index."""
    b = schema.BufferT()
    b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8).tolist()
    buffers.append(b)
    return len(buffers) - 1


def _tensor(name: str, shape: list[int], ttype: int, buffer: int = 0, scale: float | None = None) -> object:
    """A tensor, per-tensor quantized with zero point 0 when ``scale`` is given."""
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name, shape, ttype, buffer
    if scale is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [0]
        t.quantization = q
    return t


def fc_model(k: int = 16, m: int = 4, *, custom: str | None = None, int8: bool = False,
             bad_tensor: bool = False, pad_bytes: int = 0, seed: int = 0) -> bytes:
    """A FULLY_CONNECTED model [1,k] -> [1,m]. ``custom`` makes its op an unknown custom op,
    ``bad_tensor`` points an op input at a tensor that does not exist (TFLite Micro segfaults),
    ``pad_bytes`` adds an unused buffer to make the file larger."""
    rng = np.random.default_rng(seed)
    buffers = [schema.BufferT()]
    buf, tensor = partial(_buffer, buffers), _tensor

    sg = schema.SubGraphT()
    if int8:
        w = rng.integers(-127, 127, size=(m, k), dtype=np.int8)
        b = rng.integers(-100, 100, size=(m,), dtype=np.int32)
        sg.tensors = [tensor("in", [1, k], schema.TensorType.INT8, 0, 0.05),
                      tensor("w", [m, k], schema.TensorType.INT8, buf(w), 0.01),
                      tensor("b", [m], schema.TensorType.INT32, buf(b), 0.0005),
                      tensor("out", [1, m], schema.TensorType.INT8, 0, 0.1)]
    else:
        w = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        sg.tensors = [tensor("in", [1, k], schema.TensorType.FLOAT32),
                      tensor("w", [m, k], schema.TensorType.FLOAT32, buf(w)),
                      tensor("b", [m], schema.TensorType.FLOAT32, buf(b)),
                      tensor("out", [1, m], schema.TensorType.FLOAT32)]
    if pad_bytes:
        buf(rng.integers(0, 255, size=pad_bytes, dtype=np.uint8))
    sg.inputs, sg.outputs = [0], [3]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 7 if bad_tensor else 2], [3]
    code = schema.OperatorCodeT()
    if custom:
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = custom
    else:
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = schema.FullyConnectedOptionsT()
    code.version = 1
    sg.operators = [op]
    model = schema.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [sg], [code], buffers
    model.description = "harness serial test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def sub_model(k: int = 4) -> bytes:
    """A two-input SUB model: ``diff = beta - alpha``, float32 [1,k], inputs in the order beta, alpha.

    Neither file order nor sorted order of the names (alpha, beta) is the model's: only matching by
    name feeds it right, and SUB is not commutative, so a swap shows in the outputs."""
    sg = schema.SubGraphT()
    sg.tensors = []
    for name in ("beta", "alpha", "diff"):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, k], schema.TensorType.FLOAT32, 0
        sg.tensors.append(t)
    sg.inputs, sg.outputs = [0, 1], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.SubOptions
    op.builtinOptions = schema.SubOptionsT()
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SUB
    code.version = 1
    sg.operators = [op]
    model = schema.ModelT()
    model.version, model.subgraphs, model.operatorCodes = 3, [sg], [code]
    model.buffers = [schema.BufferT()]
    model.description = "harness two-input test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_model(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def running_emulator(name: str = "sim", *, baud: int = 921600, arena: int = 64 * 1024,
                     extra: tuple[str, ...] = ()) -> Iterator[EmulatedMcu]:
    sim = EmulatedMcu(name, baud=baud, arena=arena, extra_args=extra)
    try:
        yield sim
    finally:
        sim.stop()


def serial_target(port: str, *, baud: int = 921600, timeout_s: float = 1.0, name: str = "board") -> Target:
    return Target(name=name, kind="serial", options=SerialOptions(port=port, baud=baud, command_timeout_s=timeout_s))


class LineProxy:
    """Forwards bytes between the host's pty and the device's tty, through fault functions.

    ``to_device`` / ``to_host`` may be replaced at any time; ``host_port`` is what the host opens.
    """

    def __init__(self, device_port: str) -> None:
        self.dev = os.open(device_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.dev)
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.host_port = os.ttyname(self.slave)
        self.to_device: Fault = lambda b: b
        self.to_host: Fault = lambda b: b
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True, name="line-proxy")
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master, self.dev], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                if fd == self.master:
                    self._write(self.dev, self.to_device(data))
                else:
                    self._write(self.master, self.to_host(data))

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                select.select([], [fd], [], 0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self.dev, self.master, self.slave):
            os.close(fd)


def noisy(rate: float, seed: int = 1) -> Fault:
    """Each chunk: with probability ``rate``, one byte dropped, duplicated, flipped or noise added."""
    rnd = random.Random(seed)

    def fault(data: bytes) -> bytes:
        out = bytearray(data)
        if out and rnd.random() < rate:
            pos = rnd.randrange(len(out))
            kind = rnd.choice(("drop", "dup", "flip", "noise"))
            if kind == "drop":
                del out[pos]
            elif kind == "dup":
                out.insert(pos, out[pos])
            elif kind == "flip":
                out[pos] ^= 1 << rnd.randrange(8)
            else:
                out[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 8)))
        return bytes(out)

    return fault


def wrong_baud(data: bytes) -> bytes:
    """What a receiver at the wrong baud rate makes of a byte stream: framing garbage."""
    return bytes((b * 7 + 0x35) & 0xFF for b in data[: max(1, len(data) // 2)])


def stub_like_model() -> bytes:
    """A real model with host-c-stub's tensor layout, byte for byte in GET_TENSOR: int8 [1, 64]
    ``stub_input`` (scale 1/128) in, int32 [1, 4] ``stub_output`` out, two ops (STRIDED_SLICE of
    the first 4 values, CAST to int32). The emulator runs it with TFLite Micro; the C firmware's
    stub never interprets it. So the two devices answer every request alike but for the values
    computed: the emulator's output is the first 4 inputs, the stub's its fixed workload."""
    buffers = [schema.BufferT()]
    buf, tensor = partial(_buffer, buffers), _tensor

    sg = schema.SubGraphT()
    sg.tensors = [tensor("stub_input", [1, 64], schema.TensorType.INT8, 0, 1 / 128),
                  tensor("begin", [2], schema.TensorType.INT32, buf(np.array([0, 0], np.int32))),
                  tensor("end", [2], schema.TensorType.INT32, buf(np.array([1, 4], np.int32))),
                  tensor("strides", [2], schema.TensorType.INT32, buf(np.array([1, 1], np.int32))),
                  tensor("sliced", [1, 4], schema.TensorType.INT8, 0, 1 / 128),
                  tensor("stub_output", [1, 4], schema.TensorType.INT32)]
    sg.inputs, sg.outputs = [0], [5]
    ops, codes = [], []
    for k, (builtin, options_type, options, ins, outs) in enumerate([
            (schema.BuiltinOperator.STRIDED_SLICE, schema.BuiltinOptions.StridedSliceOptions,
             schema.StridedSliceOptionsT(), [0, 1, 2, 3], [4]),
            (schema.BuiltinOperator.CAST, schema.BuiltinOptions.CastOptions, schema.CastOptionsT(), [4], [5])]):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = k, ins, outs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        ops.append(op)
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
    sg.operators = ops
    model = schema.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [sg], codes, buffers
    model.description = "harness stub-shaped test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class Reframer:
    """A LineProxy fault that works on whole frames: each intact frame is passed to ``edit`` (which
    returns it changed or as is) and re-encoded with fresh CRCs; ``seen`` lists every frame."""

    def __init__(self, edit: Callable[[sf.Frame], sf.Frame] = lambda f: f) -> None:
        self.edit = edit
        self.decoder = sf.Decoder()
        self.seen: list[sf.Frame] = []

    def __call__(self, data: bytes) -> bytes:
        out = b""
        for event in self.decoder.feed(data):
            assert isinstance(event, sf.Frame), event
            self.seen.append(event)
            frame = self.edit(event)
            out += sf.encode(frame.type, frame.seq, frame.payload)
        return out


@contextlib.contextmanager
def old_firmware(flag: int) -> Iterator[tuple[McuDriver, Reframer]]:
    """An McuDriver talking to an emulator whose HELLO_OK lacks ``flag`` (firmware older than a
    request), and the Reframer that saw every frame the host sent it."""
    def clear(frame: sf.Frame) -> sf.Frame:
        if frame.type != sf.reply_type(sf.T.HELLO):
            return frame
        info = sf.unpack_info(frame.payload)
        info["flags"] &= ~flag
        return frame._replace(payload=sf.pack_info(info))

    with running_emulator("old") as sim:
        proxy = LineProxy(sim.port)
        sent = Reframer()
        proxy.to_device, proxy.to_host = sent, Reframer(clear)
        try:
            driver = McuDriver(serial_target(proxy.host_port))
            try:
                yield driver, sent
            finally:
                driver.close()
        finally:
            proxy.close()
