"""STREAM and GET_STREAM on the emulated MCU (SERIAL_PROTOCOL.md 3.12), over a real pty.

The emulator runs each batch in its TFLite Micro child on perf_counter_ns: flag STREAM in HELLO,
the refusals in their documented order, records that follow the rules of section 3.12, batches
that continue one Poisson schedule (the reference's, frame for frame), paging at the smallest
reply limit, a retransmission answered without a second run, and a child that dies mid-batch
(CRASHED: the model and the records are gone, the device lives on).
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss
from tests.firmwarekit import Link
from tests.serialkit import fc_model, running_emulator
from tests.serialstreamkit import batch, check_records

MODEL = fc_model(k=16, m=4)
MS = 1_000_000  # the emulator's timer counts ns


@pytest.fixture()
def link() -> Iterator[Link]:
    with running_emulator("stream") as sim:
        lk = Link(sim.port, timeout=10.0)
        try:
            yield lk
        finally:
            lk.close()


def _loaded(link: Link) -> None:
    link.hello()
    link.upload(MODEL)
    link.ok(sf.T.RANDOM_INPUT, struct.pack("<I", 9))


def test_hello_says_stream_and_the_refusals_come_in_order(link: Link) -> None:
    assert link.hello()["flags"] & sf.FLAG_STREAM
    assert ss.unpack_get_reply(link.ok(sf.T.GET_STREAM, b"\0\0")) == (256, 0, 0, [])  # no model needed
    assert link.error(sf.T.GET_STREAM, b"\1\0")["name"] == "BAD_ARGUMENT"
    good = ss.Request(ss.FIXED, ss.QUEUE, 10, MS, MS, 0, 0, 0)
    e = link.error(sf.T.STREAM, ss.pack_request(good)[:23])
    assert (e["name"], e["detail"]) == ("BAD_LENGTH", 24)
    assert link.error(sf.T.GET_STREAM, b"\0")["detail"] == 2
    assert link.error(sf.T.STREAM, ss.pack_request(good))["name"] == "BAD_STATE"
    _loaded(link)
    for bad in (good._replace(arrivals=2), good._replace(policy=2), good._replace(frames=0),
                good._replace(frames=257), good._replace(period=0), good._replace(period=2**31),
                good._replace(deadline=0)):
        e = link.error(sf.T.STREAM, ss.pack_request(bad))
        assert (e["name"], e["detail"]) == ("BAD_ARGUMENT", 256), bad


def test_batches_continue_one_poisson_schedule(link: Link) -> None:
    """Three batches, each started from the last one's STREAM_OK: together they are the
    schedule of one stream, the reference's frame for frame, in stream time."""
    _loaded(link)
    req = ss.Request(ss.POISSON, ss.QUEUE, 40, 2 * MS, 2 * MS, 300_000, 77, 0)
    times: list[int] = []
    origin = 0
    for _ in range(3):
        result, recs = batch(link, req)
        check_records(req, result, recs)
        assert result.frames == 40
        times += [origin + r.scheduled for r in recs]
        origin += result.next_ticks
        req = req._replace(rng_state=result.rng_state, busy=result.busy)
    assert times == ss.schedule(ss.POISSON, 2 * MS, 77, 120)
    assert origin == ss.schedule(ss.POISSON, 2 * MS, 77, 121)[-1]


def test_drop_late_and_queue_under_overload(link: Link) -> None:
    """Work of 2 ms every 1 ms: queued, every frame is late; with drop-late every frame run is
    late (its service alone exceeds the deadline), and the device, never idle, runs as many as
    its service times fill the stream's span: the rest, about half, are dropped, never run."""
    _loaded(link)
    for policy in (ss.QUEUE, ss.DROP_LATE):
        req = ss.Request(ss.FIXED, policy, 100, MS, MS, 2 * MS, 0, 0)
        result, recs = batch(link, req)
        check_records(req, result, recs)
        assert result.late + result.dropped == 100
        if policy == ss.QUEUE:
            assert result.dropped == 0 and result.busy > 90 * MS  # the backlog carried to the next batch
        else:
            served = [r.end - r.start for r in recs if not r.flags & ss.FLAG_DROPPED]
            expected = 100 - 100 * MS / (sum(served) / len(served))  # 1 - period / mean service
            # what is carried to the next batch is at most the last frame run's own service: a
            # drop-late device never queues (2 ms of work, more when the host preempts it)
            assert abs(result.dropped - expected) <= 5 and result.busy <= max(served), (result, expected)


def test_paging_at_64_bytes_and_a_retransmission(link: Link) -> None:
    """An overloaded batch (its backlog to the ns depends on the run), resent as a host resends
    a request whose reply was lost: the same reply, and the records are still the first run's."""
    _loaded(link)
    link.hello(64)
    req = ss.pack_request(ss.Request(ss.FIXED, ss.QUEUE, 10, MS, MS, 2 * MS, 0, 0))
    seq = link.next_seq()
    first = link.request(sf.T.STREAM, req, seq=seq)
    again = link.request(sf.T.STREAM, req, seq=seq)  # the same frame again: answered from memory
    assert again.payload == first.payload
    result = ss.unpack_result(first.payload)
    pages = [ss.unpack_get_reply(link.ok(sf.T.GET_STREAM, struct.pack("<H", k))) for k in (0, 3, 6, 9, 10)]
    assert [len(p[3]) for p in pages] == [3, 3, 3, 1, 0]
    held = [r for p in pages for r in p[3]]
    assert held[-1].end - result.next_ticks == result.busy > 0  # the run that first reply describes


def test_a_child_that_dies_mid_batch_costs_the_model_not_the_device(link: Link) -> None:
    _loaded(link)
    emulator = next(p for p in psutil.Process().children() if "emulator.py" in " ".join(p.cmdline()))
    req = ss.pack_request(ss.Request(ss.FIXED, ss.QUEUE, 200, 5 * MS, 5 * MS, 0, 0, 0))  # 1 s of frames

    def kill_child() -> None:
        time.sleep(0.3)
        for child in emulator.children():
            os.kill(child.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_child)
    killer.start()
    e = link.error(sf.T.STREAM, req)
    killer.join()
    assert e["name"] == "CRASHED"
    assert ss.unpack_get_reply(link.ok(sf.T.GET_STREAM, b"\0\0"))[1] == 0
    assert link.error(sf.T.GET_TENSOR, b"\0\0")["name"] == "BAD_STATE"
    _loaded(link)  # the device takes the next model
    result, _ = batch(link, ss.Request(ss.FIXED, ss.QUEUE, 5, MS, MS, 0, 0, 0))
    assert result.frames == 5
