"""The C firmware's protocol layer on the host: its C unit tests, then fw_host over a real pty.

fw_host is built with AddressSanitizer + UBSan, so any out-of-bounds access during these
conversations ends the process with a report, which fails the test at teardown. The host side is
the Python reference codec (device_agents/wire/serial_frames.py): passing here means the C code is
byte-compatible with it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from device_agents.wire import serial_frames as sf
from harness.lab.drivers import mcu
from tests.environment import have, require
from tests.firmwarekit import (
    FwHost,
    Link,
    build_firmware,
    real_model,
    sanitizer_env,
    sanitizer_report,
    sine_model,
    stub_eval_inputs,
    stub_output,
)

WORK = 2000  # MACs per stub Invoke: enough to be measurable, small enough to keep tests fast
MAX_MODEL = 512 * 1024


@pytest.fixture(scope="session")
def fw_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_firmware(tmp_path_factory.getbasetemp(), "test_proto", "test_proto_asan", "fw_host_asan")


@pytest.fixture()
def fw(fw_build: Path) -> Iterator[FwHost]:
    host = FwHost(fw_build / "fw_host_asan", "--work", str(WORK), "--max-model", str(MAX_MODEL))
    yield host
    err = host.stop()
    assert sanitizer_report(err) is None, err


@pytest.fixture()
def link(fw: FwHost) -> Iterator[Link]:
    lk = Link(fw.port)
    yield lk
    lk.close()


@pytest.mark.parametrize("binary", ["test_proto", "test_proto_asan"])
def test_c_unit_tests(fw_build: Path, binary: str) -> None:
    proc = subprocess.run([str(fw_build / binary)], capture_output=True, text=True, timeout=60,
                          env=sanitizer_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks passed" in proc.stdout and sanitizer_report(proc.stderr) is None


def test_hello_reports_an_honest_stub(link: Link) -> None:
    info = link.hello(4096)
    assert info["protocol_version"] == 1
    assert info["board"] == "host-c-stub" and info["tflm_version"] == "none (stub)"
    assert info["flags"] & sf.FLAG_EMULATED and info["flags"] & sf.FLAG_PROFILER
    assert not info["flags"] & sf.FLAG_BUILTIN
    assert info["timer_hz"] == 1_000_000_000 and info["timer_resolution_ns"] >= 1
    assert info["max_model_bytes"] == MAX_MODEL
    assert info["max_batch"] == sf.max_batch_rows(min(4096, info["max_payload"]))
    # The reply limit follows the host: with 64 bytes, max_batch shrinks to what 64 bytes carry.
    assert link.hello(64)["max_batch"] == sf.max_batch_rows(64)
    assert link.ok(sf.T.PING, b"\xa5\x5a" * 20) == b"\xa5\x5a" * 20


def _spec_hello_strings(names: list[str], limit: int) -> list[bytes]:
    """SERIAL_PROTOCOL.md 3.1, written out independently of the C code: each string cut to 255
    bytes, then tflm_version, cpu, board give way (from their end, only as much as still needed,
    a split character dropped whole) until 28 fixed bytes + 3 length bytes + strings fit."""

    def cut(raw: bytes, limit_: int) -> bytes:
        return raw[:max(0, limit_)].decode("utf-8", "ignore").encode("utf-8")

    raw = [cut(n.encode("utf-8"), 255) for n in names]
    for i in (2, 1, 0):
        excess = sum(map(len, raw)) + 31 - limit
        if excess <= 0:
            break
        raw[i] = cut(raw[i], len(raw[i]) - excess)
    return raw


def test_long_names_are_cut_to_fit_hello_never_fails(fw_build: Path) -> None:
    # Multi-byte characters sit at the cuts: 2-, 3- and 4-byte UTF-8, and each name is over 255
    # bytes, so the 255-byte cut is exercised too.
    names = ["Nano 33 BLE " + "\u00e9\u20ac\U0001f600" * 40, "Cortex-M4F " + "\u20ac" * 100,
             "tflm " + "\U0001f600\u00e9" * 60]
    host = FwHost(fw_build / "fw_host_asan", "--board", names[0], "--cpu", names[1], "--tflm-version", names[2])
    link = Link(host.port)
    try:
        for limit in (64, 65, 66, 67, 70, 97, 100, 128, 200, 300, 400, 555, 556, 557, 800, 8192):
            reply = link.request(sf.T.HELLO, struct.pack("<H", limit))
            assert reply.type == sf.reply_type(sf.T.HELLO), sf.unpack_error(reply.payload)
            assert len(reply.payload) <= limit
            got, at = [], 28
            for _ in range(3):
                n = reply.payload[at]
                got.append(reply.payload[at + 1:at + 1 + n])
                at += 1 + n
            assert at == len(reply.payload)
            for raw in got:
                raw.decode("utf-8")  # strict: a split character would raise here
            assert got == _spec_hello_strings(names, limit), limit
        # Nothing is cut once everything fits (3 x 255 bytes at most, plus 31).
        assert [len(g) for g in got] == [len(_spec_hello_strings(names, 8192)[i]) for i in range(3)]
        assert sum(len(g) for g in got) > 700
        # ERROR text at the smallest limit fits and stays valid UTF-8.
        link.hello(64)
        e = link.request(sf.T.PING, bytes(65))
        assert e.type == sf.T.ERROR and len(e.payload) <= 64
        assert sf.unpack_error(e.payload)["detail"] == 64
        e.payload[8:].decode("utf-8")
    finally:
        link.close()
        err = host.stop()
    assert sanitizer_report(err) is None, err


def test_upload_real_model_in_chunks_then_run_with_and_without_invoke(link: Link) -> None:
    model = real_model()
    link.hello()
    info = link.upload(model, chunk=1000)
    assert info["sha256"] == hashlib.sha256(model).digest() and info["model_bytes"] == len(model)
    assert info["n_inputs"] == 1 and info["n_outputs"] == 1 and info["n_ops"] == 2
    assert 0 < info["arena_used_bytes"] <= info["arena_bytes"]
    tin = sf.unpack_tensor(link.ok(sf.T.GET_TENSOR, b"\x00\x00"))
    tout = sf.unpack_tensor(link.ok(sf.T.GET_TENSOR, b"\x01\x00"))
    assert (tin["dtype"], tin["shape"], tin["bytes"], tin["name"]) == (9, [1, 64], 64, "stub_input")
    assert (tout["dtype"], tout["shape"], tout["bytes"], tout["name"]) == (2, [1, 4], 16, "stub_output")

    # RANDOM_INPUT fills exactly what the reference xorshift32 gives: the stub's output proves it.
    link.ok(sf.T.RANDOM_INPUT, struct.pack("<I", 1234))
    blocks = []
    for mode in (sf.MODE_WITH, sf.MODE_WITHOUT, sf.MODE_WITHOUT, sf.MODE_WITH):  # ABBA
        got_mode, rows = sf.unpack_samples(link.ok(sf.T.RUN, struct.pack("<BBH", mode, 0, 50)))
        assert got_mode == mode and len(rows) == 50
        blocks.append((mode, rows))
    for mode, rows in blocks:
        for loop, set_in, invoke, get_out in rows:
            assert loop >= set_in + invoke + get_out
            assert (invoke > 0) if mode == sf.MODE_WITH else (invoke == 0)
    raw = link.ok(sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 0, 100))
    total, offset = struct.unpack_from("<II", raw)
    values = list(struct.unpack("<4i", raw[8:]))
    seeded = bytes(v & 0xFF for v in sf.random_values(1234, [("int8", 64)])[0])
    assert (total, offset) == (16, 0) and values == stub_output(seeded, WORK)

    # SET_INPUT in two pieces, then the output follows the new input.
    data = bytes(range(64))
    assert struct.unpack("<I", link.ok(sf.T.SET_INPUT, struct.pack("<BI", 0, 0) + data[:40]))[0] == 40
    assert struct.unpack("<I", link.ok(sf.T.SET_INPUT, struct.pack("<BI", 0, 40) + data[40:]))[0] == 64
    link.ok(sf.T.RUN, struct.pack("<BBH", sf.MODE_WITH, 0, 1))
    raw = link.ok(sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 4, 8))  # a window: offset 4, 8 bytes
    assert struct.unpack("<II2i", raw)[2:] == tuple(stub_output(data, WORK)[1:3])

    # Per-op profile of the last Invoke, paged when the host accepts only 64 bytes per reply.
    link.hello(64)
    prof = link.ok(sf.T.GET_PROFILE, struct.pack("<H", 0))
    n_ops, first, count = struct.unpack_from("<HHB", prof)
    assert (n_ops, first, count) == (2, 0, 2)
    assert b"STUB_MAC" in prof and b"STUB_CLAMP" in prof


def test_eval_is_one_untimed_invoke_whose_reply_carries_the_outputs(link: Link) -> None:
    """SERIAL_PROTOCOL.md 3.11 in the C code: EVAL on the staged input, its outputs in the reply,
    GET_OUTPUT describing it afterwards, a retransmission answered from memory."""
    info = link.hello()
    assert info["flags"] & sf.FLAG_EVAL
    e = link.error(sf.T.EVAL)
    assert e["name"] == "BAD_STATE" and e["request_type"] == sf.T.EVAL
    link.upload(sine_model())
    e = link.error(sf.T.EVAL, b"\x00")
    assert e["name"] == "BAD_LENGTH" and e["detail"] == 0
    for seed in (1, 2):
        data = bytes(v & 0xFF for v in sf.random_values(seed, [("int8", 64)])[0])
        link.ok(sf.T.SET_INPUT, struct.pack("<BI", 0, 0) + data)
        total, outputs = sf.unpack_eval(link.ok(sf.T.EVAL))
        assert total == 16 and list(struct.unpack("<4i", outputs)) == stub_output(data, WORK)
    raw = link.ok(sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 0, 100))
    assert raw[8:] == outputs  # the EVAL was the last Invoke
    seq = link.next_seq()
    frame = sf.encode(sf.T.EVAL, seq, b"")
    link.write(frame)
    first = link.frame(seq)
    link.write(frame)  # the reply was "lost": the same bytes again, no second Invoke
    assert link.frame(seq) == first


def test_the_harness_serial_driver_evaluates_on_the_c_firmware(fw: FwHost, tmp_path: Path) -> None:
    """McuDriver.evaluate after a benchmark over the same link: the model stays loaded (no second
    upload), every sample goes through SET_INPUT + EVAL, and the outputs are the stub's."""
    from harness.config import SerialOptions, Target
    from harness.models.files import sha256
    from harness.plan import Job, Plan

    model = tmp_path / "sine.tflite"
    model.write_bytes(sine_model())
    samples = np.random.default_rng(4).integers(-128, 128, size=(5, 64), dtype=np.int8)
    job = Job(target="fw-host", model=model, model_sha256=sha256(model), threads=1,
              plan=Plan(warmup=1, warmup_time_s=0.0, iterations=4, blocks=1, settle=0),
              eval=stub_eval_inputs(tmp_path, samples))
    driver = mcu.McuDriver(Target(name="fw-host", kind="serial",
                                  options=SerialOptions(port=fw.port, baud=115200, command_timeout_s=2.0)))
    messages: list[dict] = []
    try:
        driver.benchmark(job, messages.append, threading.Event())
        start = len(messages)
        driver.evaluate(job, messages.append, threading.Event())
    finally:
        driver.close()
    kinds = [m["type"] for m in messages[start:]]
    assert kinds[0] == "hello" and messages[start]["mode"] == "eval" and kinds[-1] == "eval_summary"
    assert "push" not in kinds and "error" not in kinds
    chunks = [m for m in messages[start:] if m["type"] == "eval"]
    values = [v for m in chunks for v in m["outputs"][0]]
    assert values == [v for s in samples for v in stub_output(s.tobytes(), WORK)]
    assert messages[-1]["samples"] == 5


def test_refusals_name_the_problem(fw_build: Path) -> None:
    host = FwHost(fw_build / "fw_host_asan", "--max-model", "4096", "--max-payload", "64")
    link = Link(host.port)
    try:
        link.hello()
        model = real_model()
        e = link.error(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
        assert e["name"] == "MODEL_TOO_LARGE" and e["detail"] == 4096 and str(len(model)) in e["message"]
        # A frame longer than max_payload is refused from its header alone.
        e = link.error(sf.T.PING, b"x" * 65)
        assert e["name"] == "FRAME_TOO_LONG" and e["detail"] == 64
        e = sf.unpack_error(link.request(sf.T.RUN, b"").payload)
        assert e["name"] == "BAD_LENGTH" and e["detail"] == 4
        assert link.error(sf.T.RUN, struct.pack("<BBH", 0, 0, 1))["name"] == "BAD_STATE"
        assert link.error(0x42)["name"] == "UNKNOWN_TYPE"
        assert link.error(sf.T.USE_BUILTIN)["name"] == "UNSUPPORTED"
        # Wrong hash: UPLOAD_END refuses, nothing is loaded.
        blob = b"\x00\x00\x00\x00TFL3" + bytes(100)
        link.ok(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(blob)) + hashlib.sha256(b"other").digest())
        for off in range(0, len(blob), 60):
            link.ok(sf.T.UPLOAD_CHUNK, struct.pack("<I", off) + blob[off:off + 60])
        assert link.error(sf.T.UPLOAD_END)["name"] == "HASH_MISMATCH"
        assert link.error(sf.T.GET_TENSOR, b"\x00\x00")["name"] == "BAD_STATE"
        # Not a TFLite flatbuffer: BAD_MODEL, with the reason.
        link.ok(sf.T.UPLOAD_BEGIN, struct.pack("<I", 8) + hashlib.sha256(b"notmodel").digest())
        link.ok(sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + b"notmodel")
        e = link.error(sf.T.UPLOAD_END)
        assert e["name"] == "BAD_MODEL" and "TFL3" in e["message"]
        # A version-2 header gets BAD_VERSION with the device's version as detail.
        link.write(sf.encode(sf.T.PING, 77, b"", version=2))
        reply = link.frame(77)
        e = sf.unpack_error(reply.payload)
        assert e["name"] == "BAD_VERSION" and e["detail"] == 1
    finally:
        link.close()
        err = host.stop()
    assert sanitizer_report(err) is None, err


def test_noise_drops_and_duplicates_are_resynchronised(link: Link) -> None:
    link.hello()
    # Line noise, including sync look-alikes, before a request: only the noise is lost.
    link.write(os.urandom(300) + b"\xa5\x5a\xa5" + b"\xa5")
    assert link.ok(sf.T.PING, b"after noise") == b"after noise"

    # A dropped byte: the device gets nothing intact, stays silent, and after its 100 ms
    # inter-byte timeout it rescans; the host's retransmission then gets the reply.
    seq = link.next_seq()
    frame = sf.encode(sf.T.PING, seq, b"dropped byte")
    link.write(frame[:20] + frame[21:])
    assert not [e for e in link.events(0.3) if isinstance(e, sf.Frame) and e.seq == seq]
    link.write(frame)
    assert link.frame(seq).payload == b"dropped byte"

    # A duplicated byte inside a frame, glued to a good frame: the bad one is dropped, the good
    # one behind it survives (it is rescanned, never swallowed).
    bad = sf.encode(sf.T.PING, link.next_seq(), b"duplicated")
    bad = bad[:12] + bad[11:]
    good_seq = link.next_seq()
    link.write(bad + sf.encode(sf.T.PING, good_seq, b"good"))
    assert link.frame(good_seq).payload == b"good"

    # A flipped bit in the header CRC region.
    flip = bytearray(sf.encode(sf.T.PING, link.next_seq(), b"flipped"))
    flip[5] ^= 0x10
    link.write(bytes(flip))
    assert link.ok(sf.T.PING, b"still here") == b"still here"


def test_retransmissions_are_idempotent(link: Link) -> None:
    link.hello()
    model = b"\x00\x00\x00\x00TFL3" + bytes(range(256)) * 4
    link.ok(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
    seq = link.next_seq()
    chunk = sf.encode(sf.T.UPLOAD_CHUNK, seq, struct.pack("<I", 0) + model[:500])
    link.write(chunk)
    first = link.frame(seq)
    link.write(chunk)  # the reply was "lost": same SEQ, same bytes
    again = link.frame(seq)
    assert first == again and struct.unpack("<I", first.payload)[0] == 500  # not appended twice
    link.ok(sf.T.UPLOAD_CHUNK, struct.pack("<I", 500) + model[500:])
    link.ok(sf.T.UPLOAD_END)
    seq = link.next_seq()
    run = sf.encode(sf.T.RUN, seq, struct.pack("<BBH", 0, 0, 20))
    link.write(run)
    a = link.frame(seq)
    link.write(run)
    b = link.frame(seq)
    assert a.payload == b.payload  # the same samples, not a second measurement


def test_reset_mid_upload_loses_the_upload_and_says_so(fw: FwHost, link: Link) -> None:
    link.hello()
    model = real_model()
    link.ok(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
    link.ok(sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + model[:1000])
    link.pending.clear()  # the BOOT of power-up, set aside while waiting for replies
    fw.reset()
    boot = link.frame(0)
    assert boot.type == sf.T.BOOT and struct.unpack("<H", boot.payload)[0] == 1
    e = link.error(sf.T.UPLOAD_CHUNK, struct.pack("<I", 1000) + model[1000:2000])
    assert e["name"] == "BAD_STATE" and "reset" in e["message"]
    # The host starts over and the upload completes.
    link.hello()
    assert link.upload(model)["sha256"] == hashlib.sha256(model).digest()


def test_a_frame_cut_off_mid_way_does_not_hold_the_parser(link: Link) -> None:
    """The host stops mid-frame (e.g. it was killed): after 100 ms the device serves again."""
    link.hello()
    link.write(sf.encode(sf.T.PING, link.next_seq(), bytes(2000))[:1500])
    time.sleep(0.25)
    assert link.ok(sf.T.PING, b"next host") == b"next host"


def test_the_harness_serial_driver_benchmarks_the_c_firmware(fw: FwHost, tmp_path: Path) -> None:
    """End to end: harness's McuDriver (the real host side) against the C protocol layer."""
    from harness.config import SerialOptions, Target
    from harness.models.files import sha256
    from harness.plan import Job, Plan

    model = tmp_path / "sine.tflite"
    model.write_bytes(sine_model())
    plan = Plan(warmup=2, warmup_time_s=0.0, iterations=20, blocks=2, settle=1, seed=3)
    driver = mcu.McuDriver(Target(name="fw-host", kind="serial",
                                  options=SerialOptions(port=fw.port, baud=115200, command_timeout_s=2.0)))
    messages: list[dict] = []
    try:
        driver.benchmark(Job(target="fw-host", model=model, model_sha256=sha256(model), threads=1, plan=plan),
                         messages.append, threading.Event())
    finally:
        driver.close()
    kinds = [m["type"] for m in messages]
    assert "error" not in kinds, messages[-1]
    hello = messages[0]
    assert hello["emulated"] is True and hello["board"]["model"] == "host-c-stub"
    samples = [m for m in messages if m["type"] == "samples"]
    assert sum(len(s["loop_ns"]) for s in samples) == 40
    assert "op_profile" in kinds  # the stub has a profiler: GET_PROFILE went through the driver


def test_fw_host_serves_an_existing_tty_and_plain_pipes(fw_build: Path, tmp_path: Path) -> None:
    """--tty PATH (one end of a socat pty pair, like a USB serial adapter) and stdin/stdout."""
    # Pipes: the same protocol over stdin/stdout, no tty at all.
    proc = subprocess.run([str(fw_build / "fw_host_asan")], input=sf.encode(sf.T.HELLO, 1, struct.pack("<H", 512)),
                          capture_output=True, timeout=30, env=sanitizer_env())
    events = sf.Decoder().feed(proc.stdout)
    assert [(e.type, e.seq) for e in events] == [(sf.T.BOOT, 0), (sf.reply_type(sf.T.HELLO), 1)]
    assert proc.returncode == 0 and sanitizer_report(proc.stderr.decode()) is None

    require(have("socat"), "socat is needed for the tty half (apt-get install socat)")
    a, b = tmp_path / "dev-a", tmp_path / "dev-b"
    socat = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                             stderr=subprocess.PIPE, text=True)
    host = None
    try:
        assert socat.stderr is not None
        while "starting data transfer loop" not in socat.stderr.readline():
            assert socat.poll() is None, "socat exited"
        host = subprocess.Popen([str(fw_build / "fw_host_asan"), "--tty", str(a)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sanitizer_env())
        link = Link(str(b))
        try:
            assert link.hello()["board"] == "host-c-stub"
            assert link.ok(sf.T.PING, b"over socat") == b"over socat"
        finally:
            link.close()
    finally:
        if host is not None:
            host.terminate()
            _, err = host.communicate(timeout=10)
            assert sanitizer_report(err.decode()) is None, err.decode()
        socat.terminate()
        socat.wait(10)
        if socat.stderr:
            socat.stderr.close()
