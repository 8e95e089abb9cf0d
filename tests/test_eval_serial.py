"""EVAL on serial boards: the emulator and the C firmware against each other, the host's paging,
and firmware without EVAL.

- Differential: the emulated MCU (Python, TFLite Micro) and fw_host (the portable C layer, ASan +
  UBSan, host-c-stub) get the same request sequences around EVAL (HELLO limits, SET_INPUT, RANDOM_INPUT,
  RUN, GET_OUTPUT, retransmissions, malformed lengths), with a model of the stub's tensor layout
  on the emulator (serialkit.stub_like_model), so every reply must agree in type, error code,
  detail and length; the output values are each device's own computation, checked against it.
- The host pages outputs that do not fit one EVAL reply with GET_OUTPUT (an emulator with a
  64-byte max_payload), and the stored values are TFLite Micro's, bit for bit.
- Firmware whose HELLO lacks flag EVAL is refused before any sample, in one clear line.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_agents.wire import serial_frames as sf
from harness.errors import AgentError
from harness.lab.drivers.mcu import McuDriver
from harness.models.files import sha256
from harness.plan import EvalPlan, Job, Plan
from harness.scenarios.benchmark import prepare_eval
from tests.firmwarekit import FwHost, Link, build_firmware, sanitizer_report, stub_output
from tests.serialkit import (
    LineProxy,
    Reframer,
    fc_model,
    old_firmware,
    running_emulator,
    serial_target,
    stub_like_model,
    write_model,
)

WORK = 2000


@dataclass
class Pair:
    """The two devices, each behind a Link, fed identical frames; the state both must hold."""

    emulator: Link
    firmware: Link
    seq: int = 0
    staged: bytearray = field(default_factory=lambda: bytearray(64))
    invoked: bytes | None = None  # the staged input of the last Invoke
    last: tuple[int, bytes, bytes] = (0, b"", b"")  # request type, payload, frame


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    build = build_firmware(tmp_path_factory.getbasetemp(), "fw_host_asan")
    fw = FwHost(build / "fw_host_asan", "--work", str(WORK), "--max-model", "65536", "--max-payload", "4104")
    try:
        with running_emulator("diff", extra=("--max-payload", "4104")) as sim:
            links = Link(sim.port), Link(fw.port)
            try:
                model = stub_like_model()
                infos = [link.hello() for link in links]
                assert all(i["flags"] & sf.FLAG_EVAL for i in infos)
                loaded = [link.upload(model) for link in links]
                assert {(m["n_inputs"], m["n_outputs"], m["n_ops"]) for m in loaded} == {(1, 1, 2)}
                for which in (b"\x00\x00", b"\x01\x00"):  # the same tensors, byte for byte
                    assert links[0].ok(sf.T.GET_TENSOR, which) == links[1].ok(sf.T.GET_TENSOR, which)
                yield Pair(*links)
            finally:
                for link in links:
                    link.close()
    finally:
        err = fw.stop()
    assert sanitizer_report(err) is None, err


def expected_outputs(device: str, staged: bytes) -> bytes:
    """What each device's Invoke computes from its staged int8 input: 4 x int32."""
    if device == "emulator":  # stub_like_model: the first 4 inputs, cast to int32
        values = [b - 256 if b > 127 else b for b in staged[:4]]
    else:
        values = stub_output(staged, WORK)
    return struct.pack("<4i", *values)


def outcome(reply: sf.Frame, request: int) -> tuple[Any, ...]:
    """What both devices must agree on: the reply type, and the error code and detail or the
    payload length (RUN: its mode and count too; the samples are timings; HELLO_OK: the limits and
    flag EVAL, its names being each device's own)."""
    if reply.type == sf.T.ERROR:
        e = sf.unpack_error(reply.payload)
        return reply.type, e["name"], e["detail"], e["request_type"]
    if request == sf.T.HELLO:
        info = sf.unpack_info(reply.payload)
        return reply.type, info["max_payload"], info["max_batch"], info["flags"] & sf.FLAG_EVAL
    if request == sf.T.RUN:
        return reply.type, len(reply.payload), reply.payload[:4]
    return reply.type, len(reply.payload)


def check_values(pair: Pair, device: str, request: int, payload: bytes, reply: sf.Frame) -> None:
    """An EVAL or GET_OUTPUT reply holds this device's own outputs of the last Invoke."""
    assert pair.invoked is not None
    want = expected_outputs(device, pair.invoked)
    if request == sf.T.EVAL:
        assert sf.unpack_eval(reply.payload) == (16, want), device
    else:
        _, offset, max_len = struct.unpack("<BIH", payload)
        total, got_offset = struct.unpack_from("<II", reply.payload)
        assert (total, got_offset) == (16, offset) and reply.payload[8:] == want[offset:offset + max_len], device


def send(pair: Pair, request: int, payload: bytes) -> None:
    """One request to both devices (``request`` < 0: the previous frame again, as a host resends it)."""
    resend = request < 0
    if resend:
        request, payload, frame = pair.last
    else:
        pair.seq = pair.seq % 255 + 1
        frame = sf.encode(request, pair.seq, payload)
        pair.last = (request, payload, frame)
    replies = {}
    for name, link in (("emulator", pair.emulator), ("firmware", pair.firmware)):
        link.write(frame)
        replies[name] = link.frame(pair.seq)
    assert outcome(replies["emulator"], request) == outcome(replies["firmware"], request), (request, payload.hex())
    ok = replies["firmware"].type != sf.T.ERROR
    if ok and not resend:  # a retransmission changes nothing on either device
        if request == sf.T.SET_INPUT:
            offset = struct.unpack_from("<I", payload, 1)[0]
            pair.staged[offset:offset + len(payload) - 5] = payload[5:]
        elif request == sf.T.RANDOM_INPUT:
            pair.staged[:] = bytes(v & 0xFF for v in sf.random_values(struct.unpack("<I", payload)[0],
                                                                       [("int8", 64)])[0])
        elif request == sf.T.EVAL or (request == sf.T.RUN and payload[0] == sf.MODE_WITH):
            pair.invoked = bytes(pair.staged)
    if ok and request in (sf.T.EVAL, sf.T.GET_OUTPUT):
        for name, reply in replies.items():
            check_values(pair, name, request, payload, reply)


requests = st.one_of(
    st.tuples(st.just(sf.T.HELLO), st.one_of(st.integers(60, 300), st.just(8192)).map(lambda n: struct.pack("<H", n))),
    st.tuples(st.just(sf.T.EVAL), st.binary(max_size=2)),
    st.tuples(st.just(sf.T.SET_INPUT), st.tuples(st.integers(0, 1), st.integers(0, 70), st.binary(max_size=70)).map(
        lambda t: struct.pack("<BI", t[0], t[1]) + t[2])),
    st.tuples(st.just(sf.T.RANDOM_INPUT), st.integers(0, 2**32 - 1).map(lambda s: struct.pack("<I", s))),
    st.tuples(st.just(sf.T.RUN), st.tuples(st.integers(0, 2), st.integers(0, 20)).map(
        lambda t: struct.pack("<BBH", t[0], 0, t[1]))),
    st.tuples(st.just(sf.T.GET_OUTPUT), st.tuples(st.integers(0, 1), st.integers(0, 20), st.integers(0, 20)).map(
        lambda t: struct.pack("<BIH", *t))),
    st.just((-1, b"")),  # a retransmission of the previous request
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(requests, min_size=1, max_size=12))
def test_emulator_and_c_firmware_agree_on_eval(pair: Pair, ops: list[tuple[int, bytes]]) -> None:
    send(pair, sf.T.HELLO, struct.pack("<H", 8192))
    send(pair, sf.T.SET_INPUT, struct.pack("<BI", 0, 0) + bytes(range(64)))
    send(pair, sf.T.EVAL, b"")
    for request, payload in ops:
        send(pair, request, payload)


def _eval_job(tmp_path: Path, model: Path, samples: int) -> Job:
    plan = Plan(warmup=1, warmup_time_s=0.0, iterations=4, blocks=1, settle=0, seed=11,
                eval=EvalPlan("random", samples=samples))
    (job,), refused = prepare_eval([Job("sim", model, sha256(model), 1, plan)], tmp_path / "eval")
    assert not refused
    return job


def test_outputs_longer_than_one_reply_are_paged_with_get_output(tmp_path: Path) -> None:
    from tflite_micro.python.tflite_micro import runtime

    model = write_model(tmp_path, "fc32.tflite", fc_model(k=16, m=32))  # 128 output bytes, 60 fit a reply
    job = _eval_job(tmp_path, model, 6)
    assert job.eval is not None
    with running_emulator("paging", extra=("--max-payload", "64")) as sim:
        proxy = LineProxy(sim.port)
        sent = Reframer()
        proxy.to_device = sent
        messages: list[dict[str, Any]] = []
        try:
            driver = McuDriver(serial_target(proxy.host_port))
            try:
                driver.evaluate(job, messages.append, threading.Event())  # no benchmark first: it loads
            finally:
                driver.close()
        finally:
            proxy.close()
    kinds = [m["type"] for m in messages]
    assert kinds[:3] == ["hello", "push", "model"] and kinds[-1] == "eval_summary", messages[-1]
    types = [f.type for f in sent.seen]
    assert types.count(sf.T.EVAL) == 6 and types.count(sf.T.GET_OUTPUT) == 6 * 2  # 60 + 56 + 12 bytes
    stored = np.array([v for m in messages if m["type"] == "eval" for v in m["outputs"][0]], np.float32)
    it = runtime.Interpreter.from_file(str(model), arena_size=65536)
    x = np.load(job.eval.path)["in"]
    want = []
    for sample in x:
        it.set_input(sample, 0)
        it.invoke()
        want.append(np.array(it.get_output(0)).reshape(-1))
    assert np.array_equal(stored.reshape(6, 32), np.stack(want))


def test_firmware_without_eval_is_refused_before_any_sample(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    job = _eval_job(tmp_path, model, 3)

    with old_firmware(sf.FLAG_EVAL) as (driver, sent), pytest.raises(AgentError) as err:
        driver.evaluate(job, lambda m: None, threading.Event())
    assert err.value.code == "unsupported" and "has no EVAL request" in err.value.message
    assert "flash the firmware that ships with this harness" in str(err.value.hint)
    assert sf.T.EVAL not in [f.type for f in sent.seen] and sf.T.UPLOAD_BEGIN not in [f.type for f in sent.seen]
