"""Fuzzing the C parser and command dispatch under AddressSanitizer + UBSan, driven by hypothesis.

One sanitized ``fuzz_driver_asan --serve`` process runs every example (inputs framed as u32
length + bytes, one 'K' back per input), so the sanitizer start-up is paid once. The driver
aborts on any out-of-bounds access, undefined behaviour, or a reply that is not exactly one
intact frame within the reply limit; the test then fails with the sanitizer's report and the input.

Three kinds of input: raw byte streams; mutations (flip, drop, duplicate, insert, truncate) of
sequences of valid frames built with the Python reference codec, which reach command handling;
and the driver's structured grammar (first byte odd, see fuzz_driver.c), which also uploads
models with correct hashes so RUN, EVAL, STREAM, GET_STREAM, GET_OUTPUT and GET_PROFILE are fuzzed with
a model loaded (STREAM with schedules of every shape: the driver's clock moves 2^20 + 1 ticks a read,
so even the longest batch ends within a few thousand reads).
The long run (millions of inputs, libFuzzer) is device_agents/firmware/fuzz.sh.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents.wire import serial_frames as sf
from tests.firmwarekit import build_firmware, sanitizer_env

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Driver:
    """The sanitized fuzz driver in --serve mode, restarted after it dies."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the driver, closed in stop)
        self.inputs = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self.err.seek(0)
        self.err.truncate()
        return subprocess.Popen([str(self.binary), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=self.err, env=sanitizer_env())

    def run(self, data: bytes) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(struct.pack("<I", len(data)) + data)
            self.proc.stdin.flush()
            ack = self.proc.stdout.read(1)
        except BrokenPipeError:
            ack = b""
        if ack != b"K":
            status = self.proc.wait(10)
            self.err.seek(0)
            report = self.err.read().decode("utf-8", "replace")[-6000:]
            self.proc = None
            raise AssertionError(f"fuzz driver died (status {status}) on input "
                                 f"{data[:200].hex()}... ({len(data)} bytes):\n{report}")
        self.inputs += 1

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()  # EOF ends --serve cleanly
            self.proc.wait(10)
            if self.proc.stdout:
                self.proc.stdout.close()
        self.err.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    build = build_firmware(tmp_path_factory.getbasetemp(), "fuzz_driver_asan")
    d = Driver(build / "fuzz_driver_asan")
    yield d
    d.stop()


REQUEST_TYPES = [sf.T.HELLO, sf.T.UPLOAD_BEGIN, sf.T.UPLOAD_CHUNK, sf.T.UPLOAD_END, sf.T.USE_BUILTIN,
                 sf.T.GET_TENSOR, sf.T.SET_INPUT, sf.T.RANDOM_INPUT, sf.T.RUN, sf.T.GET_OUTPUT,
                 sf.T.GET_PROFILE, sf.T.PING, sf.T.EVAL, sf.T.STREAM, sf.T.GET_STREAM]
frame_items = st.tuples(st.one_of(st.sampled_from(REQUEST_TYPES), st.integers(0, 255)), st.integers(0, 255),
                        st.one_of(st.binary(max_size=12), st.binary(max_size=300)))
mutation = st.tuples(st.sampled_from(["flip", "drop", "dup", "insert", "truncate", "none"]),
                     st.integers(0, 1 << 16), st.integers(0, 255))


def mutate(wire: bytes, muts: list[tuple[str, int, int]]) -> bytes:
    raw = bytearray(wire)
    for kind, pos, value in muts:
        if not raw:
            break
        i = pos % len(raw)
        if kind == "flip":
            raw[i] ^= 1 << (value % 8)
        elif kind == "drop":
            del raw[i]
        elif kind == "dup":
            raw.insert(i, raw[i])
        elif kind == "insert":
            raw.insert(i, value)
        elif kind == "truncate":
            del raw[i:]
    return bytes(raw)


@SETTINGS
@given(st.binary(max_size=3000))
def test_raw_byte_streams(driver: Driver, data: bytes) -> None:
    driver.run(b"\x00" + data)


@settings(SETTINGS, max_examples=500)  # building frame lists in Python is the slow part
@given(st.lists(frame_items, max_size=12), st.lists(mutation, max_size=6), st.integers(64, 8192))
def test_mutated_valid_frames(driver: Driver, items: list, muts: list, host_max: int) -> None:
    # A HELLO first (sometimes with a small reply limit) so replies are checked against it.
    wire = sf.encode(sf.T.HELLO, 200, struct.pack("<H", host_max))
    wire += b"".join(sf.encode(t, s, p) for t, s, p in items)
    driver.run(b"\x00" + mutate(wire, muts))


@SETTINGS
@given(st.integers(0, 127), st.binary(min_size=1, max_size=2000))
def test_structured_sessions(driver: Driver, first: int, data: bytes) -> None:
    driver.run(bytes([first * 2 + 1]) + data)


def test_structured_session_reaches_a_loaded_model(driver: Driver) -> None:
    """A hand-made session through the structured grammar: HELLO, upload, RANDOM_INPUT, RUN,
    GET_OUTPUT, GET_PROFILE, EVAL (at a 64-byte limit too), then truncated and over-long frames.
    It must simply survive."""
    model = b"\x00" * 64
    ops = bytes([1, 16])  # structured, max_payload 64 + 16 * 16 = 320
    ops += bytes([3, sf.T.HELLO, 1, 2, 0]) + struct.pack("<H", 4096)
    ops += bytes([14]) + struct.pack("<H", len(model)) + model  # op 6 | 8: forced "TFL3"
    ops += bytes([3, sf.T.RANDOM_INPUT, 2, 4, 0]) + struct.pack("<I", 7)
    ops += bytes([3, sf.T.RUN, 3, 4, 0]) + struct.pack("<BBH", 0, 0, 19)
    ops += bytes([3, sf.T.GET_OUTPUT, 4, 7, 0]) + struct.pack("<BIH", 0, 0, 0xFFFF)
    ops += bytes([3, sf.T.GET_PROFILE, 5, 2, 0]) + struct.pack("<H", 0)
    ops += bytes([3, sf.T.EVAL, 8, 0, 0]) + bytes([3, sf.T.EVAL, 9, 1, 0, 0])  # EVAL, and one with a payload
    ops += bytes([3, sf.T.HELLO, 10, 2, 0]) + struct.pack("<H", 64) + bytes([3, sf.T.EVAL, 11, 0, 0])
    ops += bytes([7, sf.T.RUN, 6, 4, 0]) + struct.pack("<BBH", 0, 0, 1) + bytes([5, 0, 1])
    ops += bytes([3, sf.T.PING, 7]) + struct.pack("<H", 370) + bytes(370)  # longer than 320
    ops += bytes([4, 5])
    driver.run(ops)
    assert driver.inputs >= 1


def _op_frame(type_: int, seq: int, payload: bytes) -> bytes:
    """The structured grammar's op 3: one valid frame."""
    return bytes([3, type_, seq]) + struct.pack("<H", len(payload)) + payload


stream_fields = st.tuples(st.integers(0, 2), st.integers(0, 2), st.one_of(st.integers(0, 300), st.just(256)),
                          st.one_of(st.integers(0, 5000), st.integers(0, 2**32 - 1)),
                          st.one_of(st.integers(0, 5000), st.integers(0, 2**32 - 1)),
                          st.one_of(st.just(0), st.integers(0, 2**32 - 1)), st.integers(0, 2**32 - 1),
                          st.one_of(st.just(0), st.integers(0, 2**32 - 1)))


@settings(SETTINGS, max_examples=300)
@given(st.lists(st.one_of(stream_fields.map(lambda f: (sf.T.STREAM, struct.pack("<BBHIIIII", *f))),
                          st.integers(0, 300).map(lambda n: (sf.T.GET_STREAM, struct.pack("<H", n))),
                          st.sampled_from([64, 100, 4096]).map(lambda n: (sf.T.HELLO, struct.pack("<H", n))),
                          st.just((sf.T.RUN, struct.pack("<BBH", 0, 0, 1))),
                          st.just((sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 0, 0xFFFF)))),
                min_size=1, max_size=8),
       st.booleans())
def test_streams_with_a_loaded_model(driver: Driver, requests: list, reset: bool) -> None:
    """STREAM and GET_STREAM of every shape (fields in and out of range, batches ended by the
    2^31 limit, pages at small limits) on a device with a model, a reset sometimes between."""
    model = b"\x00" * 64
    ops = bytes([1, 254]) + _op_frame(sf.T.HELLO, 1, struct.pack("<H", 4096))
    ops += bytes([14]) + struct.pack("<H", len(model)) + model
    for k, (type_, payload) in enumerate(requests):
        ops += _op_frame(type_, 2 + k, payload)
        if reset and k == len(requests) // 2:
            ops += bytes([5])
    driver.run(ops)


class EventsDriver:
    """``fuzz_driver --events MAX_PAYLOAD``: the C parser's events, one input at a time."""

    def __init__(self, binary: Path, max_payload: int) -> None:
        self.proc = subprocess.Popen([str(binary), "--events", str(max_payload)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=sanitizer_env())

    def events(self, data: bytes) -> list[tuple]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        out = []
        while (line := self.proc.stdout.readline().decode()) != "END\n":
            assert line, "the C parser process died"
            kind, *nums = line.split()
            out.append((kind, *map(int, nums)))
        return out

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


DIFF_MAX_PAYLOAD = 300


@pytest.fixture(scope="module")
def c_parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventsDriver]:
    build = build_firmware(tmp_path_factory.getbasetemp(), "fuzz_driver_asan")
    d = EventsDriver(build / "fuzz_driver_asan", DIFF_MAX_PAYLOAD)
    yield d
    d.stop()


def python_events(data: bytes, max_payload: int) -> list[tuple]:
    """The reference decoder on the same bytes, flushed the way a device's idle timeout does."""
    dec = sf.Decoder(max_payload=max_payload)
    got = dec.feed(data)
    while dec.pending():
        dec.drop_partial()
        got += dec.feed(b"")
    out: list[tuple] = []
    for ev in got:
        if isinstance(ev, sf.Frame):
            out.append(("F", ev.type, ev.seq, len(ev.payload), ev.crc))
        else:
            out.append(("V" if ev.reason == "version" else "L", ev.type, ev.seq, ev.length))
    return out


@settings(SETTINGS, max_examples=500)
@given(st.lists(st.one_of(frame_items.map(lambda f: sf.encode(*f)),
                          st.tuples(frame_items, st.integers(2, 3)).map(lambda fv: sf.encode(*fv[0], version=fv[1])),
                          st.binary(min_size=DIFF_MAX_PAYLOAD + 1, max_size=DIFF_MAX_PAYLOAD + 50).map(
                              lambda p: sf.encode(sf.T.PING, 9, p)),
                          st.binary(max_size=40),
                          st.just(b"\xa5"), st.just(b"\xa5\x5a")), max_size=10),
       st.lists(mutation, max_size=4))
def test_c_parser_matches_the_python_reference(c_parser: EventsDriver, pieces: list[bytes], muts: list) -> None:
    """Differential: on any stream (valid, wrong-version and over-long frames, noise, sync
    look-alikes, then flips, drops, duplicates, inserts, truncation) the C parser fed byte by
    byte yields exactly the events of serial_frames.Decoder."""
    data = mutate(b"".join(pieces), muts)
    assert c_parser.events(data) == python_events(data, DIFF_MAX_PAYLOAD)
