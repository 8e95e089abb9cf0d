"""What to measure: the plan sent to every board, and one cell of the run matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Per mode and per process with --until-stable: about 0.4 s of samples per process. What changes
# between processes (a few % here) dwarfs what more samples of one process would settle (a
# median of thousands of samples moves well under 1 %), so the time goes into more processes:
# with start-up and warm-up a process costs about a second, and tens of them fit in the default
# --max-duration of 60 s.
STABLE_DURATION_S = 0.2
MIN_STABLE_PROCESSES = 3  # fewer medians give a t-interval too wide to stop on (t975(1) = 12.7)
RANDOM_EVAL_SAMPLES = 16  # the timed loop's own pool of seeded random inputs (tflite_agent.INPUT_POOL)


@dataclass(frozen=True)
class EvalPlan:
    """The evaluation pass (`harness run --eval`): once per benchmark, after its timed processes,
    every sample is run once, untimed, and its raw outputs come back from the board.

    ``source``: "file" (the --eval file: arrays ``x`` and ``y``, or keyed by input name plus
    ``y``), "inputs" (the timed loop's --inputs file) or "random" (the seeded random inputs of the
    timed loop, ``samples`` of them). ``samples``: at most this many, None for all of the file's.
    """

    source: str
    path: Path | None = None
    samples: int | None = None

    def __post_init__(self) -> None:
        if self.source not in ("file", "inputs", "random") or (self.source != "random") != (self.path is not None):
            raise ValueError(f"eval source {self.source!r} with path {self.path}: a file source needs its path")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"an eval pass runs at least 1 sample, not {self.samples}")

    @property
    def label(self) -> str:
        """What the results call the source: the --eval file's name, "inputs" or "random"."""
        return self.path.name if self.source == "file" and self.path else self.source

    def as_dict(self) -> dict[str, Any]:
        samples = RANDOM_EVAL_SAMPLES if self.source == "random" and self.samples is None else self.samples
        return {"source": self.label, "path": str(self.path) if self.path else None, "samples": samples}


@dataclass(frozen=True)
class EvalInputs:
    """One job's eval samples, prepared on the host for its model (harness.models.evalset).

    ``path``: an .npz keyed by the model's input names, N stacked samples in the model's own
    dtypes (real values quantized with the model's own scale and zero point), staged on the board
    like an --inputs file. ``set_sha256`` identifies the samples before that conversion: a float32
    base and its quantized variants that got the same real-valued samples share it. The labels
    stay on the host.
    """

    path: Path
    source: str  # EvalPlan.label
    samples: int
    set_sha256: str
    labels: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``eval_set`` line that opens the pass in the store (labels included)."""
        return {"source": self.source, "file": self.path.name, "samples": self.samples,
                "set_sha256": self.set_sha256, "labels": list(self.labels) if self.labels is not None else None}


@dataclass(frozen=True)
class PowerPlan:
    """The power pass of a benchmark on a board with a power reader (targets.toml ``power``).

    After the benchmark's timed processes and its evaluation pass, in the same turn on the board,
    one agent process samples the board's power every ``interval_s`` seconds, with timestamps:
    first while idle (it sleeps), then while the model Invokes back to back. Each of the two
    windows lasts ``window_s`` seconds and starts ``settle_s`` after its kind of load began, so the
    CPU's clock and the sensor's averaging have caught up. Reading a sensor (``vcgencmd`` starts a
    process) costs CPU time, so it never happens during a timed block.

    Defaults, and why: 5 samples a second is what ``vcgencmd`` keeps up with comfortably (a call
    takes a few ms) and what INA3221 monitors average over on Jetsons (tens of ms per reading);
    3 s windows give 15 samples each, enough for a mean within a few % on a steady load.
    """

    source: str  # config_values.POWER_SOURCES
    window_s: float = 3.0
    settle_s: float = 1.0
    interval_s: float = 0.2

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.settle_s < 0 or self.interval_s <= 0:
            raise ValueError(f"power windows of {self.window_s} s, settle {self.settle_s} s, "
                             f"interval {self.interval_s} s")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "window_s": self.window_s, "settle_s": self.settle_s,
                "interval_s": self.interval_s}


@dataclass(frozen=True)
class Plan:
    """What to measure, sent explicitly to the device (no hidden defaults on the board).

    Defaults, and why:
    - warmup 10 iterations and at least 0.2 s: XNNPACK packs weights and caches fill during the
      first few invokes; 0.2 s also lets a CPU governor ramp up before samples count.
    - duration 1.0 s per mode, at least 100 iterations: enough samples for a stable p99 on
      millisecond models while a 3-model default run stays under a minute.
    - 10 blocks: with and without Invoke alternate (ABBA) so drift and heat hit both modes alike.
    - 1 process: every process (a fresh agent process; on a microcontroller the model loaded into
      a fresh interpreter) runs the whole plan: warm-up, then the blocks. With ``processes`` > 1
      the interval of the median Invoke comes from the per-process medians.
    - ``until_stable_pct`` None: with a value, processes are added (at least ``processes``, which
      is then at least MIN_STABLE_PROCESSES) until the 95 % interval of the median Invoke is
      within ± that many % of it, or until ``max_duration_s`` of wall time (host clock) would be
      passed by the next process (the first process always runs).
    - ``eval`` None: no evaluation pass, so a plain run costs what it did; with --eval every
      sample of the file runs once after the timed part (EvalPlan).
    - ``power_window_s`` 3 s: the length of each window of the power pass on boards with a power
      reader (PowerPlan); boards without one never run the pass.
    - ``rate_hz`` None: with a required rate (--rate, inferences per second) the results carry
      the duty cycle at that rate (harness.results.energy); nothing on the board changes.
    """

    warmup: int = 10
    warmup_time_s: float = 0.2
    iterations: int = 0  # per mode; 0 = derive from duration_s
    duration_s: float = 1.0  # per mode, used when iterations == 0
    min_iterations: int = 100
    max_iterations: int = 20_000  # per mode: ~200 samples beyond p99, ~1 MB of raw samples on disk
    blocks: int = 10
    settle: int = 1  # per block, run but kept apart: talking to the host between blocks evicts caches
    seed: int = 0
    xnnpack: bool = True
    inputs: Path | None = None
    pipeline: Path | None = None
    processes: int = 1
    until_stable_pct: float | None = None
    max_duration_s: float = 60.0
    eval: EvalPlan | None = None  # the evaluation pass after the timed part; None: none
    power_window_s: float = 3.0
    rate_hz: float | None = None

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(f"a plan runs at least 1 process, not {self.processes}")
        if self.until_stable_pct is not None and (self.until_stable_pct <= 0 or self.iterations
                                                  or self.processes < MIN_STABLE_PROCESSES):
            raise ValueError("until_stable_pct needs a positive value, iterations 0 and "
                             f"at least {MIN_STABLE_PROCESSES} processes")
        if self.power_window_s <= 0 or (self.rate_hz is not None and self.rate_hz <= 0):
            raise ValueError(f"a power window of {self.power_window_s} s and a rate of {self.rate_hz}/s: "
                             "both must be above 0")

    def as_dict(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "warmup_time_s": self.warmup_time_s,
            "iterations": self.iterations,
            "duration_s": self.duration_s,
            "min_iterations": self.min_iterations,
            "max_iterations": self.max_iterations,
            "blocks": self.blocks,
            "settle": self.settle,
            "seed": self.seed,
            "xnnpack": self.xnnpack,
            "inputs": str(self.inputs) if self.inputs else None,
            "pipeline": str(self.pipeline) if self.pipeline else None,
            "processes": self.processes,
            "until_stable_pct": self.until_stable_pct,
            "max_duration_s": self.max_duration_s,
            "eval": self.eval.as_dict() if self.eval else None,
            "power_window_s": self.power_window_s,
            "rate_hz": self.rate_hz,
        }


@dataclass(frozen=True)
class Job:
    """One cell of the matrix: a model on a target with a thread count."""

    target: str
    model: Path
    model_sha256: str
    threads: int
    plan: Plan
    # What the host knows of the model (harness analyze totals: flops, macs, params, scheme, ...),
    # stored with the results so tables can show achieved GFLOP/s; empty when it could not be read.
    model_facts: dict[str, Any] = field(default_factory=dict, compare=False)
    # The eval pass's samples for this model (harness.scenarios.benchmark.prepare_eval); None: no pass.
    eval: EvalInputs | None = field(default=None, compare=False)
    # The power pass, on a target with a power reader (targets.toml power); None: none.
    power: PowerPlan | None = field(default=None, compare=False)
    # A job of a board pool (harness.scenarios.pool): the pool's name, ``target`` the place that
    # runs it, and the places whose failure moved it here, in order.
    pool: str | None = None
    moved_from: tuple[str, ...] = ()

    def placement(self) -> dict[str, Any]:
        """What the record's header says of a pool job ({} for the others, whose header is unchanged)."""
        return {"pool": self.pool, "moved_from": list(self.moved_from)} if self.pool else {}


@dataclass(frozen=True)
class ProfilePlan:
    """What per-layer profiling measures (`harness analyze --profile`), sent explicitly to the board.

    Defaults, and why:
    - ``rounds`` None: adaptive. The agent runs in *sessions* (one process each) until the sum
      check's standard error is under ``target_se`` (2 %: the layers then add up to the whole within
      a few % from noise alone) or the next session would end after ``max_time_s`` (60 s: about
      what a full profile of a ms-scale 50-op model needs on a quiet board; the output says which
      came first). ``rounds`` N: exactly N rounds in one session, no time bound (``target_se`` and
      ``max_time_s`` unused).
    - 5 ms of Invokes per model per round, in 5 turns of at least 3 Invokes: prefix i and i+1 are
      timed right beside each other, and a turn's median shrugs off one Invoke the OS interrupted.
      Turns alternate forward and reverse order, so a drift within a turn cancels between them.
    - XNNPACK off: every op its own kernel. With it on, the delegate's partitions are the rows.
    - clock "wall" (perf_counter_ns); "cpu" is the Invoking thread's CPU time, 1 thread only.
    """

    threads: int = 1
    xnnpack: bool = False
    rounds: int | None = None
    min_time_s: float = 0.005
    slices: int = 5
    min_per_slice: int = 3
    seed: int = 0
    clock: str = "wall"
    target_se: float = 0.02
    max_time_s: float = 60.0

    def __post_init__(self) -> None:
        if self.rounds is not None and self.rounds < 1:
            raise ValueError("rounds must be at least 1 (or None: adaptive)")
        if self.target_se <= 0 or self.max_time_s <= 0:
            raise ValueError("target_se and max_time_s must be positive")

    @property
    def adaptive(self) -> bool:
        return self.rounds is None

    def as_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "xnnpack": self.xnnpack, "rounds": self.rounds,
                "min_time_s": self.min_time_s, "slices": self.slices, "min_per_slice": self.min_per_slice,
                "seed": self.seed, "clock": self.clock, "target_se": self.target_se,
                "max_time_s": self.max_time_s}


@dataclass(frozen=True)
class ProfileSession:
    """One agent process of a profile job: ``rounds`` rounds, fewer if ``max_time_s`` (seconds on
    the board since the agent started; 0: no bound) would be passed by one more."""

    index: int
    rounds: int
    max_time_s: float = 0.0


@dataclass(frozen=True)
class ProfileJob:
    """Per-layer profiling of one model on one target: its prefix models (prefix 0..N, in that
    order; the original model is timed after them) and what the per-layer maths needs of each op."""

    target: str
    model: Path
    model_sha256: str
    plan: ProfilePlan
    prefixes: tuple[Path, ...]
    # Each op's {"index", "type", "flops"} (harness analyze), stored with the raw rounds so that a
    # stored profile is recomputed without the model file.
    ops: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    # The agent process to run now (harness.scenarios.profile sets it per session); None: one
    # process of ``plan.rounds`` rounds.
    session: ProfileSession | None = field(default=None, compare=False)

    @property
    def threads(self) -> int:
        return self.plan.threads
