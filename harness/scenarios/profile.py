"""Per-layer time on the device: every prefix of a model timed on a board in interleaved rounds.

A profile is a scenario of the runner (harness.scenarios.runner), so it takes the path every job
takes: the target's driver (``Profiler.profile``: the Linux agent's profile mode), the host-CPU
turns, cancel on Ctrl-C (the agent is stopped, what was measured is kept) and a run of kind
"profile" in the result store, whose record holds every ``round`` of raw samples verbatim. The
per-layer figures come from those stored rounds (harness.results.layers.profile_from_record),
so ``harness show RUN`` recomputes them. How prefixes are built: harness.models.prefixes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config import Target
from harness.errors import ConfigError, HarnessError, Interrupted, MeasurementError
from harness.lab.drivers.base import Driver, Emit, Message, Profiler
from harness.models.analysis import ModelAnalysis, analyze
from harness.models.files import check_model
from harness.models.prefixes import build_prefixes
from harness.plan import ProfileJob, ProfilePlan
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
        driver.profile(job, emit, cancel)

    def finish(self, store: RunStore, job: ProfileJob, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> ProfileOutcome:
        profile = None
        if any(m.get("type") == "round" for m in messages):
            try:
                profile = profile_from_record(writer.header, messages, store.run_id)
            except MeasurementError as exc:  # rounds that do not fit the model: kept on disk, judged here
                error = error or exc
        complete = error is None and any(m.get("type") == "summary" for m in messages)
        reason = "error" if error is not None else ("interrupted" if cancelled and not complete else None)
        writer.end(complete=complete, reason=reason, error=error_dict(error) if error is not None else None)
        return ProfileOutcome(job, profile, error, complete, writer.path)


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
