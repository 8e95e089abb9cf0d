"""Per-layer time on the device: every prefix of a model timed on a board in interleaved rounds.

A profile is a scenario of the runner (harness.scenarios.runner), so it takes the path every job
takes: the target's driver (``Profiler.profile``: the Linux agent's profile mode), the host-CPU
turns, cancel on Ctrl-C (the agent is stopped, what was measured is kept) and a run of kind
"profile" in the result store, whose record holds every ``round`` of raw samples verbatim. The
per-layer figures come from those stored rounds (harness.results.layers.profile_from_record),
so ``harness show RUN`` recomputes them. How prefixes are built: harness.models.prefixes.

Rounds are adaptive by default (``ProfilePlan.rounds`` None): the job runs the agent in
*sessions*, one agent process each, through the driver's one relay (``run_sessions``). After each
session the host recomputes the profile from every round stored so far and decides
(``next_session``): "stable" once the sum check's standard error is under ``target_se``;
"max_time" once one more session of at least MIN_ROUNDS rounds would end after ``max_time_s``
(measured from the job's start on the host); else a session sized to reach the target, as the SE
falls with the square root of the rounds. A host line ``session`` precedes each session's
messages and a host line ``stop`` says why the last was the last. Each agent also gets the time
left as its own bound (``--max-time``), so a session never runs past it by more than a round.
"""

from __future__ import annotations

import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config import Target
from harness.errors import ConfigError, HarnessError, Interrupted, MeasurementError
from harness.lab.drivers.base import Driver, Emit, Message, Profiler
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import check_model
from harness.models.prefixes import build_prefixes
from harness.plan import ProfileJob, ProfilePlan, ProfileSession
from harness.results.layers import LayerProfile, op_facts, profile_from_record
from harness.results.store import RecordWriter, RunStore
from harness.scenarios.benchmark import error_dict
from harness.scenarios.hostcpu import HostCpu
from harness.scenarios.runner import Observer, Quiet, Runner


@dataclass(frozen=True)
class ProfileOutcome:
    job: ProfileJob
    profile: LayerProfile | None  # None when not one round was timed
    error: HarnessError | None
    complete: bool  # every planned round arrived
    path: Path


@dataclass(frozen=True)
class ProfileRun:
    """A finished profile run: where it is stored, its status in run.json, and its outcome
    (None when Ctrl-C came before the job finished)."""

    run_id: str
    path: Path
    status: str  # complete | failed | interrupted
    outcome: ProfileOutcome | None
    signal: signal.Signals | None = None  # what interrupted it (SIGINT for Ctrl-C), or None


def refusal(target: Target) -> ConfigError:
    return ConfigError(f"per-layer timing needs a board that runs Python; {target.name} is kind "
                       f"{target.kind!r}", target=target.name,
                       hint="profile on a local or ssh target; for a microcontroller use `harness analyze "
                            "--fits` (arena) and a firmware build with the TFLM profiler")


class ProfileScenario:
    """Jobs of `harness analyze --profile`: stored under profiles/, one per model and target."""

    kind = "profile"

    def open(self, store: RunStore, job: ProfileJob) -> RecordWriter:
        return store.open_profile(job)

    def start(self, driver: Driver, job: ProfileJob, emit: Emit, cancel: threading.Event) -> None:
        if not isinstance(driver, Profiler):
            raise ConfigError(f"the driver of {job.target} cannot time prefixes", target=job.target)
        run_sessions(driver, job, emit, cancel)

    def finish(self, store: RunStore, job: ProfileJob, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> ProfileOutcome:
        profile = None
        if any(m.get("type") == "round" for m in messages):
            try:
                profile = profile_from_record(writer.header, messages, store.run_id)
            except MeasurementError as exc:  # rounds that do not fit the model: kept on disk, judged here
                error = error or exc
        complete = error is None and profile is not None and profile.stop is not None
        reason = "error" if error is not None else ("interrupted" if cancelled and not complete else None)
        writer.end(complete=complete, reason=reason, error=error_dict(error) if error is not None else None)
        return ProfileOutcome(job, profile, error, complete, writer.path)


FIRST_ROUNDS = 4  # the first session: 20 turns, enough for a first SE; short on a big model
MIN_ROUNDS = 2  # a session worth its start-up (process, models, calibration, warm-up round)
MARGIN = 1.25  # rounds asked for beyond the projection: a session that falls short costs a start-up


def next_session(plan: ProfilePlan, se: float, rounds_done: int, elapsed_s: float, round_s: float,
                 startup_s: float) -> tuple[str | None, int]:
    """After ``rounds_done`` rounds whose sum check has standard error ``se``, ``elapsed_s``
    seconds into the job: ("stable", 0) once ``se`` is under ``plan.target_se``; ("max_time", 0)
    when a session of MIN_ROUNDS rounds of ``round_s`` seconds after ``startup_s`` seconds of
    start-up would end after ``plan.max_time_s``; else (None, rounds of the next session): what
    the SE's fall as 1/sqrt(rounds) says reaches the target (x MARGIN), at most what fits.
    """
    if math.isfinite(se) and se < plan.target_se:
        return "stable", 0
    fit = math.floor((plan.max_time_s - elapsed_s - startup_s) / max(round_s, 1e-9))
    if fit < MIN_ROUNDS:
        return "max_time", 0
    want = (math.ceil(rounds_done * ((se / plan.target_se) ** 2 - 1) * MARGIN)
            if math.isfinite(se) else rounds_done)
    return None, min(fit, max(MIN_ROUNDS, want))


def run_sessions(driver: Profiler, job: ProfileJob, emit: Emit, cancel: threading.Event,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Run the job's agent sessions one after the other until ``next_session`` says stop (or
    cancel): one session of ``plan.rounds`` rounds with a fixed plan."""
    plan = job.plan
    if plan.rounds is not None:
        emit({"type": "session", "index": 0, "rounds": plan.rounds, "max_time_s": None, "host_measured": True})
        driver.profile(replace(job, session=ProfileSession(0, plan.rounds)), emit, cancel)
        return
    header = {"target": job.target, "model": job.model.name, "plan": plan.as_dict(), "ops": list(job.ops)}
    lines: list[Message] = []
    arrivals: list[tuple[str, float]] = []  # this session's messages: type, host time of arrival

    def keep(msg: Message) -> None:
        lines.append(msg)
        arrivals.append((str(msg.get("type")), clock()))
        emit(msg)

    started = clock()
    rounds, se, before_agent = FIRST_ROUNDS, float("nan"), 0.0
    for index in itertools.count():
        left = plan.max_time_s - (clock() - started)
        # The agent's clock starts after staging and its own start: the last session's share of that.
        session = ProfileSession(index, rounds, max(left - before_agent, 0.001))
        keep({"type": "session", "index": index, "rounds": rounds, "max_time_s": round(left, 3),
              "sum_check_se": None if math.isnan(se) else se, "host_measured": True})
        arrivals.clear()
        t0 = clock()
        driver.profile(replace(job, session=session), keep, cancel)
        if cancel.is_set():
            return
        before_agent = next((t for kind, t in arrivals if kind == "hello"), t0) - t0
        times = [t for kind, t in arrivals if kind == "round"]
        round_s = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else clock() - t0
        startup_s = max(0.0, (times[0] if times else clock()) - t0 - round_s)
        se = profile_from_record(header, lines).sum_check_se
        done = sum(m.get("type") == "round" for m in lines)
        by, rounds = next_session(plan, se, done, clock() - started, round_s, startup_s)
        if by is not None:
            emit({"type": "stop", "by": by, "sessions": index + 1, "rounds": done, "sum_check_se": se,
                  "wall_ns": round((clock() - started) * 1e9), "host_measured": True})
            return


def plan_profile(target: Target, model: Path, work_dir: Path, plan: ProfilePlan,
                 analysis: ModelAnalysis | None = None) -> ProfileJob:
    """The job: the model checked, its prefixes built in ``work_dir``, its ops' FLOPs counted.

    Raises ConfigError, before anything runs, for a target that cannot run the agent (a
    microcontroller) and for the CPU clock with more than one thread.
    """
    if target.kind not in ("local", "ssh"):
        raise refusal(target)
    if plan.clock not in ("wall", "cpu") or (plan.clock == "cpu" and plan.threads != 1):
        raise ConfigError(f"clock {plan.clock!r} with {plan.threads} threads: the CPU clock covers only the "
                          "calling thread", hint="use clock \"wall\", or \"cpu\" with 1 thread")
    digest = check_model(model)
    prefixes = build_prefixes(model, work_dir)
    return ProfileJob(target=target.name, model=model, model_sha256=digest, plan=plan,
                      prefixes=tuple(p.path for p in prefixes), ops=op_facts(analysis or analyze(model)))


def run_profile(target: Target, model: Path, work_dir: Path, results: Path, plan: ProfilePlan, *,
                analysis: ModelAnalysis | None = None, host_cpu: HostCpu | None = None,
                observer: Observer[ProfileJob, ProfileOutcome] | None = None,
                cancel: threading.Event | None = None) -> ProfileRun:
    """Profile ``model`` on ``target`` into a new run of kind "profile" under ``results``.

    Ctrl-C (SIGTERM, SIGHUP: harness.errors.Interrupted) or ``cancel`` stops the agent on the
    board; the rounds measured so far stay in the run, whose status is then "interrupted" (with
    the signal, in run.json and ``ProfileRun.signal``). An error on the board is in ``outcome.error`` (the
    run's status "failed"); errors of the plan (ConfigError) are raised before a run is created.
    """
    job = plan_profile(target, model, work_dir, plan, analysis)
    store = RunStore(results, kind="profile")
    store.start({"model": str(model), "model_sha256": job.model_sha256, "target": target.name,
                 "targets": {target.name: target.facts()}, "plan": plan.as_dict(),
                 "prefixes": len(job.prefixes)})
    runner = Runner(store, [target], ProfileScenario(), observer or Quiet(), host_cpu, cancel)
    try:
        runner.run([job])
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (harness.cli.stop_signals)
        sig = Interrupted.of(exc)
        store.finish("interrupted", signal=sig.name)
        return ProfileRun(store.run_id, store.path, "interrupted", next(iter(runner.outcomes), None), sig)
    except HarnessError as exc:  # the run itself stopped (a full disk): run.json says so, not "running"
        store.fail(str(exc))
        raise
    except Exception as exc:
        store.fail(f"bug: {type(exc).__name__}: {exc}")
        raise
    (outcome,) = runner.outcomes
    status = "failed" if outcome.error is not None else ("complete" if outcome.complete else "interrupted")
    store.finish(status)
    return ProfileRun(store.run_id, store.path, status, outcome)
