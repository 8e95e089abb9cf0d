"""What to stream: the plan of `harness stream` and `harness soak` (a schedule of frames, the
board-side loop, --find-max), and one stream of the run matrix. A leaf beside harness.plan, which
holds the benchmark, profile, eval and power plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARRIVALS = ("fixed", "poisson")
POLICIES = ("queue", "drop-late")


@dataclass(frozen=True)
class StreamSchedule:
    """One stream as a board runs it, every field explicit on the wire (PROTOCOL.md, stream mode).

    ``period_ns``: the period of ``fixed`` arrivals, the mean gap of ``poisson`` ones (1e9 / rate,
    rounded). ``frames``: how many frames the schedule holds. ``deadline_ns``: after each frame's
    scheduled time. ``seed``: the Poisson generator's (xorshift32) and the random inputs'.
    """

    arrivals: str
    period_ns: int
    frames: int
    deadline_ns: int
    policy: str
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVALS or self.policy not in POLICIES:
            raise ValueError(f"arrivals {self.arrivals!r}, policy {self.policy!r}")
        if self.period_ns < 1 or self.frames < 1 or self.deadline_ns < 1:
            raise ValueError("a stream needs a period, a deadline and at least one frame")

    @property
    def rate_hz(self) -> float:
        return 1e9 / self.period_ns

    def as_dict(self) -> dict[str, Any]:
        return {"arrivals": self.arrivals, "period_ns": self.period_ns, "rate_hz": self.rate_hz,
                "frames": self.frames, "deadline_ns": self.deadline_ns, "policy": self.policy,
                "seed": self.seed}


@dataclass(frozen=True)
class Cooldown:
    """Before a find-max trial: wait until the board is back within 1 °C of ``target_temp_c``
    (its temperature before the first trial), at most ``max_s`` seconds; a board without a
    temperature (None) waits the whole ``max_s``."""

    target_temp_c: float | None
    max_s: float


@dataclass(frozen=True)
class FindMaxPlan:
    """`harness stream --find-max`: the largest rate whose late (and dropped) frames stay under
    ``max_late_pct`` %, claimed at ``confidence`` by LoadGen's binomial early-stopping rule.

    Defaults, and why: 1 % (the issue's criterion: a p99 claim, at least 662 frames per trial); a
    confidence of 0.99 (LoadGen's); the search ends when the bracket around the answer is within
    ``precision`` (2 %) of its upper end, which is far finer than what changes between runs of a
    board; ``max_trials`` bounds a search on a board whose answer keeps moving.
    """

    max_late_pct: float = 1.0
    confidence: float = 0.99
    cooldown_s: float = 0.0
    precision: float = 0.02
    max_trials: int = 20

    @property
    def percentile(self) -> float:
        """The claim, as a fraction: frames on time at least this often (0.99 for 1 %)."""
        return 1.0 - self.max_late_pct / 100.0

    def as_dict(self) -> dict[str, Any]:
        return {"max_late_pct": self.max_late_pct, "confidence": self.confidence,
                "cooldown_s": self.cooldown_s, "precision": self.precision, "max_trials": self.max_trials}


@dataclass(frozen=True)
class StreamPlan:
    """What `harness stream` / `harness soak` measure, sent explicitly to the board.

    ``rate_hz``: frames per second (a Poisson stream's mean rate; with --find-max the first
    trial's). ``duration_s``: the stream's length (with --find-max, the longest a trial may run).
    ``deadline_ns`` None: one period. ``source``: how the schedule was asked for (``rate``,
    ``poisson``, ``camera``, ``audio``); ``window_s`` the audio window each frame covers (the
    hop is the period). Defaults, and why:
    - 10 warm-up iterations and at least 0.2 s, as `harness run`, apart from the frames;
    - ``spin_us`` 500: the loop sleeps until 0.5 ms before a frame and spins the rest, since a
      Linux sleep overshoots by 50–100 µs (timer slack) and by more on a loaded board;
    - ``state_interval_s`` 1.0: the board's temperatures and clocks once a second is enough to see
      heat build over minutes and costs well under 1 % of a frame budget.
    """

    arrivals: str = "fixed"
    rate_hz: float = 30.0
    duration_s: float = 30.0
    deadline_ns: int | None = None
    policy: str = "queue"
    source: str = "rate"
    window_s: float | None = None
    warmup: int = 10
    warmup_time_s: float = 0.2
    seed: int = 0
    xnnpack: bool = True
    inputs: Path | None = None
    pipeline: Path | None = None
    device_work_us: int = 0
    spin_us: int = 500
    state_interval_s: float = 1.0
    find_max: FindMaxPlan | None = None
    command: str = "stream"  # or "soak": which report the run asks for

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVALS or self.policy not in POLICIES:
            raise ValueError(f"arrivals {self.arrivals!r}, policy {self.policy!r}")
        if not self.rate_hz > 0 or not self.duration_s > 0:
            raise ValueError("a stream needs a positive rate and duration")

    def schedule(self, rate_hz: float | None = None, frames: int | None = None) -> StreamSchedule:
        """The schedule at ``rate_hz`` (default: the plan's), ``frames`` long (default: the
        plan's duration at that rate, at least one frame)."""
        rate = rate_hz or self.rate_hz
        period = max(1, round(1e9 / rate))
        n = frames if frames is not None else max(1, round(self.duration_s * 1e9 / period))
        return StreamSchedule(self.arrivals, period, n, self.deadline_ns or period, self.policy, self.seed)

    def as_dict(self) -> dict[str, Any]:
        return {"arrivals": self.arrivals, "rate_hz": self.rate_hz, "duration_s": self.duration_s,
                "deadline_ns": self.deadline_ns, "policy": self.policy, "source": self.source,
                "window_s": self.window_s, "warmup": self.warmup, "warmup_time_s": self.warmup_time_s,
                "seed": self.seed, "xnnpack": self.xnnpack,
                "inputs": str(self.inputs) if self.inputs else None,
                "pipeline": str(self.pipeline) if self.pipeline else None,
                "device_work_us": self.device_work_us, "spin_us": self.spin_us,
                "state_interval_s": self.state_interval_s,
                "find_max": self.find_max.as_dict() if self.find_max else None, "command": self.command}


@dataclass(frozen=True)
class StreamJob:
    """One stream of the matrix: a model on a target with a thread count, and the schedule the
    driver runs now (``schedule``; a --find-max trial replaces it, and ``cooldown``, per trial).
    A driver reads ``schedule``, ``cooldown`` and the plan's board-side fields (warmup,
    warmup_time_s, seed, xnnpack, inputs, pipeline, device_work_us, spin_us, state_interval_s),
    never the rate or duration."""

    target: str
    model: Path
    model_sha256: str
    threads: int
    plan: StreamPlan
    schedule: StreamSchedule
    cooldown: Cooldown | None = None
    model_facts: dict[str, Any] = field(default_factory=dict, compare=False)
