"""The largest sustainable rate (`harness stream --find-max`), searched as LoadGen's
FindPeakPerformance searches the Server scenario's peak QPS (mlcommons/inference, loadgen.cc).

LoadGen runs the user's target rate, widens an upper bound exponentially until a run fails its
latency constraint (``FindBoundaries``), then bisects between the last passing and the first
failing rate (``FindPeakPerformanceBinarySearch``) until the bounds agree to a precision; the
answer is the lower bound. Here, as there:

1. the first trial runs at the plan's rate; while nothing has passed, the next trial halves the
   lowest failing rate;
2. while no failing rate lies above the highest passing one, the bound is widened: to 1.25 times
   the board's capacity, 1 / the median service time the trials so far measured (where LoadGen
   doubles blindly, the frames' own service time gets there in one trial), or, when that is not
   above the passing rate (a governor raising the clock under load), to twice it;
3. then bisection, until (upper - lower) / upper is within the plan's precision (2 %), or
   ``max_trials`` trials ran.

Each trial is one stream at one rate (a fresh agent, its own ``trial`` line in the store) that
stops as soon as LoadGen's binomial early-stopping rule decides it (harness.results.early_stopping.Judge):
a pass needs at least 64 frames for a p90 claim, 662 for p99; a fail is clear once no later run
of on-time frames could pass within the trial's length. A trial runs at most the plan's duration
at its rate, and never fewer than 3 times the frames a claim needs. With ``cooldown_s`` the board
cools before every trial after the first until it is back within 1 °C of its temperature before
the first, or ``cooldown_s`` passes (the agent waits on the board; PROTOCOL.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from harness import stats
from harness.lab.drivers.base import Emit, Message, Streamer
from harness.results.early_stopping import Judge, frames_needed
from harness.stream_plan import Cooldown, StreamJob

WIDEN_FACTOR = 1.25  # the first upper bound, above the board's measured capacity
TRIAL_FLOOR = 3  # a trial may run at least this many times the frames a claim needs
LOWEST_RATE_HZ = 0.01  # a search that halves below this gives up: the board cannot keep any rate


@dataclass(frozen=True)
class Tried:
    """A finished trial as the search sees it: its rate, whether it passed (None: undecided,
    cancelled), the median service time of its frames (ns, None without frames)."""

    rate_hz: float
    passed: bool | None
    service_ns: float | None = None


def next_rate(tried: Sequence[Tried], start_hz: float, precision: float, max_trials: int) -> float | None:
    """The rate of the next trial, or None when the search is over (module docstring)."""
    if not tried:
        return start_hz
    if len(tried) >= max_trials:
        return None
    passes = [t.rate_hz for t in tried if t.passed]
    fails = [t.rate_hz for t in tried if t.passed is False]
    if not passes:
        low = min(fails) / 2 if fails else None
        return low if low is not None and low >= LOWEST_RATE_HZ else None
    lower = max(passes)
    above = [r for r in fails if r > lower]
    if not above:
        services = [t.service_ns for t in tried if t.service_ns]
        guess = WIDEN_FACTOR * 1e9 / stats.median(services) if services else 0.0
        return guess if guess > lower * (1 + precision) else 2 * lower
    upper = min(above)
    if (upper - lower) / upper <= precision:
        return None
    return (lower + upper) / 2


@contextlib.contextmanager
def linked(parent: threading.Event) -> Iterator[threading.Event]:
    """An event of its own that is also set when ``parent`` is (Ctrl-C): the scenario sets it to
    end one trial early, the runner's cancel ends them all."""
    child = threading.Event()
    over = threading.Event()

    def forward() -> None:
        while not over.is_set():
            if parent.wait(0.1):
                child.set()
                return

    thread = threading.Thread(target=forward, daemon=True, name="trial-cancel")
    thread.start()
    try:
        yield child
    finally:
        over.set()
        thread.join()


def run_trial(driver: Streamer, job: StreamJob, emit: Emit, cancel: threading.Event, index: int,
              rate_hz: float, cooldown: Cooldown | None) -> tuple[Tried, list[Message]]:
    """One trial at ``rate_hz``: its ``trial`` line, the driver's stream until Judge decides, its
    ``trial_end`` line. Returns what the search needs and the trial's own messages."""
    fm = job.plan.find_max
    assert fm is not None
    floor = TRIAL_FLOOR * frames_needed(0, fm.percentile, fm.confidence)
    planned = job.plan.schedule(rate_hz)
    schedule = replace(planned, frames=max(planned.frames, floor))
    judge = Judge(schedule.frames, fm.percentile, fm.confidence)
    emit({"type": "trial", "index": index, "rate_hz": schedule.rate_hz, "period_ns": schedule.period_ns,
          "deadline_ns": schedule.deadline_ns, "frames": schedule.frames, "host_measured": True})
    lines: list[Message] = []
    with linked(cancel) as stop:
        def keep(msg: Message) -> None:
            lines.append(msg)
            emit(msg)
            if msg.get("type") == "stream" and judge.verdict is None:
                for s, e in zip(msg["scheduled_ns"], msg["end_ns"], strict=True):
                    judge.add(e is None or e - s > schedule.deadline_ns)
                if judge.verdict is not None:
                    stop.set()  # the answer is clear: the driver stops the board's stream

        driver.stream(replace(job, schedule=schedule, cooldown=cooldown), keep, stop)
    early = judge.verdict is not None and judge.frames < schedule.frames
    by = ("early_pass" if judge.verdict == "pass" else "early_fail") if early else \
        ("end" if judge.verdict is not None else "stopped")
    emit({"type": "trial_end", "index": index, "verdict": judge.verdict, "by": by, "frames": judge.frames,
          "misses": judge.misses, "needed": judge.need, "host_measured": True})
    service = [e - a for m in lines if m.get("type") == "stream"
               for a, e in zip(m["start_ns"], m["end_ns"], strict=True) if a is not None and e is not None]
    passed = None if judge.verdict is None else judge.verdict == "pass"
    return Tried(schedule.rate_hz, passed, stats.median(service) if service else None), lines


def start_temperature(lines: Sequence[Message]) -> float | None:
    """The board's hottest zone before the first trial's first frame (its first board_state), or
    the temperature its hello reported."""
    for msg in lines:
        if msg.get("type") == "board_state" and msg.get("thermal"):
            return max(float(z["temp_c"]) for z in msg["thermal"])
    hello = next((m for m in lines if m.get("type") == "hello"), {})
    temp = (hello.get("board") or {}).get("temp_c")
    return float(temp) if temp is not None else None


def search(driver: Streamer, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
    """Run trials until ``next_rate`` says the answer is found; end with the ``find_max`` line."""
    fm = job.plan.find_max
    assert fm is not None
    tried: list[Tried] = []
    indexed: list[tuple[int, Tried]] = []
    cooldown: Cooldown | None = None
    while not cancel.is_set():
        rate = next_rate(tried, job.plan.rate_hz, fm.precision, fm.max_trials)
        if rate is None:
            break
        result, lines = run_trial(driver, job, emit, cancel, len(tried), rate, cooldown)
        if not tried and fm.cooldown_s > 0:
            cooldown = Cooldown(start_temperature(lines), fm.cooldown_s)
        indexed.append((len(tried), result))
        tried.append(result)
    if cancel.is_set():
        return
    passes = [(i, t) for i, t in indexed if t.passed]
    lower = max(passes, key=lambda p: p[1].rate_hz) if passes else None
    above = [(i, t) for i, t in indexed if t.passed is False and (lower is None or t.rate_hz > lower[1].rate_hz)]
    upper = min(above, key=lambda p: p[1].rate_hz) if above else None
    emit({"type": "find_max", "max_sustainable_rate_hz": lower[1].rate_hz if lower else None,
          "lower": lower[0] if lower else None, "upper": upper[0] if upper else None, "trials": len(tried),
          "max_late_pct": fm.max_late_pct, "confidence": fm.confidence, "percentile": fm.percentile,
          "host_measured": True})
