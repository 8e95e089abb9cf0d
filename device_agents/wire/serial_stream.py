"""STREAM and GET_STREAM of the serial protocol (SERIAL_PROTOCOL.md 3.12): codecs and the reference batch.

Wire grammar (little-endian)::

    STREAM        u8 arrivals | u8 policy | u16 count | u32 period_ticks | u32 deadline_ticks
                  | u32 work_ticks | u32 rng_state | u32 busy_ticks                       (24 bytes)
    STREAM_OK     u16 frames | u16 late | u16 dropped | u16 0 | u64 next_ticks | u32 rng_state
                  | u32 busy_ticks                                                          (24 bytes)
    GET_STREAM    u16 first                                                                 (2 bytes)
    GET_STREAM_OK u16 max_frames | u16 frames | u16 first | u8 count
                  | count x (u32 scheduled | u32 start | u32 end | u32 invoke | u8 flags)

``run_batch`` is the batch as the device runs it, on any clock: the emulated MCU runs it in its
TFLite Micro child, and the tests compare the C layer (firmware/proto/proto_stream.c) with it.
``gap`` draws PROTOCOL.md's stream-mode gaps (xorshift32, exponential by its inverse CDF), in
ticks. Runs on Python >= 3.8 with the standard library only, and never imports harness.
"""

import math
import struct
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

ARRIVALS = ("fixed", "poisson")
POLICIES = ("queue", "drop-late")
FIXED, POISSON = 0, 1
QUEUE, DROP_LATE = 0, 1
FLAG_LATE = 1 << 0
FLAG_DROPPED = 1 << 1
LIMIT_TICKS = 1 << 31  # a batch ends before a frame scheduled (or starting) this late: offsets fit a u32
REQUEST_BYTES = 24
GET_REQUEST_BYTES = 2
RECORD_BYTES = 17
GET_HEADER_BYTES = 7
MAX_RECORDS_PER_REPLY = 255
DEFAULT_SEED_STATE = 0x9E3779B9  # xorshift32 cannot start from 0 (section 3.7)

_REQUEST = struct.Struct("<BBHIIIII")
_RESULT = struct.Struct("<HHHHQII")
_RECORD = struct.Struct("<IIIIB")
_GET_HEADER = struct.Struct("<HHHB")


class Request(NamedTuple):
    """One STREAM request: a batch of ``frames`` frames (the wire's count); times in device ticks."""

    arrivals: int
    policy: int
    frames: int
    period: int
    deadline: int
    work: int
    rng_state: int
    busy: int


class Result(NamedTuple):
    """STREAM_OK: what the batch did, and what the next batch continues from."""

    frames: int
    late: int
    dropped: int
    next_ticks: int
    rng_state: int
    busy: int


class Record(NamedTuple):
    """One frame: ticks after its batch's start, and FLAG_* bits."""

    scheduled: int
    start: int
    end: int
    invoke: int
    flags: int


def pack_request(req: Request) -> bytes:
    return _REQUEST.pack(*req)


def unpack_request(data: bytes) -> Request:
    return Request(*_REQUEST.unpack(data))


def pack_result(res: Result) -> bytes:
    return _RESULT.pack(res.frames, res.late, res.dropped, 0, res.next_ticks, res.rng_state, res.busy)


def unpack_result(data: bytes) -> Result:
    frames, late, dropped, _, next_ticks, state, busy = _RESULT.unpack(data)
    return Result(frames, late, dropped, next_ticks, state, busy)


def check_request(req: Request, max_frames: int) -> Optional[str]:
    """Why the device refuses ``req`` with BAD_ARGUMENT (detail max_frames), or None."""
    if req.arrivals > POISSON or req.policy > DROP_LATE:
        return "arrivals %d policy %d: each is 0 or 1" % (req.arrivals, req.policy)
    if not 1 <= req.frames <= max_frames:
        return "count %d: 1..%d frames per batch" % (req.frames, max_frames)
    if not 1 <= req.period < LIMIT_TICKS:
        return "period_ticks %d: 1..2^31-1" % req.period
    if req.deadline < 1:
        return "deadline_ticks is 0"
    return None


def pack_records(records: Sequence[Record]) -> bytes:
    # Saturate, never wrap: a wrapped tick count would be a plausible-looking wrong time.
    return b"".join(_RECORD.pack(*(min(int(v), 0xFFFFFFFF) for v in r[:4]), r.flags) for r in records)


def pack_get_reply(max_frames: int, records: Sequence[Record], first: int, reply_limit: int) -> bytes:
    """GET_STREAM_OK for records ``first``.. of the held ones, as many as fit ``reply_limit``."""
    room = (reply_limit - GET_HEADER_BYTES) // RECORD_BYTES
    page = records[first:first + max(0, min(room, MAX_RECORDS_PER_REPLY))]
    return _GET_HEADER.pack(max_frames, len(records), first, len(page)) + pack_records(page)


def unpack_get_reply(data: bytes) -> Tuple[int, int, int, List[Record]]:
    """(max_frames, frames held, first, the records of this page)."""
    max_frames, frames, first, count = _GET_HEADER.unpack_from(data, 0)
    if len(data) != GET_HEADER_BYTES + RECORD_BYTES * count:
        raise ValueError("GET_STREAM_OK of %d bytes does not hold %d records" % (len(data), count))
    records = [Record(*_RECORD.unpack_from(data, GET_HEADER_BYTES + RECORD_BYTES * k)) for k in range(count)]
    return max_frames, frames, first, records


# ---------------------------------------------------------------- the schedule (section 3.12)

def xorshift32_next(state: int) -> int:
    """One step of the generator of section 3.7 (``state`` nonzero)."""
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


def gap(arrivals: int, period: int, state: int) -> Tuple[int, int]:
    """(ticks to the next frame, the generator's new state). Poisson: PROTOCOL.md's gap, the
    exponential distribution by its inverse CDF in IEEE-754 double, ``period`` the mean gap."""
    if arrivals == FIXED:
        return period, state
    state = xorshift32_next(state or DEFAULT_SEED_STATE)
    u = ((state >> 8) + 1) / 16777216.0
    return int(math.floor(-math.log(u) * period + 0.5)), state


def schedule(arrivals: int, period: int, seed: int, frames: int) -> List[int]:
    """The scheduled ticks of frames 0..frames-1 of a stream (one batch or many: the same)."""
    out, sched, state = [], 0, seed & 0xFFFFFFFF
    for _ in range(frames):
        out.append(sched)
        step, state = gap(arrivals, period, state)
        sched += step
    return out


Clock = Callable[[], int]


def spin_until(clock: Clock, target: int) -> int:
    """Busy-wait until ``clock() >= target``; the time read last."""
    now = clock()
    while now < target:
        now = clock()
    return now


def run_batch(req: Request, clock: Clock, frame: Callable[[], int], records: List[Record],
              wait: Optional[Callable[[int], int]] = None) -> Result:
    """One STREAM batch, as section 3.12 writes it: appends one Record per frame to ``records``
    (so a caller keeps the frames before a failure: ``frame`` raising ends the batch) and returns
    STREAM_OK's fields.

    ``clock`` reads ticks after the batch's start; ``frame`` runs one iteration of the application
    loop with Invoke and returns its invoke ticks; ``wait(target)`` waits until the clock reaches
    ``target`` and returns the time (default: a busy wait). The work spin is always busy."""
    wait = wait or (lambda target: spin_until(clock, target))
    sched, free, state, late, dropped = 0, req.busy, req.rng_state, 0, 0
    first = len(records)
    for i in range(req.frames):
        if i > 0 and (sched >= LIMIT_TICKS or clock() >= LIMIT_TICKS):
            break
        start = wait(max(sched, free))
        if req.policy == DROP_LATE and start - sched > req.deadline:
            records.append(Record(sched, start, start, 0, FLAG_DROPPED))
            dropped += 1
        else:
            spin_until(clock, start + req.work)
            invoke = frame()
            end = clock()
            flags = FLAG_LATE if end - sched > req.deadline else 0
            records.append(Record(sched, start, end, invoke, flags))
            late += flags
            free = end
        step, state = gap(req.arrivals, req.period, state)
        sched += step
    return Result(len(records) - first, late, dropped, sched, state, max(0, free - sched))
