"""The emulated MCU speaking serial protocol v1 on a real pty, with real TFLite Micro.

These tests talk to it frame by frame through harness's FramedLink, so they pin the device side
of SERIAL_PROTOCOL.md: what the firmware for real boards must do too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as LiteRT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents import serial_frames as sf
from harness.errors import AgentError, TransportError
from harness.transports.serial import DeviceReset, FramedLink, SerialLink
from tests.test_serial_support import fc_model, running_emulator

MODEL = fc_model(k=32, m=8)


def _link(port: str, baud: int = 921600) -> FramedLink:
    return FramedLink(SerialLink("sim", port, baud))


def _upload(link: FramedLink, model: bytes) -> dict:
    reply = link.request(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
    chunk = struct.unpack("<I", reply.payload)[0]
    offset = 0
    while offset < len(model):
        r = link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", offset) + model[offset:offset + chunk])
        offset = struct.unpack("<I", r.payload)[0]
    return sf.unpack_model_info(link.request(sf.T.UPLOAD_END, work_s=10).payload)


def test_hello_upload_run_and_outputs_match_litert(tmp_path: Path) -> None:
    with running_emulator(arena=32 * 1024) as sim:
        link = _link(sim.port)
        try:
            info = link.hello()
            assert info["flags"] & sf.FLAG_EMULATED and info["timer_hz"] == 10**9
            assert info["arena_bytes"] == 32 * 1024 and info["cpu"] == "host CPU (emulated MCU)"
            minfo = _upload(link, MODEL)
            assert minfo["sha256"] == hashlib.sha256(MODEL).digest()
            assert 0 < minfo["arena_used_bytes"] <= 32 * 1024
            assert (minfo["n_inputs"], minfo["n_outputs"], minfo["n_ops"]) == (1, 1, 1)
            t = sf.unpack_tensor(link.request(sf.T.GET_TENSOR, bytes([0, 0])).payload)
            assert t["shape"] == [1, 32] and t["dtype"] == 1 and t["bytes"] == 128
            link.request(sf.T.RANDOM_INPUT, struct.pack("<I", 42))
            for mode in (sf.MODE_WITH, sf.MODE_WITHOUT):
                got_mode, rows = sf.unpack_samples(link.request(sf.T.RUN, struct.pack("<BBH", mode, 0, 7)).payload)
                assert got_mode == mode and len(rows) == 7
                assert all(r[0] >= r[1] + r[2] + r[3] for r in rows)
                assert all((r[2] > 0) == (mode == sf.MODE_WITH) for r in rows)
            out = link.request(sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 0, 1000)).payload
            assert struct.unpack_from("<II", out) == (32, 0)
            device_out = np.frombuffer(out[8:], dtype=np.float32)
        finally:
            link.close()
    # The same seeded inputs through LiteRT: the host can check what the device computed.
    path = tmp_path / "fc.tflite"
    path.write_bytes(MODEL)
    ref = LiteRT(model_path=str(path))
    ref.allocate_tensors()
    x = np.array(sf.random_values(42, [("float32", 32)])[0], dtype=np.float32).reshape(1, 32)
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    np.testing.assert_allclose(device_out, ref.get_tensor(ref.get_output_details()[0]["index"]).ravel(),
                               rtol=1e-5, atol=1e-5)


def test_duplicate_request_is_answered_from_memory_not_executed() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            model = MODEL
            link.request(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
            first = sf.encode(sf.T.UPLOAD_CHUNK, 77, struct.pack("<I", 0) + model[:100])
            link.link.write(first + first)  # the same frame twice, as a retransmission would
            replies = []
            deadline = time.monotonic() + 5
            while len(replies) < 2 and time.monotonic() < deadline:
                replies += [e for e in link.decoder.feed(link.link.read(0.2)) if isinstance(e, sf.Frame)]
            assert [struct.unpack("<I", r.payload)[0] for r in replies] == [100, 100]
            # A stale chunk with a new SEQ is ignored too: the device keeps its place.
            r = link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + model[:100])
            assert struct.unpack("<I", r.payload)[0] == 100
        finally:
            link.close()


def test_every_bad_request_gets_an_error_frame() -> None:
    with running_emulator(extra=("--max-model", "1000")) as sim:
        link = _link(sim.port)
        try:
            link.hello()
            cases = [
                (sf.T.RUN, struct.pack("<BBH", 0, 0, 1), "BAD_STATE"),           # no model yet
                (0x3E, b"", "UNKNOWN_TYPE"),
                (sf.T.GET_TENSOR, b"\x00", "BAD_LENGTH"),
                (sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + b"x", "BAD_STATE"),   # no upload begun
                (sf.T.UPLOAD_BEGIN, struct.pack("<I", 5000) + bytes(32), "MODEL_TOO_LARGE"),
                (sf.T.GET_PROFILE, struct.pack("<H", 0), "UNSUPPORTED"),
            ]
            for type_, payload, name in cases:
                with pytest.raises(AgentError) as err:
                    link.request(type_, payload)
                assert name in err.value.message
        finally:
            link.close()


def test_hash_mismatch_is_refused() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            link.request(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(MODEL)) + bytes(32))
            link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + MODEL)
            with pytest.raises(AgentError) as err:
                link.request(sf.T.UPLOAD_END)
            assert err.value.code == "hash_mismatch"
        finally:
            link.close()


@pytest.mark.parametrize(("model", "code"), [
    (fc_model(custom="NotAnOp"), "unsupported_op"),
    (fc_model(bad_tensor=True), "crashed"),
    (b"\x00\x00\x00\x00TFL3" + bytes(200), "bad_model"),
], ids=["custom-op", "segfault", "garbage"])
def test_models_tflite_micro_refuses_or_crashes_on(model: bytes, code: str) -> None:
    """TFLite Micro's refusals become error codes; its crash costs the model, not the device."""
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            with pytest.raises(AgentError) as err:
                _upload(link, model)
            assert err.value.code == code, err.value.message
            assert _upload(link, MODEL)["n_ops"] == 1  # the device lives on and takes the next model
        finally:
            link.close()


def test_arena_too_small_is_reported() -> None:
    with running_emulator(arena=600) as sim:
        link = _link(sim.port)
        try:
            link.hello()
            with pytest.raises(AgentError) as err:
                _upload(link, MODEL)
            assert err.value.code == "arena_too_small"
        finally:
            link.close()


def test_reset_mid_upload_is_detected() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            link.request(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(MODEL)) + hashlib.sha256(MODEL).digest())
            link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", 0) + MODEL[:64])
            os.kill(sim.pid, signal.SIGUSR1)  # the reset button
            with pytest.raises((DeviceReset, AgentError)) as err:
                for _ in range(50):
                    link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", 64) + MODEL[64:128])
                    time.sleep(0.05)
            assert "reset" in str(err.value)
        finally:
            link.close()


def test_stopped_device_times_out_in_bounded_time() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            os.kill(sim.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            with pytest.raises(TransportError) as err:
                link.request(sf.T.PING, b"are you there", work_s=0.2)
            elapsed = time.monotonic() - t0
            assert "no reply" in err.value.message and err.value.hint
            assert elapsed < 10  # 4 attempts of ~0.7 s each, with generous room for a busy machine
        finally:
            os.kill(sim.pid, signal.SIGCONT)
            link.close()


def test_uart_pacing_holds_upload_near_the_line_rate() -> None:
    """A pty moves MB/s; the emulator must not: upload speed is bounded by 10 bits per byte."""
    model = fc_model(k=32, m=8, pad_bytes=20000)
    baud = 460800
    with running_emulator(baud=baud) as sim:
        link = _link(sim.port, baud)
        try:
            link.hello()
            t0 = time.monotonic()
            _upload(link, model)
            rate = len(model) / (time.monotonic() - t0)
        finally:
            link.close()
    line = baud / 10
    assert rate < 1.05 * line  # never faster than the wire
    assert rate > 0.3 * line  # and not absurdly slow even on a loaded machine


@pytest.fixture(scope="module")
def fuzz_link() -> Iterator[FramedLink]:
    with running_emulator() as sim:
        link = _link(sim.port)
        link.hello()
        _upload(link, MODEL)  # a loaded model, so the handlers past BAD_STATE get exercised too
        yield link
        link.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(type_=st.sampled_from([t for t in range(0x01, 0x0D) if t not in (sf.T.HELLO, sf.T.UPLOAD_END,
                                                                        sf.T.USE_BUILTIN)] + [0x00, 0x40, 0x7F]),
       payload=st.binary(max_size=64))
def test_every_request_gets_exactly_one_reply_or_error(fuzz_link: FramedLink, type_: int, payload: bytes) -> None:
    """Random payloads for every request type: an OK reply or an ERROR, never silence or a crash."""
    try:
        reply = fuzz_link.request(type_, payload, work_s=2.0)
        assert reply.type == sf.reply_type(type_)
    except AgentError as err:
        assert err.message.startswith("the device refused")
    assert fuzz_link.retransmissions == 0  # answered at the first attempt
