"""A stream on a serial board: the schedule runs on the device, in STREAM batches.

SERIAL_PROTOCOL.md 3.12 in, PROTOCOL.md stream mode out. The device runs each batch of frames on
its own timer (its wait, the ``--device-work-us`` spin, one application-loop iteration per
frame); the host only sends the batch's parameters, in device ticks, and pages its records back
with GET_STREAM. Each batch continues the previous one in *stream time* (the generator's state,
the backlog and the next frame's time pass from STREAM_OK to the next STREAM; the line time
between batches is left out), so the frames of all batches are one schedule: for the emulator
and ``fw_host`` (1 GHz timers) exactly the Linux agent's ``stream_schedule``.

Records become the agent's ``stream`` messages: times in ns after the stream's origin (the first
batch's start), converted from absolute stream ticks (``ticks_to_ns``), so rounding never
accumulates; a dropped frame has no start, end or Invoke (null), as the agent writes it.

A batch is sized to about ``BATCH_S`` of device time and at most the device's ``max_frames``,
so a cancel (Ctrl-C, or a --find-max trial whose answer is clear) waits for at most that: the
driver checks for it before each batch and sends no new one.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss
from harness.errors import AgentError, ConfigError, MeasurementError, TransportError
from harness.lab.drivers.base import Emit, Message
from harness.lab.drivers.mcu_messages import PROTOCOL_VERSION, STAGES, ticks_to_ns
from harness.stream_plan import StreamJob

log = logging.getLogger(__name__)

BATCH_S = 0.5  # device time per batch: records come back twice a second, a cancel waits no longer
BATCH_TICKS_LIMIT = ss.LIMIT_TICKS // 4  # expected batch span, well inside the device's 2^31 ticks
Request = Callable[..., sf.Frame]  # McuDriver._req


class Stopped(Exception):
    """The runner asked the stream to stop (Ctrl-C, or a --find-max trial decided): not an error."""


def require_stream(info: dict[str, Any], port: str, target: str) -> None:
    """Refuse firmware without STREAM (HELLO flag bit 5) in one clear line, before any upload."""
    if not info["flags"] & sf.FLAG_STREAM:
        raise AgentError(f"the firmware on {port} has no STREAM request (HELLO flag STREAM is not set): "
                         "it cannot run a schedule on the device", code="unsupported", target=target,
                         hint="flash the firmware that ships with this harness (device_agents/firmware)")


def to_ticks(ns: int, timer_hz: int) -> int:
    """ns as device timer ticks, rounded to nearest (SERIAL_PROTOCOL.md 3.12)."""
    return (ns * timer_hz + 500_000_000) // 1_000_000_000


@dataclass(frozen=True)
class DeviceSchedule:
    """A StreamSchedule as one device runs it: every time in its timer ticks."""

    arrivals: int
    policy: int
    period: int
    deadline: int
    work: int
    frames: int
    seed: int
    timer_hz: int

    @classmethod
    def of(cls, job: StreamJob, timer_hz: int) -> DeviceSchedule:
        s = job.schedule
        period = max(1, to_ticks(s.period_ns, timer_hz))
        if period >= ss.LIMIT_TICKS:
            raise ConfigError(f"a period of {s.period_ns} ns is {period} ticks of this device's {timer_hz} Hz "
                              "timer, more than a STREAM carries (2^31 - 1)", target=job.target,
                              hint="use a higher --rate for this board")
        return cls(ss.ARRIVALS.index(s.arrivals), ss.POLICIES.index(s.policy), period,
                   max(1, to_ticks(s.deadline_ns, timer_hz)), to_ticks(job.plan.device_work_us * 1000, timer_hz),
                   s.frames, s.seed & 0xFFFFFFFF, timer_hz)

    def ns(self, ticks: int) -> int:
        return ticks_to_ns(ticks, self.timer_hz)


def plan_message(job: StreamJob, d: DeviceSchedule, inputs: str, max_frames: int) -> Message:
    """The ``stream_plan`` message: the schedule as the device runs it (its ticks, in ns)."""
    return {"v": PROTOCOL_VERSION, "type": "stream_plan", "arrivals": job.schedule.arrivals,
            "period_ns": d.ns(d.period), "rate_hz": 1e9 / d.ns(d.period), "frames": d.frames,
            "deadline_ns": d.ns(d.deadline), "policy": job.schedule.policy, "seed": job.schedule.seed,
            "spin_ns": None,  # the firmware spins through every wait: there is no sleep to end early
            "device_work_ns": d.ns(d.work), "state_interval_s": None, "warmup": job.plan.warmup,
            "warmup_time_s": job.plan.warmup_time_s, "inputs": inputs, "pipeline": None,
            "stages": (["work"] if d.work else []) + list(STAGES),
            "serial": {"timer_hz": d.timer_hz, "period_ticks": d.period, "deadline_ticks": d.deadline,
                       "work_ticks": d.work, "max_frames": max_frames}}


def cool_down(job: StreamJob, emit: Emit, stopped: threading.Event) -> None:
    """A microcontroller reports no temperature: wait the whole cool-down on the host."""
    if job.cooldown is None or job.cooldown.max_s <= 0:
        return
    t0 = time.monotonic_ns()
    if stopped.wait(job.cooldown.max_s):
        raise Stopped()
    emit({"v": PROTOCOL_VERSION, "type": "cooldown", "target_temp_c": job.cooldown.target_temp_c, "temp_c": None,
          "waited_ns": time.monotonic_ns() - t0, "reached": None, "host_measured": True})


class StreamBatches:
    """The batches of one stream over one link (``request`` is McuDriver._req)."""

    def __init__(self, request: Request, target: str, schedule: DeviceSchedule, max_frames: int,
                 timeout_s: float, stopped: threading.Event) -> None:
        self.request = request
        self.target = target
        self.d = schedule
        self.max_frames = max_frames
        self.timeout_s = timeout_s
        self.stopped = stopped

    def run(self, emit: Emit, service_ticks: int) -> None:
        """Every frame of the schedule, in batches; ``stream`` messages, then ``stream_summary``.
        ``service_ticks``: what one frame takes on the device (work + the warm-up loop), to size
        the batches."""
        d = self.d
        origin, state, busy, done = 0, d.seed, 0, 0
        late = dropped = 0
        last_end: int | None = None
        per_frame = max(d.period, service_ticks, 1)
        by_time = max(1, min(int(BATCH_S * d.timer_hz), BATCH_TICKS_LIMIT) // per_frame)
        while done < d.frames:
            if self.stopped.is_set():
                raise Stopped()
            count = min(self.max_frames, by_time, d.frames - done)
            res, records = self.batch(ss.Request(d.arrivals, d.policy, count, d.period, d.deadline, d.work,
                                                 state, busy), per_frame)
            emit(self.message(done, origin, records))
            late += res.late
            dropped += res.dropped
            ends = [r.end for r in records if not r.flags & ss.FLAG_DROPPED]
            if ends:
                last_end = origin + ends[-1]
            origin, state, busy, done = origin + res.next_ticks, res.rng_state, res.busy, done + res.frames
        emit({"v": PROTOCOL_VERSION, "type": "stream_summary", "frames": done, "processed": done - dropped,
              "late": late, "dropped": dropped, "wall_ns": d.ns(last_end) if last_end is not None else 0,
              "max_rss_kb": None})

    def batch(self, req: ss.Request, per_frame: int) -> tuple[ss.Result, list[ss.Record]]:
        """One STREAM and its records, paged with GET_STREAM."""
        span_s = (req.frames * per_frame + req.busy) / self.d.timer_hz
        reply = self.request(sf.T.STREAM, ss.pack_request(req), reply_bytes=ss.REQUEST_BYTES,
                             work_s=3 * span_s + self.timeout_s, what=f"STREAM of {req.frames} frames")
        res = ss.unpack_result(reply.payload)
        if not 1 <= res.frames <= req.frames or res.late + res.dropped > res.frames:
            raise self._protocol(f"STREAM of {req.frames} frames answered {res.frames} frames, {res.late} late, "
                                 f"{res.dropped} dropped")
        records: list[ss.Record] = []
        while len(records) < res.frames:
            page = self.request(sf.T.GET_STREAM, struct.pack("<H", len(records)), what="GET_STREAM").payload
            try:
                _, held, first, got = ss.unpack_get_reply(page)
            except (ValueError, struct.error) as exc:
                raise self._protocol(f"GET_STREAM: {exc}") from exc
            if held != res.frames or first != len(records) or not got:
                raise self._protocol(f"GET_STREAM from {len(records)} answered {len(got)} of {held} records "
                                     f"from {first}; the batch ran {res.frames}")
            records += got
        if any(0xFFFFFFFF in r[:4] for r in records):
            raise MeasurementError("a frame's time is past the device timer's range; its records cannot be "
                                   "trusted", target=self.target, hint="use a higher --rate for this board")
        return res, records

    def message(self, first: int, origin: int, records: list[ss.Record]) -> Message:
        """The ``stream`` message of one batch's frames, in ns after the stream's origin."""
        ns = self.d.ns

        def run(value: int, r: ss.Record) -> int | None:
            return None if r.flags & ss.FLAG_DROPPED else ns(origin + value)

        return {"v": PROTOCOL_VERSION, "type": "stream", "first": first, "count": len(records),
                "scheduled_ns": [ns(origin + r.scheduled) for r in records],
                "start_ns": [run(r.start, r) for r in records], "end_ns": [run(r.end, r) for r in records],
                "invoke_ns": [None if r.flags & ss.FLAG_DROPPED else ns(r.invoke) for r in records],
                "status": "".join("d" if r.flags & ss.FLAG_DROPPED else "l" if r.flags & ss.FLAG_LATE else "o"
                                  for r in records)}

    def _protocol(self, what: str) -> TransportError:
        return TransportError(what, target=self.target, hint="flash the firmware that ships with harness")


def max_frames(request: Request, target: str) -> int:
    """GET_STREAM(0): the most frames one STREAM may hold on this device."""
    limit, _, _, _ = ss.unpack_get_reply(request(sf.T.GET_STREAM, struct.pack("<H", 0), what="GET_STREAM").payload)
    if limit < 1:
        raise TransportError("the device holds no STREAM records (max_frames 0)", target=target,
                             hint="flash the firmware that ships with harness")
    return int(limit)
