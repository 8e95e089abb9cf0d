"""Heat over time: a stream's latency in windows beside the board's temperature and clocks.

Pure functions over a stored stream (harness.results.stream.Trial): its frames and its
``board_state`` samples (PROTOCOL.md, stream mode). They answer what a soak asks: does latency
drift as the board heats, when does throttling (Raspberry Pi firmware flags) or a drop of the CPU
clock begin, and how far is the steady-state latency from the cold one. The same functions give
`harness report` its curves (``stream_timeline``, ``thermal_curve``; ``rate_curve`` for
--find-max trials).

What each figure means:
- a window is ``window_s`` of the schedule (frames by scheduled time); its latency is the median
  and p99 of the frames run in it, its temperature the hottest zone's mean over the states read
  in it, its clock the lowest CPU clock read in it;
- cold latency: the first window's median; steady-state latency: the median of the frames of the
  last quarter of the stream (at least its last window), once the board has had time to heat;
- throttling onset: the first state whose firmware flags say the board is throttled now (bits 1,
  2, 3: ARM frequency capped, throttled, soft temperature limit); a clock drop: the first state
  whose lowest CPU clock is under ``CLOCK_DROP`` of the highest seen in the first window
  (a governor that idles the clock between frames shows here too: read it beside the governor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness import stats
from harness.results.stream import BoardState, StreamRecord, Trial, figures

CLOCK_DROP = 0.95  # a CPU clock this far under its early maximum counts as a drop
MAX_WINDOWS = 12  # about this many windows, so a soak's table stays short
MIN_WINDOW_S = 5.0

# Raspberry Pi firmware's get_throttled bits (the Raspberry Pi documentation, vcgencmd).
THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}
THROTTLED_NOW = 0b1110  # capped, throttled, soft limit: the board runs slower now
SINCE_BOOT_SHIFT = 16  # bits 16-19: the same four, occurred since boot


def throttle_flags(value: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(what holds now, what occurred since boot) of a `vcgencmd get_throttled` value."""
    if value is None:
        return (), ()
    now = tuple(name for bit, name in THROTTLE_BITS.items() if value >> bit & 1)
    since = tuple(name for bit, name in THROTTLE_BITS.items() if value >> (bit + SINCE_BOOT_SHIFT) & 1)
    return now, since


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    frames: int
    misses: int
    median_ns: int | None
    p99_ns: int | None
    temp_c: float | None
    freq_khz: int | None
    throttled: bool | None  # None: the board has no flags

    def to_json(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "frames": self.frames,
                "misses": self.misses, "median_ns": self.median_ns, "p99_ns": self.p99_ns,
                "temp_c": None if self.temp_c is None else round(self.temp_c, 2),
                "freq_khz": self.freq_khz, "throttled": self.throttled}


def window_length(trial: Trial) -> float:
    """About MAX_WINDOWS windows over the stream, at least MIN_WINDOW_S seconds each."""
    span = (max(trial.frames.scheduled_ns) if len(trial.frames) else 0) / 1e9
    return max(MIN_WINDOW_S, math.ceil(span / MAX_WINDOWS))


def windows(trial: Trial, window_s: float | None = None) -> list[Window]:
    """The stream cut into windows of ``window_s`` seconds of its schedule (default:
    ``window_length``), each with its frames' latency and the board's state read in it."""
    size = window_s or window_length(trial)
    deadline = trial.deadline_ns or 0
    f = trial.frames
    count = int(max(f.scheduled_ns) / 1e9 // size) + 1 if len(f) else 0
    lat: list[list[int]] = [[] for _ in range(count)]
    misses = [0] * count
    totals = [0] * count
    for s, e in zip(f.scheduled_ns, f.end_ns, strict=True):
        w = int(s / 1e9 // size)
        totals[w] += 1
        if e is None or e - s > deadline:
            misses[w] += 1
        if e is not None:
            lat[w].append(e - s)
    states = [s for s in trial.states if s.phase == "stream"]
    out = []
    for w in range(count):
        lo, hi = w * size, (w + 1) * size
        inside = [s for s in states if lo <= s.t_ns / 1e9 < hi]
        temps = [s.temp_c for s in inside if s.temp_c is not None]
        freqs = [s.freq_khz for s in inside if s.freq_khz is not None]
        flags = [s.throttled for s in inside if s.throttled is not None]
        out.append(Window(lo, hi, totals[w], misses[w],
                          round(stats.median(lat[w])) if lat[w] else None,
                          round(stats.percentile(lat[w], 99)) if lat[w] else None,
                          sum(temps) / len(temps) if temps else None, min(freqs) if freqs else None,
                          any(x & THROTTLED_NOW for x in flags) if flags else None))
    return out


@dataclass(frozen=True)
class Soak:
    """What a soak found: the windows, the onsets (seconds after the origin, None: never) and the
    cold against the steady-state latency; ``absent``: what the board could not report."""

    windows: tuple[Window, ...]
    cold_ns: int | None
    steady_ns: int | None
    throttle_onset_s: float | None
    throttle_flags: tuple[str, ...]
    clock_drop_onset_s: float | None
    clock_start_khz: int | None
    clock_low_khz: int | None
    temp_start_c: float | None
    temp_max_c: float | None
    absent: tuple[str, ...]

    @property
    def steady_vs_cold(self) -> float | None:
        return self.steady_ns / self.cold_ns if self.cold_ns and self.steady_ns else None

    def to_json(self) -> dict[str, Any]:
        return {"windows": [w.to_json() for w in self.windows], "cold_median_ns": self.cold_ns,
                "steady_median_ns": self.steady_ns,
                "steady_vs_cold": None if self.steady_vs_cold is None else round(self.steady_vs_cold, 4),
                "throttle_onset_s": self.throttle_onset_s, "throttle_flags": list(self.throttle_flags),
                "clock_drop_onset_s": self.clock_drop_onset_s, "clock_start_khz": self.clock_start_khz,
                "clock_low_khz": self.clock_low_khz, "temp_start_c": self.temp_start_c,
                "temp_max_c": self.temp_max_c, "absent": list(self.absent)}


def absent_readings(states: Sequence[BoardState]) -> tuple[str, ...]:
    """What none of the states held: "thermal zones", "CPU clocks", "throttle flags"."""
    have = {k for s in states for k, v in s.raw.items() if v is not None}
    names = (("thermal", "thermal zones"), ("cpufreq", "CPU clocks"), ("throttled", "throttle flags"))
    return tuple(label for key, label in names if key not in have)


def soak(trial: Trial, window_s: float | None = None) -> Soak:
    """The soak figures of a stream (the module's docstring says what each means)."""
    ws = windows(trial, window_s)
    states = [s for s in trial.states if s.phase == "stream"]
    f = trial.frames
    cutoff = max(f.scheduled_ns) * 0.75 if len(f) else 0
    last_start = ws[-1].start_s * 1e9 if ws else 0
    tail = [e - s for s, e in zip(f.scheduled_ns, f.end_ns, strict=True)
            if e is not None and s >= min(cutoff, last_start)]
    throttled = next((s for s in states if s.throttled is not None and s.throttled & THROTTLED_NOW), None)
    first_window = ws[0].end_s * 1e9 if ws else 0
    early = [s.freq_khz for s in states if s.freq_khz is not None and s.t_ns < first_window]
    start_khz = max(early) if early else None
    drop = next((s for s in states if start_khz and s.freq_khz is not None
                 and s.freq_khz < CLOCK_DROP * start_khz), None)
    freqs = [s.freq_khz for s in states if s.freq_khz is not None]
    temps = [s.temp_c for s in states if s.temp_c is not None]
    return Soak(windows=tuple(ws), cold_ns=ws[0].median_ns if ws else None,
                steady_ns=round(stats.median(tail)) if tail else None,
                throttle_onset_s=round(throttled.t_ns / 1e9, 3) if throttled else None,
                throttle_flags=throttle_flags(throttled.throttled)[0] if throttled else (),
                clock_drop_onset_s=round(drop.t_ns / 1e9, 3) if drop else None,
                clock_start_khz=start_khz, clock_low_khz=min(freqs) if freqs else None,
                temp_start_c=temps[0] if temps else None, temp_max_c=max(temps) if temps else None,
                absent=absent_readings(trial.states))


# --- curves for `harness report` ---------------------------------------------------------------

@dataclass(frozen=True)
class TimelinePoint:
    t_s: float  # scheduled time after the origin
    latency_ns: int | None  # None: dropped
    status: str  # o on time, l late, d dropped


def stream_timeline(record: StreamRecord) -> list[TimelinePoint]:
    """Every frame of the stream the figures describe, by scheduled time: its latency and
    whether it met its deadline (late and dropped frames are the misses to mark)."""
    trial = record.main
    if trial is None:
        return []
    deadline = trial.deadline_ns or 0
    out = []
    for s, e in zip(trial.frames.scheduled_ns, trial.frames.end_ns, strict=True):
        status = "d" if e is None else ("l" if e - s > deadline else "o")
        out.append(TimelinePoint(s / 1e9, None if e is None else e - s, status))
    return out


@dataclass(frozen=True)
class RatePoint:
    rate_hz: float
    median_ns: int | None
    p99_ns: int | None
    missed_pct: float
    verdict: str | None  # pass | fail (--find-max), None for a plain stream


def rate_curve(record: StreamRecord) -> list[RatePoint]:
    """Latency against rate: one point per trial (a plain stream is one), by rate; with
    --find-max the passing trials reach up to the largest sustainable rate."""
    points = []
    for t in record.trials:
        if not t.period_ns or not len(t.frames):
            continue
        f = figures(t)
        points.append(RatePoint(f.rate_hz, f.latency.median_ns if f.latency else None,
                                f.latency.p99_ns if f.latency else None, f.missed_pct,
                                (t.verdict or {}).get("verdict")))
    return sorted(points, key=lambda p: p.rate_hz)


def thermal_curve(record: StreamRecord, window_s: float | None = None) -> list[Window]:
    """Temperature and CPU clock against latency, window by window, of the stream the figures
    describe (``windows``)."""
    trial = record.main
    return windows(trial, window_s) if trial is not None else []
