"""Shared pieces of the serial stream tests (SERIAL_PROTOCOL.md 3.12): one batch over a Link, the
rules every record must follow, a stream job for McuDriver.stream, and the host's own stalls.

- ``batch``: STREAM, then GET_STREAM pages until the batch's records are in.
- ``check_records``: the rules of section 3.12 on one batch, exactly where the device's clock
  allows (the schedule's arithmetic) and with the slack of a timer read where it does not.
- ``stalls``: frames the host CPU stood still in (an emulated board is a host process on a shared
  machine): an underloaded stream's late frames must all follow one.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss
from harness.models.files import sha256
from harness.stream_plan import StreamJob, StreamPlan
from tests.firmwarekit import Link


def batch(link: Link, req: ss.Request) -> tuple[ss.Result, list[ss.Record]]:
    """One STREAM batch and its records."""
    result = ss.unpack_result(link.ok(sf.T.STREAM, ss.pack_request(req)))
    return result, records(link, result.frames)


def records(link: Link, frames: int) -> list[ss.Record]:
    got: list[ss.Record] = []
    while len(got) < frames:
        _, held, first, page = ss.unpack_get_reply(link.ok(sf.T.GET_STREAM, struct.pack("<H", len(got))))
        assert held == frames and first == len(got) and page, (held, first, len(page))
        got += page
    return got


def check_records(req: ss.Request, result: ss.Result, recs: list[ss.Record]) -> None:
    """Section 3.12 on one batch: scheduled times are the reference's exactly (``gap``, give or
    take 1 tick a gap for the C layer's own ln), a frame starts once it has arrived and the device
    is free, spins its work, is late exactly when it ended past its deadline, is dropped only when
    stale; the totals and what the next batch continues from add up. (How soon a frame starts is
    a matter of the device's clock: the callers judge it.)"""
    sched, state, free = 0, req.rng_state, req.busy
    late = dropped = 0
    assert len(recs) == result.frames
    for r in recs:
        assert abs(r.scheduled - sched) <= 1, (r, sched)
        sched = r.scheduled
        assert r.start >= max(sched, free), (r, free)
        if r.flags & ss.FLAG_DROPPED:
            assert r.flags == ss.FLAG_DROPPED and r.end == r.start and r.invoke == 0
            assert req.policy == ss.DROP_LATE and r.start - r.scheduled > req.deadline
            dropped += 1
        else:
            assert req.policy == ss.QUEUE or r.start - r.scheduled <= req.deadline
            assert r.end - r.start >= req.work + r.invoke and r.invoke > 0
            assert bool(r.flags & ss.FLAG_LATE) == (r.end - r.scheduled > req.deadline) and r.flags in (0, 1)
            late += r.flags
            free = r.end
        step, state = ss.gap(req.arrivals, req.period, state)
        sched += step
    assert (result.late, result.dropped) == (late, dropped)
    assert result.rng_state == state and abs(result.next_ticks - sched) <= 1
    assert result.busy == max(0, free - result.next_ticks)


def stream_job(model: Path, target: str = "mcu-sim", **plan: Any) -> StreamJob:
    """A stream job of ``model`` on ``target``; ``plan``: StreamPlan fields (a short warm-up)."""
    fields: dict[str, Any] = {"warmup": 5, "warmup_time_s": 0.0, "duration_s": 1.0, "seed": 3}
    fields.update(plan)
    p = StreamPlan(**fields)
    return StreamJob(target=target, model=model, model_sha256=sha256(model), threads=1, plan=p,
                     schedule=p.schedule())


def frames_of(messages: list[dict[str, Any]]) -> list[tuple[int, int | None, int | None, int | None, str]]:
    """(scheduled, start, end, invoke, status) of every frame of the ``stream`` messages, in order,
    checking that the messages tile the frames without a gap or an overlap."""
    out: list[tuple[int, int | None, int | None, int | None, str]] = []
    for m in (m for m in messages if m["type"] == "stream"):
        assert m["first"] == len(out) and m["count"] == len(m["status"]) > 0
        out += list(zip(m["scheduled_ns"], m["start_ns"], m["end_ns"], m["invoke_ns"], m["status"], strict=True))
    return out


def stalls(frames: list[tuple[int, int | None, int | None, int | None, str]], service_ns: float,
           wake_ns: int = 1_000_000) -> set[int]:
    """Frames during which the host did not run the emulated device: a service time over twice
    the median ``service_ns``, or a start more than ``wake_ns`` after the frame could start."""
    out: set[int] = set()
    free = 0
    for i, (s, a, e, _, _) in enumerate(frames):
        if a is None or e is None:
            continue
        if e - a > 2 * service_ns or a - max(s, free) > wake_ns:
            out.add(i)
        free = e
    return out


def explained(frames: list[tuple[int, int | None, int | None, int | None, str]], stalled: set[int],
              deadline_ns: int) -> bool:
    """Whether every late frame comes at or after a stall, within the backlog it can leave: at
    most as many frames as the stall lasted in deadlines, plus a few."""
    for i, (s, _, _, _, st) in enumerate(frames):
        if st != "l":
            continue
        before = [j for j in stalled if j <= i]
        if not before:
            return False
        j = max(before)
        s_j, a_j, e_j = frames[j][0], frames[j][1], frames[j][2]
        assert a_j is not None and e_j is not None
        if s - s_j > (e_j - s_j) + 3 * deadline_ns:
            return False
    return True
