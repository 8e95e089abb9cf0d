"""A stream's raw record and the figures computed from it (`harness stream`, `harness soak`).

A stream file (``results/<run-id>/streams/*.jsonl``) is a header line, the normalized messages of
device_agents/wire/PROTOCOL.md (stream mode) exactly as the board sent them, and an end line;
with ``--find-max`` each trial's messages follow a host ``trial`` line, its verdict a
``trial_end`` line, and the search's answer a ``find_max`` line. ``stream_from_lines`` rebuilds a
``StreamRecord`` from those lines, complete or cut short; ``figures`` computes every figure of the
--json contract from a trial's raw frames, so `harness show` recomputes them all.

Definitions (all times integer ns on the board's clock, frames relative to the schedule's origin):
- latency = end - scheduled (time spent queued counts); late = latency > deadline; dropped =
  skipped because its deadline had passed when the board was free (``--drop-late``); misses =
  late + dropped; percentages are of the frames handled (run or dropped).
- queueing delay = start - scheduled of each frame run.
- start jitter = start - scheduled of the frames that found the board idle (the frame before ended
  before their time, or the first frame): how precisely the schedule starts frames, the p99.
- sustained rate = (frames run - 1) / (last end - first end): completions per second.
- busy fraction = the sum of frames' service times (end - start) / the stream's span (origin to
  the last end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import stats
from harness.errors import MeasurementError
from harness.results.early_stopping import judge


@dataclass(frozen=True)
class Frames:
    """The frames of one stream as the board recorded them; ``start_ns``, ``end_ns`` and
    ``invoke_ns`` are None for a dropped frame. ``status``: o on time, l late, d dropped."""

    index: tuple[int, ...] = ()
    scheduled_ns: tuple[int, ...] = ()
    start_ns: tuple[int | None, ...] = ()
    end_ns: tuple[int | None, ...] = ()
    invoke_ns: tuple[int | None, ...] = ()
    status: str = ""

    def __post_init__(self) -> None:
        n = len(self.index)
        if any(len(c) != n for c in (self.scheduled_ns, self.start_ns, self.end_ns, self.invoke_ns, self.status)):
            raise MeasurementError("a stream message whose columns differ in length")

    def __len__(self) -> int:
        return len(self.index)

    def run(self) -> list[tuple[int, int, int]]:
        """(scheduled, start, end) of every frame that was run, in order."""
        return [(s, a, e) for s, a, e in zip(self.scheduled_ns, self.start_ns, self.end_ns, strict=True)
                if a is not None and e is not None]


def frames_of(chunks: Sequence[dict[str, Any]]) -> Frames:
    """The frames of a stream's ``stream`` messages, in frame order (a chunk the store could not
    read back leaves a gap, never a shift)."""
    rows: dict[int, tuple[int, int | None, int | None, int | None, str]] = {}
    for msg in chunks:
        first, count = int(msg["first"]), int(msg["count"])
        columns = [msg["scheduled_ns"], msg["start_ns"], msg["end_ns"], msg["invoke_ns"], msg["status"]]
        if any(len(c) != count for c in columns):
            raise MeasurementError(f"stream message of frames {first}..{first + count - 1} holds columns of "
                                   "other lengths than its count")
        for k in range(count):
            s, a, e, inv, st = (c[k] for c in columns)
            rows[first + k] = (int(s), _int(a), _int(e), _int(inv), str(st))
    order = sorted(rows)
    picked = [rows[i] for i in order]
    return Frames(index=tuple(order), scheduled_ns=tuple(r[0] for r in picked),
                  start_ns=tuple(r[1] for r in picked), end_ns=tuple(r[2] for r in picked),
                  invoke_ns=tuple(r[3] for r in picked), status="".join(r[4] for r in picked))


def _int(x: Any) -> int | None:
    return None if x is None else int(x)


@dataclass(frozen=True)
class BoardState:
    """One ``board_state`` message: where and when it was read, the hottest zone, the lowest CPU
    clock (a throttled core shows there first), the throttle flags; the rest raw. None: absent."""

    phase: str
    t_ns: int
    temp_c: float | None
    freq_khz: int | None
    throttled: int | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def board_state(msg: dict[str, Any]) -> BoardState:
    zones = msg.get("thermal") or []
    cpus = [c["cur_khz"] for c in (msg.get("cpufreq") or []) if c.get("cur_khz") is not None]
    throttled = msg.get("throttled")
    return BoardState(phase=str(msg.get("phase", "stream")), t_ns=int(msg["t_ns"]),
                      temp_c=max(float(z["temp_c"]) for z in zones) if zones else None,
                      freq_khz=min(int(c) for c in cpus) if cpus else None,
                      throttled=int(throttled) if throttled is not None else None,
                      raw={k: msg.get(k) for k in ("thermal", "cpufreq", "devfreq", "throttled", "read_ns")})


@dataclass(frozen=True)
class Trial:
    """One stream at one rate: the whole of a plain stream, one trial of --find-max.

    ``limit``: its host ``trial`` line (None for a plain stream); ``plan``: its ``stream_plan``
    (the schedule as the board ran it); ``verdict``: its ``trial_end`` line, or None."""

    index: int
    frames: Frames
    plan: dict[str, Any] = field(default_factory=dict)
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    states: tuple[BoardState, ...] = ()
    cooldown: dict[str, Any] | None = None
    warmup_ns: tuple[int, ...] = ()
    summary: dict[str, Any] | None = None
    limit: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None

    @property
    def period_ns(self) -> int | None:
        value = self.plan.get("period_ns") or (self.limit or {}).get("period_ns")
        return int(value) if value else None

    @property
    def rate_hz(self) -> float | None:
        return 1e9 / self.period_ns if self.period_ns else None

    @property
    def deadline_ns(self) -> int | None:
        value = self.plan.get("deadline_ns") or (self.limit or {}).get("deadline_ns")
        return int(value) if value else None


@dataclass(frozen=True)
class StreamRecord:
    """Everything one stream (or one --find-max search) measured, raw; rebuilt from its file."""

    target: str
    model: str
    model_sha256: str
    threads: int
    plan: dict[str, Any]
    trials: tuple[Trial, ...] = ()
    find_max: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    pushed_bytes: int = 0
    model_facts: dict[str, Any] = field(default_factory=dict)

    @property
    def hello(self) -> dict[str, Any]:
        return next((t.hello for t in self.trials if t.hello), {})

    @property
    def emulated(self) -> bool:
        return bool(self.hello.get("emulated", False))

    @property
    def model_info(self) -> dict[str, Any]:
        return next((t.model_info for t in self.trials if t.model_info), {})

    @property
    def runtime(self) -> str | None:
        return (self.hello.get("runtime") or {}).get("name")

    @property
    def runtime_version(self) -> str | None:
        return (self.hello.get("runtime") or {}).get("version")

    @property
    def schedule(self) -> str | None:
        """What the stream asked of the board, as a fact a comparison keeps equal: "fixed 30 Hz,
        deadline 33.3 ms, queue" (a search: its criterion), None without a schedule."""
        if self.searched:
            p, c = self.criterion
            return f"find-max, misses under {100 * (1 - p):g} % at {c:g}, {self.plan.get('policy')}"
        trial = self.main
        if trial is None or trial.period_ns is None or trial.deadline_ns is None:
            return None
        return (f"{self.plan.get('arrivals')} {1e9 / trial.period_ns:.6g} Hz, deadline "
                f"{trial.deadline_ns / 1e6:.6g} ms, {self.plan.get('policy')}")

    @property
    def searched(self) -> bool:
        return bool(self.plan.get("find_max"))

    @property
    def main(self) -> Trial | None:
        """The trial the figures describe: a plain stream's only one; with --find-max the passing
        trial at the largest sustainable rate (None when none passed)."""
        if not self.searched:
            return self.trials[0] if self.trials else None
        return self.bounds()[0]

    @property
    def criterion(self) -> tuple[float, float]:
        """(percentile, confidence) of a --find-max search's claim."""
        fm = self.plan.get("find_max") or {}
        return 1.0 - float(fm.get("max_late_pct", 1.0)) / 100.0, float(fm.get("confidence", 0.99))

    def verdicts(self) -> list[tuple[Trial, str | None]]:
        """Each trial with its verdict, recomputed from its frames (``judge``)."""
        p, c = self.criterion
        return [(t, judge(t, p, c).verdict if t.deadline_ns else None) for t in self.trials]

    def bounds(self) -> tuple[Trial | None, Trial | None]:
        """A search's answer, recomputed: the passing trial of the highest rate, and the failing
        trial of the lowest rate above it (either None when there is none)."""
        judged = self.verdicts()
        passes = [t for t, v in judged if v == "pass"]
        lower = max(passes, key=lambda t: t.rate_hz or 0.0) if passes else None
        floor = (lower.rate_hz or 0.0) if lower else 0.0
        fails = [t for t, v in judged if v == "fail" and (t.rate_hz or 0.0) > floor]
        return lower, min(fails, key=lambda t: t.rate_hz or 0.0) if fails else None

    @property
    def complete(self) -> bool:
        if self.error is not None or not self.trials:
            return False
        if self.searched:
            return self.find_max is not None
        return self.trials[0].summary is not None


TRIAL_FIELDS = {"hello": "hello", "model": "model_info", "stream_plan": "plan", "cooldown": "cooldown",
                "stream_summary": "summary", "trial_end": "verdict"}


def stream_from_lines(header: dict[str, Any], lines: Sequence[dict[str, Any]]) -> StreamRecord:
    """Rebuild a StreamRecord from a header and the lines after it, in order. A ``trial`` line
    starts the next trial; messages before any belong to trial 0 (a plain stream)."""
    trials: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    pushed = 0

    def current() -> dict[str, Any]:
        if not trials:
            trials.append({"index": 0, "chunks": [], "states": []})
        return trials[-1]

    for msg in lines:
        kind = msg.get("type")
        if kind == "trial":
            trials.append({"index": int(msg["index"]), "chunks": [], "states": [], "limit": msg})
        elif kind in TRIAL_FIELDS:
            current()[TRIAL_FIELDS[kind]] = msg
        elif kind == "stream":
            current()["chunks"].append(msg)
        elif kind == "board_state":
            current()["states"].append(board_state(msg))
        elif kind == "warmup":
            current()["warmup_ns"] = tuple(int(x) for x in msg["loop_ns"])
        elif kind == "push":
            pushed += int(msg.get("bytes", 0))
        elif kind == "find_max":
            fields["find_max"] = msg
        elif kind in ("error", "end"):
            _merge_error(fields, msg)
    built = tuple(Trial(frames=frames_of(t.pop("chunks")), states=tuple(t.pop("states")), **t) for t in trials)
    try:
        return StreamRecord(target=header["target"], model=header["model"], model_sha256=header["model_sha256"],
                            threads=int(header["threads"]), plan=header.get("plan", {}), trials=built,
                            pushed_bytes=pushed, model_facts=header.get("model_facts") or {}, **fields)
    except KeyError as exc:
        raise MeasurementError(f"stream header lacks {exc}") from exc


def _merge_error(fields: dict[str, Any], msg: dict[str, Any]) -> None:
    error = msg if msg.get("type") == "error" else msg.get("error")
    if error:
        merged = dict(fields.get("error") or {})
        merged.update({k: v for k, v in error.items() if v is not None and k not in ("v", "type")})
        fields["error"] = merged
    if msg.get("type") == "end":
        fields["end"] = msg


# --- the figures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    n: int
    median_ns: int
    p90_ns: int
    p99_ns: int
    max_ns: int

    def to_json(self) -> dict[str, int]:
        return {"n": self.n, "median_ns": self.median_ns, "p90_ns": self.p90_ns, "p99_ns": self.p99_ns,
                "max_ns": self.max_ns}


def latency_of(values: Sequence[int]) -> Latency | None:
    if not values:
        return None
    q = [round(stats.percentile(values, p)) for p in (50, 90, 99)]
    return Latency(len(values), q[0], q[1], q[2], max(values))


@dataclass(frozen=True)
class StreamFigures:
    """The figures of one trial (the --json contract's; README, `harness stream`)."""

    rate_hz: float
    deadline_ns: int
    frames: int
    processed: int
    late: int
    dropped: int
    latency: Latency | None
    queue_delay_median_ns: int | None
    start_jitter_ns: int | None  # p99 of start - scheduled over frames that found the board idle
    start_jitter_median_ns: int | None
    sustained_rate_hz: float | None
    busy_fraction: float | None
    service_median_ns: int | None  # end - start

    def pct(self, count: int) -> float:
        return 100.0 * count / self.frames if self.frames else 0.0

    @property
    def late_pct(self) -> float:
        return self.pct(self.late)

    @property
    def dropped_pct(self) -> float:
        return self.pct(self.dropped)

    @property
    def missed_pct(self) -> float:
        return self.pct(self.late + self.dropped)


def figures(trial: Trial) -> StreamFigures:
    """Every figure of ``trial`` from its raw frames (definitions: the module's docstring)."""
    frames = trial.frames
    deadline = trial.deadline_ns
    if trial.period_ns is None or deadline is None:
        raise MeasurementError(f"stream trial {trial.index} has no schedule (no stream_plan or trial line)")
    ran = frames.run()
    latencies = [e - s for s, _, e in ran]
    late = sum(1 for x in latencies if x > deadline)
    idle: list[int] = []
    previous_end: int | None = None
    for s, a, e in ran:
        if previous_end is None or previous_end <= s:
            idle.append(a - s)
        previous_end = e
    service = [e - a for _, a, e in ran]
    span = ran[-1][2] - min(frames.scheduled_ns) if ran else 0
    ends = [e for _, _, e in ran]
    return StreamFigures(
        rate_hz=1e9 / trial.period_ns, deadline_ns=deadline, frames=len(frames), processed=len(ran), late=late,
        dropped=len(frames) - len(ran), latency=latency_of(latencies),
        queue_delay_median_ns=round(stats.median([a - s for s, a, _ in ran])) if ran else None,
        start_jitter_ns=round(stats.percentile(idle, 99)) if idle else None,
        start_jitter_median_ns=round(stats.median(idle)) if idle else None,
        sustained_rate_hz=(len(ran) - 1) * 1e9 / (ends[-1] - ends[0]) if len(ran) > 1 and ends[-1] > ends[0] else None,
        busy_fraction=sum(service) / span if span > 0 else None,
        service_median_ns=round(stats.median(service)) if service else None)


def window_latencies(trial: Trial, windows: int) -> list[list[int]]:
    """The latencies of the frames run in each of ``windows`` equal spans of the schedule (by
    scheduled time), windows without a frame run left out: the units `harness compare` tests."""
    ran = trial.frames.run()
    if not ran:
        return []
    span = max(trial.frames.scheduled_ns) + 1
    groups: list[list[int]] = [[] for _ in range(windows)]
    for s, _, e in ran:
        groups[min(windows - 1, s * windows // span)].append(e - s)
    return [g for g in groups if g]
