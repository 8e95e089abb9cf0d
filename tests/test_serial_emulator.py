"""The emulated MCU speaking serial protocol v1 on a real pty, with real TFLite Micro.

These tests talk to it frame by frame through harness's FramedLink, so they pin the device side
of SERIAL_PROTOCOL.md: what the firmware for real boards must do too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as LiteRT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents.wire import serial_frames as sf
from harness.errors import AgentError, TransportError
from harness.lab.transports.serial import DeviceReset, FramedLink, SerialLink
from tests.serialkit import fc_model, running_emulator

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


# ------------------------------------------------- limits and lengths (SERIAL_PROTOCOL.md 1, 2, 3, 5)

def _exchange(link: FramedLink, type_: int, payload: bytes = b"", seq: int = 200) -> sf.Frame:
    """One raw request and its reply frame, OK or ERROR, without HELLO's bookkeeping."""
    link.link.write(sf.encode(type_, seq, payload))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for event in link.decoder.feed(link.link.read(0.2)):
            if isinstance(event, sf.Frame) and event.seq == seq:
                return event
    raise AssertionError(f"no reply to type 0x{type_:02x}")


def _await_boot(link: FramedLink) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(isinstance(e, sf.Frame) and e.type == sf.T.BOOT for e in link.decoder.feed(link.link.read(0.2))):
            return
    raise AssertionError("no BOOT after the reset")


def _error(frame: sf.Frame) -> dict:
    assert frame.type == sf.T.ERROR, f"expected ERROR, got type 0x{frame.type:02x}"
    return sf.unpack_error(frame.payload)


def test_error_text_is_cut_to_the_reply_limit_before_hello() -> None:
    """Until HELLO the host accepts 64 bytes: a long error message gives way, not the limit."""
    begin = struct.pack("<I", 5000) + bytes(32)
    with running_emulator(extra=("--max-model", "1000")) as sim:
        link = _link(sim.port)
        try:
            before = _exchange(link, sf.T.UPLOAD_BEGIN, begin, seq=1)
            assert len(before.payload) == sf.MIN_PAYLOAD
            err = _error(before)
            assert (err["name"], err["detail"]) == ("MODEL_TOO_LARGE", 1000)
            link.hello()
            after = _error(_exchange(link, sf.T.UPLOAD_BEGIN, begin, seq=2))
            assert len(after["message"]) > len(err["message"]) and after["message"].startswith(err["message"])
        finally:
            link.close()


def test_random_input_for_an_unlisted_dtype_is_unsupported() -> None:
    """A float16 input has no RANDOM_INPUT values: UNSUPPORTED (detail = its dtype), model kept."""
    model = _reshape_model(schema_type=1)  # TensorType FLOAT16
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            _upload(link, model)
            assert sf.unpack_tensor(link.request(sf.T.GET_TENSOR, bytes([0, 0])).payload)["dtype"] == 10
            with pytest.raises(AgentError) as err:
                link.request(sf.T.RANDOM_INPUT, struct.pack("<I", 1))
            assert err.value.code == "unsupported" and err.value.detail == 10
            link.request(sf.T.SET_INPUT, struct.pack("<BI", 0, 0) + np.ones(4, np.float16).tobytes())
            link.request(sf.T.RUN, struct.pack("<BBH", sf.MODE_WITH, 0, 1))
        finally:
            link.close()


def _reshape_model(schema_type: int) -> bytes:
    """A one-op RESHAPE [1,4] -> [4] of the given TensorType code (TFLite Micro copies any dtype)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    sg = schema.SubGraphT()
    sg.tensors = []
    for name, shape in (("in", [1, 4]), ("out", [4])):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, schema_type, 0
        sg.tensors.append(t)
    sg.inputs, sg.outputs = [0], [1]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    op.builtinOptions = schema.ReshapeOptionsT()
    op.builtinOptions.newShape = [4]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RESHAPE
    code.version = 1
    sg.operators = [op]
    m = schema.ModelT()
    m.version, m.subgraphs, m.operatorCodes, m.buffers = 3, [sg], [code], [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_reply_limit_is_capped_by_the_device_max_payload() -> None:
    """A host that accepts 8192 bytes still gets no reply longer than the device's max_payload."""
    model = fc_model(k=32, m=128)  # 512 output bytes: more than one 256-byte reply
    with running_emulator(extra=("--max-payload", "256")) as sim:
        link = _link(sim.port)
        try:
            info = link.hello()
            assert info["max_batch"] == (256 - 4) // 16
            _upload(link, model)
            link.request(sf.T.RUN, struct.pack("<BBH", sf.MODE_WITH, 0, 1))
            out = link.request(sf.T.GET_OUTPUT, struct.pack("<BIH", 0, 0, 0xFFFF)).payload
            assert len(out) == 256 and struct.unpack_from("<II", out) == (512, 0)
        finally:
            link.close()


def test_reset_drops_the_negotiated_reply_limit() -> None:
    """A reset loses RAM: replies are held to 64 bytes again until the next HELLO."""
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            assert _exchange(link, sf.T.PING, bytes(100), seq=1).type == sf.reply_type(sf.T.PING)
            os.kill(sim.pid, signal.SIGUSR1)
            _await_boot(link)
            err = _error(_exchange(link, sf.T.PING, bytes(100), seq=2))
            assert (err["name"], err["detail"]) == ("BAD_ARGUMENT", sf.MIN_PAYLOAD)
            link.hello()
            assert link.request(sf.T.PING, bytes(100)).payload == bytes(100)
        finally:
            link.close()


def test_driver_says_hello_again_after_a_reset(tmp_path: Path) -> None:
    """The next job after a reset re-negotiates with HELLO and runs in full."""
    from harness.lab.drivers.mcu import McuDriver
    from harness.models.files import sha256
    from harness.plan import Job
    from tests.serialkit import QUICK_PLAN, serial_target, write_model

    path = write_model(tmp_path, "fc.tflite", fc_model(k=32, m=64))  # 256 output bytes: > 64
    job = Job(target="board", model=path, model_sha256=sha256(path), threads=1, plan=QUICK_PLAN)
    with running_emulator() as sim:
        driver = McuDriver(serial_target(sim.port))
        try:
            driver.benchmark(job, lambda m: None, threading.Event())
            os.kill(sim.pid, signal.SIGUSR1)
            time.sleep(0.5)  # BOOT is queued on the line, as between two jobs
            messages: list[dict] = []
            driver.benchmark(job, messages.append, threading.Event())
        finally:
            driver.close()
    types = [m["type"] for m in messages]
    assert "error" not in types and types.count("samples") >= 2, types
    (outputs,) = [m["outputs"] for m in messages if m["type"] == "outputs"]
    assert len(outputs[0]["values"]) == 64


@pytest.mark.parametrize("limit", [64, 8192])
def test_hello_ok_strings_give_way_to_the_reply_limit(limit: int) -> None:
    """Long board/cpu/version strings are cut (never inside a UTF-8 character) so HELLO succeeds."""
    board = "\u00e9" * 150  # 300 bytes of UTF-8: more than a str8 holds, too
    with running_emulator(extra=("--board", board)) as sim:
        link = _link(sim.port)
        try:
            reply = _exchange(link, sf.T.HELLO, struct.pack("<H", limit), seq=1)
            assert reply.type == sf.reply_type(sf.T.HELLO) and len(reply.payload) <= limit
            info = sf.unpack_info(reply.payload)
            if limit == 64:
                assert (info["tflm_version"], info["cpu"], info["board"]) == ("", "", "\u00e9" * 16)
            else:
                assert info["board"] == "\u00e9" * 127 and info["cpu"] == "host CPU (emulated MCU)"
            assert info["max_batch"] == sf.max_batch_rows(min(limit, 4104))
        finally:
            link.close()


def test_default_hello_ok_fits_a_64_byte_host() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            reply = _exchange(link, sf.T.HELLO, struct.pack("<H", 64), seq=1)
            info = sf.unpack_info(reply.payload)
            assert len(reply.payload) <= 64 and info["board"].startswith("mcu-emulator")
            assert "host CPU (emulated MCU)".startswith(info["cpu"])
        finally:
            link.close()


@pytest.mark.parametrize("builtin", [False, True], ids=["no-builtin", "builtin"])
def test_fixed_length_requests_refuse_other_lengths(tmp_path: Path, builtin: bool) -> None:
    """USE_BUILTIN with a payload is BAD_LENGTH (detail 0) before anything else; so are the others."""
    path = tmp_path / "builtin.tflite"
    path.write_bytes(MODEL)
    with running_emulator(extra=("--builtin", str(path)) if builtin else ()) as sim:
        link = _link(sim.port)
        try:
            link.hello()
            cases = [(sf.T.USE_BUILTIN, b"x", 0), (sf.T.RUN, b"\x00\x00\x01", 4),
                     (sf.T.GET_PROFILE, b"", 2), (sf.T.UPLOAD_END, b"\x00", 0), (sf.T.HELLO, b"\x40", 2)]
            for seq, (type_, payload, need) in enumerate(cases, start=1):
                err = _error(_exchange(link, type_, payload, seq=seq))
                assert (err["name"], err["request_type"], err["detail"]) == ("BAD_LENGTH", type_, need)
            reply = _exchange(link, sf.T.USE_BUILTIN, b"", seq=50)
            if builtin:
                assert sf.unpack_model_info(reply.payload)["sha256"] == hashlib.sha256(MODEL).digest()
            else:
                assert _error(reply)["name"] == "UNSUPPORTED"
        finally:
            link.close()


def test_get_profile_without_a_profiler_is_unsupported_in_any_state() -> None:
    with running_emulator() as sim:
        link = _link(sim.port)
        try:
            link.hello()
            assert not link.hello()["flags"] & sf.FLAG_PROFILER
            for first_op in (0, 5):
                assert _error(_exchange(link, sf.T.GET_PROFILE, struct.pack("<H", first_op), seq=1 + first_op)
                              )["name"] == "UNSUPPORTED"
            _upload(link, MODEL)
            link.request(sf.T.RUN, struct.pack("<BBH", sf.MODE_WITH, 0, 1))
            assert _error(_exchange(link, sf.T.GET_PROFILE, struct.pack("<H", 9), seq=99))["name"] == "UNSUPPORTED"
        finally:
            link.close()
