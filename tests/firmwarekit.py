"""Shared pieces of the firmware tests: building the C code, running fw_host on a
real pty, and a small host-side client built on the Python reference codec.

- ``build_firmware``: ``make`` in device_agents/firmware with BUILD under pytest's base temp dir,
  so a session builds once and never writes into the source tree.
- ``FwHost``: fw_host (the portable protocol layer + the host-c-stub backend) serving a pty it
  creates; SIGUSR1 is its reset button. Its stderr is kept so sanitizer reports fail the test.
- ``Link``: requests and replies over a pyserial port with ``device_agents.wire.serial_frames``, the
  codec the C code must be byte-compatible with.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import serial

from device_agents.wire import serial_frames as sf
from tests.environment import have, require

if TYPE_CHECKING:
    import numpy as np

    from harness.plan import EvalInputs

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "device_agents" / "firmware"
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehaviorSanitizer")


PHONY_TARGETS = ("all", "asan", "test", "libfuzzer", "qemu")


def build_firmware(base: Path, *targets: str) -> Path:
    """Builds ``targets`` (phony Makefile targets or binary names such as "fw_host_asan") into
    ``base``/firmware-build and returns that directory. make keeps it up to date incrementally."""
    require(have("make", "gcc"), "gcc and make are needed to build the firmware (apt-get install gcc make)")
    out = base / "firmware-build"
    goals = [t if t in PHONY_TARGETS else str(out / t) for t in targets]
    proc = subprocess.run(["make", "-s", "-j2", "-C", str(FIRMWARE), f"BUILD={out}", *goals],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"firmware build failed:\n{proc.stdout}\n{proc.stderr}")
    return out


def sanitizer_report(text: str) -> str | None:
    return text if any(mark in text for mark in SANITIZER_MARKS) else None


class FwHost:
    """fw_host on a pty it creates; stop() ends it and returns its stderr."""

    def __init__(self, binary: Path, *args: str) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (kept until stop() reads it)
        # --exit-on-stdin-eof: if this test process dies, fw_host goes with it, never an orphan.
        self.proc = subprocess.Popen([str(binary), "--pty", "--exit-on-stdin-eof", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     env=sanitizer_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"fw_host did not start: {self.stop()}")
        self.port = json.loads(line)["port"]

    def reset(self) -> None:
        """The reset button: fw_host drops all state and sends BOOT."""
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        self._err.seek(0)
        text = self._err.read().decode("utf-8", "replace")
        self._err.close()
        return text


class Link:
    """A host-side client: one request, one reply, by SEQ, with the reference codec."""

    def __init__(self, port: str, timeout: float = 5.0, retries: int = 0) -> None:
        # A device path or any pyserial URL (socket:// for QEMU's UART).
        self.ser = serial.serial_for_url(port, 115200, timeout=0.05)
        self.dec = sf.Decoder()
        self.timeout = timeout
        # Retransmissions of the identical frame (SERIAL_PROTOCOL.md section 2). 0 for fw_host on
        # a pty, where a lost reply is a bug; the QEMU link uses them as a real host does.
        self.retries = retries
        self.retransmitted = 0
        self.seq = 0
        self.pending: list[sf.Event] = []

    def close(self) -> None:
        self.ser.close()

    def next_seq(self) -> int:
        self.seq = self.seq % 255 + 1
        return self.seq

    def write(self, raw: bytes) -> None:
        self.ser.write(raw)
        self.ser.flush()

    def events(self, wait: float) -> list[sf.Event]:
        """Every event that arrives within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        got, self.pending = self.pending, []
        while time.monotonic() < deadline:
            data = self.ser.read(self.ser.in_waiting or 1)
            if data:
                got += self.dec.feed(data)
        return got

    def frame(self, match: object = None, timeout: float | None = None) -> sf.Frame:
        """The next intact frame (optionally with this SEQ); events before it are kept aside."""
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped: list[sf.Event] = []
        while time.monotonic() < deadline:
            while self.pending:
                ev = self.pending.pop(0)
                if isinstance(ev, sf.Frame) and (match is None or ev.seq == match):
                    self.pending = skipped + self.pending
                    return ev
                skipped.append(ev)
            data = self.ser.read(self.ser.in_waiting or 1)
            if data:
                self.pending += self.dec.feed(data)
        self.pending = skipped
        raise AssertionError(f"no reply with SEQ {match} within {timeout or self.timeout} s")

    def request(self, type_: int, payload: bytes = b"", seq: int | None = None) -> sf.Frame:
        seq = self.next_seq() if seq is None else seq
        raw = sf.encode(type_, seq, payload)
        for attempt in range(self.retries + 1):
            self.write(raw)
            try:
                return self.frame(seq)
            except AssertionError:
                if attempt == self.retries:
                    raise
                self.retransmitted += 1
        raise AssertionError("unreachable")

    def ok(self, type_: int, payload: bytes = b"") -> bytes:
        reply = self.request(type_, payload)
        if reply.type == sf.T.ERROR:
            raise AssertionError(f"request 0x{type_:02x} failed: {sf.unpack_error(reply.payload)}")
        assert reply.type == sf.reply_type(type_)
        return reply.payload

    def error(self, type_: int, payload: bytes = b"") -> dict:
        reply = self.request(type_, payload)
        assert reply.type == sf.T.ERROR, f"expected an ERROR for 0x{type_:02x}, got 0x{reply.type:02x}"
        return sf.unpack_error(reply.payload)

    def hello(self, host_max_payload: int = sf.MAX_PAYLOAD_V1) -> dict:
        return sf.unpack_info(self.ok(sf.T.HELLO, struct.pack("<H", host_max_payload)))

    def upload(self, model: bytes, chunk: int | None = None) -> dict:
        """UPLOAD_BEGIN / CHUNK... / END; returns MODEL_INFO."""
        import hashlib

        (max_chunk,) = struct.unpack("<I", self.ok(sf.T.UPLOAD_BEGIN,
                                                    struct.pack("<I", len(model)) + hashlib.sha256(model).digest()))
        step = min(chunk or max_chunk, max_chunk)
        received = 0
        while received < len(model):
            piece = model[received:received + step]
            (received,) = struct.unpack("<I", self.ok(sf.T.UPLOAD_CHUNK, struct.pack("<I", received) + piece))
        return sf.unpack_model_info(self.ok(sf.T.UPLOAD_END))


def sine_model() -> bytes:
    """The 3 KB sine model that ships with tflite-micro: a real .tflite small enough for any MCU."""
    import tflite_micro

    return (Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite").read_bytes()


def real_model() -> bytes:
    """A real .tflite: the committed example keyword-spotting CNN (99 KB)."""
    return (ROOT / "harness" / "example_models" / "ds_cnn_kws.tflite").read_bytes()


def stub_output(inputs: bytes, work: int) -> list[int]:
    """What host-c-stub's fixed workload computes from its int8 input (see stub_backend.c)."""
    vals = [b - 256 if b > 127 else b for b in inputs]
    acc = [0, 0, 0, 0]
    for k in range(work):
        acc[k & 3] += vals[k % 64] * (((k * 2654435761) & 0xFFFFFFFF) >> 25)
    return [max(-1000000, min(1000000, a)) for a in acc]


def sanitizer_env() -> dict[str, str]:
    """Environment for sanitized binaries: every report is fatal and lands on stderr."""
    env = dict(os.environ)
    # Leak checking needs ptrace, which containers often forbid; the protocol layer never
    # allocates anyway. Out-of-bounds and undefined behaviour stay fatal.
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:halt_on_error=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def stub_eval_inputs(directory: Path, samples: np.ndarray) -> EvalInputs:
    """Eval samples for host-c-stub's one int8 [1, 64] input ``stub_input`` (N x 64 int8), as
    harness.models.evalset would write them for a model with that input; no labels."""
    import numpy as np

    from harness.models import evalset
    from harness.plan import EvalInputs

    path = directory / "stub-eval.npz"
    evalset.write({"stub_input": np.asarray(samples, dtype=np.int8).reshape(-1, 1, 64)}, path)
    return EvalInputs(path=path, source="random", samples=len(samples), set_sha256="stub")
