"""The measurement data model: one benchmark's raw record, rebuilt from the messages on disk.

A benchmark file (``results/<run-id>/benchmarks/*.jsonl``) is a header line, the normalized
messages of device_agents/wire/PROTOCOL.md exactly as the board sent them, and an end line. The
``Benchmark`` below is derived from those lines and never stored on its own, so a run cut short
by Ctrl-C or a crash is read back the same way as a complete one.

Schema history (``SCHEMA_VERSION``, in every header and run.json; layout in harness.results.store):
- 1: first version.
- 2: runs of several kinds in one store. run.json has ``kind``: "benchmark" (``harness run``,
  files under ``benchmarks/``) or "profile" (``harness analyze --profile``, files under
  ``profiles/``: a header, the agent's profile-mode messages verbatim, every ``round`` of raw
  samples included, an end line). Every ``--json`` object carries ``kind`` too. A version 1 run
  has no ``kind`` and is read as a benchmark run; its files are read unchanged.
  Added later, without a new version: run.json of a ``failed`` run has ``error`` (the message); the
  end line's and ``--json``'s ``error`` has ``hint`` and ``file`` for errors found on the host too.
- 2 (unchanged version): run.json of an interrupted run names the signal that stopped it:
  ``"signal"``: "SIGINT" (Ctrl-C), "SIGTERM" or "SIGHUP".
- 3: a benchmark runs in one or more processes (``harness run --processes N``, ``--until-stable``):
  each process's messages (its own hello, push, model, plan, first_invoke, warmup, samples,
  summary) follow a host line ``{"type": "process", "index": i}``, and with ``--until-stable`` a
  host line ``{"type": "stop", "by": "stable" | "max_duration", "processes", "wall_ns"}`` ends the
  benchmark. The plan (header and run.json) gains ``processes``, ``until_stable_pct`` and
  ``max_duration_s``. A file without ``process`` lines (version 1 and 2) is one process, index 0.
  Profile files are unchanged.
- 4: the evaluation pass (``harness run --eval``). After the last process, a host line
  ``{"type": "eval_set", "source", "file", "samples", "set_sha256", "labels"}`` opens the pass:
  what follows it is the pass's own (its hello, push, model, then ``eval`` messages with the raw
  outputs of every sample, then ``eval_summary``; PROTOCOL.md, eval mode), never a process's. The
  labels (null without them) are kept there, on the host. The plan gains ``eval`` (``source``,
  ``path``, ``samples``, or null), and a benchmark with an eval planned is complete only with its
  ``eval_summary``. Files without an ``eval_set`` line (versions 1 to 3) have no pass. Profile
  runs carry version 4 too; their files are unchanged.
- 4 (unchanged version): labgrid targets. Each call on a place starts with a host line
  ``{"type": "place", "place", "tags"}`` (``place`` and ``place_tags`` in ``--json``); the header
  of a board pool's job has ``pool`` (the pool's name; ``target`` is the place that ran it) and
  ``moved_from`` (the places whose failure moved the job, in order).
- 4 (unchanged version): a run that compares variants with their bases (``harness run
  --variants``) records in run.json ``variants`` (each variant file's ``sha256``, ``kind``,
  ``name``, ``base_sha256``, ``recipe``) and ``collapse_threshold``; a serial board's record may
  hold host ``repair`` lines (a model sent with its offset buffers inlined) and the error code
  ``unsupported_model``. summary.jsonl objects gain ``variant``, ``fidelity``, ``speedup`` and
  ``flags`` (harness.results.variants). A run without ``variants`` has none.
- 4 (unchanged version): adaptive per-layer profiles. A profile record holds one or more agent
  sessions, each after a host line ``{"type": "session", "index", "rounds", "max_time_s",
  "sum_check_se"}``, and an adaptive one ends with a host line ``{"type": "stop", "by": "stable" |
  "max_time", ...}``; the plan gains ``target_se`` and ``max_time_s``, and ``rounds`` is null when
  adaptive. The agent's ``round`` has ``forward`` and ``wall_ns``, ``models[].delegated`` the
  delegate's partitions (PROTOCOL.md). The profile JSON gains ``turns``, ``stop``, ``delegated``,
  ``groups`` (rows: an op, or a delegate partition) and, per layer, ``interval_ns``, ``resolved``
  and ``group``. Records without sessions are one session, read as before.
- 5: energy and cost. The header has ``target_facts`` (the target's facts as in run.json:
  price_usd, power_w, idle_power_w, and ``power``, the power reader; read from run.json for
  older files). On a target with a power reader, last of all a host line ``{"type": "power_set",
  "source", "window_s", "settle_s", "interval_s"}`` opens the power pass: what follows it is the
  pass's own (its hello, push, model, ``power_source``, a ``power_window`` per window with the raw
  samples ``{t_ns, watts, rails}``, ``power_summary``; PROTOCOL.md, power mode). A benchmark on a
  target with a power reader is complete only with its ``power_summary``. The plan gains
  ``power_window_s`` and ``rate_hz`` (``--rate``: the duty cycle is computed at that rate). Files
  without a ``power_set`` line (versions 1 to 4) have no pass. Profile files are unchanged.
- 6: runs of kind "stream" (``harness stream``, ``harness soak``; the plan's ``command`` says
  which), files under ``streams/``: a header (the stream plan: arrivals, rate_hz, duration_s,
  deadline_ns, policy, source, window_s, warm-up, device_work_us, spin_us, state_interval_s,
  find_max, command), the agent's stream-mode messages verbatim (hello, model, stream_plan,
  warmup, ``stream`` messages of raw per-frame scheduled, start and end times, ``board_state``
  samples, stream_summary; PROTOCOL.md, stream mode), and with --find-max host lines ``trial``
  before each trial, ``trial_end`` after it and ``find_max`` at the end; an end line.
  summary.jsonl of a stream run holds the ``harness stream --json`` objects (``kind`` "stream").
  Benchmark and profile files are unchanged; a harness of version 6 reads 1 to 6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import MeasurementError

SCHEMA_VERSION = 6
READABLE_VERSIONS = tuple(range(1, SCHEMA_VERSION + 1))  # what this harness reads back (store.read_record)


@dataclass(frozen=True)
class Block:
    """One block of one mode: its loop samples, per-stage samples and the board's state after it."""

    mode: str  # "with" | "without"
    index: int
    loop_ns: tuple[int, ...]
    stages: dict[str, tuple[int, ...]]
    temp_c: float | None
    freq_khz: int | None
    process: int = 0  # the index of the process that ran it (block indices restart in each)


@dataclass(frozen=True)
class ProcessRecord:
    """What one process of a benchmark said about itself: a fresh agent process on a Linux board,
    a fresh interpreter (the model loaded again) on a microcontroller. Its blocks are the
    benchmark's blocks with this ``process`` index."""

    index: int
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    resolved_plan: dict[str, Any] = field(default_factory=dict)
    first_invoke_ns: int | None = None
    warmup_ns: tuple[int, ...] = ()
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvalRecord:
    """The evaluation pass as stored: its ``eval_set`` line (source, samples, labels), then what the
    board said: its ``hello`` and ``model`` (the outputs' dtype, shape and quantization), every
    ``eval`` message (raw outputs, in chunks of consecutive samples) and ``eval_summary`` (None
    while it runs or when it was cut short). harness.results.fidelity reads the outputs."""

    eval_set: dict[str, Any]
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    chunks: tuple[dict[str, Any], ...] = ()
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class PowerRecord:
    """The power pass as stored: its ``power_set`` line (the plan), then what the board said: its
    ``hello`` and ``model``, ``power_source`` (how the reader forms the total), each
    ``power_window`` message (raw samples, in the order run: idle, active) and ``power_summary``
    (None while it runs or when it was cut short). harness.results.energy reads the samples."""

    power_set: dict[str, Any]
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    windows: tuple[dict[str, Any], ...] = ()
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class Benchmark:
    """Everything one benchmark measured, raw. Validated on construction.

    ``hello``, ``model_info``, ``resolved_plan``, ``first_invoke_ns`` and ``warmup_ns`` are those
    of the first process, ``summary`` that of the last (None while it runs or when it was cut
    short); each process's own are in ``processes``, and ``blocks`` holds the blocks of all.
    """

    target: str
    model: str
    model_sha256: str
    threads: int
    plan: dict[str, Any]
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    resolved_plan: dict[str, Any] = field(default_factory=dict)
    first_invoke_ns: int | None = None
    warmup_ns: tuple[int, ...] = ()
    blocks: tuple[Block, ...] = ()
    summary: dict[str, Any] | None = None
    extra: tuple[dict[str, Any], ...] = ()  # messages of types this version does not interpret
    model_facts: dict[str, Any] = field(default_factory=dict)  # host-side analysis totals (flops, ...)
    pushed_bytes: int = 0
    push_ns: int = 0
    error: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    processes: tuple[ProcessRecord, ...] = ()
    stopped_by: str | None = None  # "stable" | "max_duration" with --until-stable, from its stop line
    eval_pass: EvalRecord | None = None  # the evaluation pass, after its eval_set line
    place: str | None = None  # the labgrid place that ran it, from its place line
    place_tags: dict[str, str] | None = None
    pool: str | None = None  # the board pool of the job (header)
    moved_from: tuple[str, ...] = ()  # places whose failure moved the job to this one (header)
    power_pass: PowerRecord | None = None  # the power pass, after its power_set line
    target_facts: dict[str, Any] = field(default_factory=dict)  # price, declared power, power reader

    def __post_init__(self) -> None:
        if not self.processes and (self.hello or self.summary is not None or self.blocks):
            # built by hand from one process's fields (tests, older callers): that one process
            one = ProcessRecord(0, self.hello, self.model_info, self.resolved_plan, self.first_invoke_ns,
                                self.warmup_ns, self.summary)
            object.__setattr__(self, "processes", (one,))
        for b in self.blocks:
            if b.mode not in ("with", "without"):
                raise MeasurementError(f"{self.target}: block {b.index} has unknown mode {b.mode!r}")
            if any(len(v) != len(b.loop_ns) for v in b.stages.values()):
                raise MeasurementError(f"{self.target}: block {b.index} ({b.mode}) has stage sample "
                                       "counts that differ from its loop samples")
            if any(x < 0 for x in b.loop_ns):
                raise MeasurementError(f"{self.target}: negative loop sample in block {b.index}")

    @property
    def complete(self) -> bool:
        """True when no error came, the timed part is whole (``timed_complete``), and the passes
        planned after it (evaluation, power) sent their summaries."""
        if self.error is not None or not self.timed_complete:
            return False
        if self.plan.get("eval") and (self.eval_pass is None or self.eval_pass.summary is None):
            return False
        return not (self.target_facts.get("power")
                    and (self.power_pass is None or self.power_pass.summary is None))

    @property
    def timed_complete(self) -> bool:
        """True when every process sent its summary, all the processes planned ran
        (``plan["processes"]`` of them, or with --until-stable until its stop line), and samples of
        both modes came: a pass after it may still have failed. Never without samples."""
        if not self.processes or any(p.summary is None for p in self.processes):
            return False
        if not (any(b.loop_ns for b in self.blocks if b.mode == "with")
                and any(b.loop_ns for b in self.blocks if b.mode == "without")):
            return False
        if self.plan.get("until_stable_pct") is not None:
            return self.stopped_by is not None
        return len(self.processes) >= int(self.plan.get("processes") or 1)

    def loop(self, mode: str) -> list[int]:
        """All loop samples of one mode, in the order they were measured."""
        return [x for b in self.blocks if b.mode == mode for x in b.loop_ns]

    def stage(self, name: str, mode: str = "with") -> list[int]:
        return [x for b in self.blocks if b.mode == mode for x in b.stages.get(name, ())]

    def by_process(self, mode: str, stage: str | None = None) -> list[list[int]]:
        """Per process (in index order, processes without any left out): its loop samples of
        ``mode``, or of ``stage`` in that mode."""
        groups: dict[int, list[int]] = {}
        for b in self.blocks:
            if b.mode == mode:
                values = b.loop_ns if stage is None else b.stages.get(stage, ())
                groups.setdefault(b.process, []).extend(values)
        return [groups[i] for i in sorted(groups) if groups[i]]

    @property
    def runtime(self) -> str | None:
        rt = self.hello.get("runtime") or {}
        return rt.get("name")

    @property
    def runtime_version(self) -> str | None:
        rt = self.hello.get("runtime") or {}
        return rt.get("version")

    @property
    def emulated(self) -> bool:
        return bool(self.hello.get("emulated", False))


# Messages each process sends once, and the ProcessRecord field that keeps each.
PER_PROCESS = {"hello": "hello", "model": "model_info", "plan": "resolved_plan", "summary": "summary"}
# Messages of the evaluation pass, and the EvalRecord field that keeps each (eval: every chunk).
EVAL_FIELDS = {"hello": "hello", "model": "model_info", "eval": "chunks", "eval_summary": "summary"}
# Messages of the power pass, and the PowerRecord field that keeps each (power_window: every one).
POWER_FIELDS = {"hello": "hello", "model": "model_info", "power_source": "source", "power_window": "windows",
                "power_summary": "summary"}


# Lines the host adds (beside ``process``), and the Benchmark fields each sets.
HOST_LINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "stop": lambda msg: {"stopped_by": msg.get("by")},
    "place": lambda msg: {"place": msg.get("place"), "place_tags": dict(msg.get("tags") or {})},
}


def from_lines(header: dict[str, Any], lines: list[dict[str, Any]]) -> Benchmark:
    """Rebuild a Benchmark from a header and the messages that followed it, in order.

    A ``process`` line starts the next process; messages before any (files of schema 1 and 2,
    where a benchmark was one process) belong to process 0. An ``eval_set`` line starts the
    evaluation pass: the hello, model, eval and eval_summary messages after it are the pass's; a
    ``power_set`` line (after it, last) the power pass, whose own messages are kept likewise.
    """
    fields: dict[str, Any] = {}
    procs: list[dict[str, Any]] = []
    blocks: list[Block] = []
    extra: list[dict[str, Any]] = []
    pushed = push_ns = 0
    timed, fields["power_pass"] = _split_power(lines)
    timed, fields["eval_pass"] = _split_eval(timed)

    def current() -> dict[str, Any]:
        if not procs:
            procs.append({"index": 0})
        return procs[-1]

    for msg in timed:
        kind = msg.get("type")
        if kind == "process":
            procs.append({"index": int(msg["index"])})
        elif kind in PER_PROCESS:
            current()[PER_PROCESS[kind]] = msg
        elif kind == "first_invoke":
            current()["first_invoke_ns"] = int(msg["ns"])
        elif kind == "warmup":
            current()["warmup_ns"] = tuple(int(x) for x in msg["loop_ns"])
        elif kind == "samples":
            blocks.append(_block(msg, int(current()["index"])))
        elif kind in HOST_LINES:
            fields.update(HOST_LINES[kind](msg))
        elif kind == "push":
            pushed += int(msg.get("bytes", 0))
            push_ns += int(msg.get("ns", 0))
        elif kind in ("error", "end"):
            _merge_error(fields, msg)
        elif kind != "progress":
            extra.append(msg)
    processes = tuple(ProcessRecord(**p) for p in procs)
    if processes:
        first = processes[0]
        fields.update(hello=first.hello, model_info=first.model_info, resolved_plan=first.resolved_plan,
                      first_invoke_ns=first.first_invoke_ns, warmup_ns=first.warmup_ns,
                      summary=processes[-1].summary)
    try:
        return Benchmark(
            target=header["target"], model=header["model"], model_sha256=header["model_sha256"],
            threads=int(header["threads"]), plan=header.get("plan", {}), blocks=tuple(blocks),
            model_facts=header.get("model_facts") or {}, target_facts=header.get("target_facts") or {},
            processes=processes, pool=header.get("pool"), moved_from=tuple(header.get("moved_from") or ()),
            extra=tuple(extra), pushed_bytes=pushed, push_ns=push_ns, **fields,
        )
    except KeyError as exc:
        raise MeasurementError(f"benchmark header lacks {exc}") from exc


def _split_pass(lines: list[dict[str, Any]], opener: str, names: dict[str, str],
                each: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    """(the lines without a pass's own, the line that opens the pass or None, the pass's fields).
    A pass comes after the timed part, so every message of its kinds (``names``: message type →
    record field) after its ``opener`` line is its own: those of type ``each`` as a tuple under
    their field, the others one each. What the pass said of itself stays in its record (its hello
    is no process's); its push, error or end lines stay in the lines."""
    at = next((i for i, m in enumerate(lines) if m.get("type") == opener), len(lines))
    if at == len(lines):
        return lines, None, {}
    fields: dict[str, Any] = {}
    repeated = []
    for msg in lines[at + 1:]:
        kind = msg.get("type")
        if kind == each:
            repeated.append(msg)
        elif kind in names:
            fields[names[kind]] = msg
    fields[names[each]] = tuple(repeated)
    timed = lines[:at] + [m for m in lines[at + 1:] if m.get("type") not in names]
    return timed, lines[at], fields


def _split_eval(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], EvalRecord | None]:
    """(the lines without the evaluation pass's own, the pass's record or None): _split_pass."""
    timed, opener, fields = _split_pass(lines, "eval_set", EVAL_FIELDS, "eval")
    return timed, EvalRecord(eval_set=opener, **fields) if opener is not None else None


def _split_power(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], PowerRecord | None]:
    """(the lines without the power pass's own, the pass's record or None): _split_pass."""
    timed, opener, fields = _split_pass(lines, "power_set", POWER_FIELDS, "power_window")
    return timed, PowerRecord(power_set=opener, **fields) if opener is not None else None


def _block(msg: dict[str, Any], process: int) -> Block:
    env = msg.get("env") or {}
    return Block(
        mode=msg["mode"], index=int(msg["block"]), loop_ns=tuple(int(x) for x in msg["loop_ns"]),
        stages={k: tuple(int(x) for x in v) for k, v in (msg.get("stages") or {}).items()},
        temp_c=env.get("temp_c"), freq_khz=env.get("freq_khz"), process=process,
    )


def _merge_error(fields: dict[str, Any], msg: dict[str, Any]) -> None:
    """The board's error and the host's account of it (which adds the hint), merged; an end line
    is kept as ``end``."""
    error = msg if msg.get("type") == "error" else msg.get("error")
    if error:
        merged = dict(fields.get("error") or {})
        merged.update({k: v for k, v in error.items() if v is not None and k not in ("v", "type")})
        fields["error"] = merged
    if msg.get("type") == "end":
        fields["end"] = msg
