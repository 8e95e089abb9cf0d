"""The benchmark scenario (`harness run`): a matrix of models x targets x thread counts, each
cell timed with and without Invoke by the driver's ``benchmark``; run by harness.scenarios.runner.

A cell runs in one or more *processes* (``Plan.processes``, ``--until-stable``): each is one call
of the driver's ``benchmark``, so a fresh agent process on a Linux board, and on a
microcontroller the model loaded again into a fresh interpreter. ``run_processes`` runs them one
after the other, within the cell's one turn on the board, and decides after each whether to
stop (``stop_reason``); a ``process`` line before each keeps every process's messages apart in
the store.

With an evaluation pass (``Plan.eval``, ``harness run --eval``), ``prepare_eval`` writes each
model's samples on the host before the run (harness.models.evalset), and after the cell's last
process, in the same turn on the board and over the same driver connection, ``run_eval`` sends
every sample through the driver's ``evaluate``: untimed, after every timed block, so it never
perturbs a timing. An ``eval_set`` line (the source, the samples' digest, the labels, which stay
on the host) opens its messages in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness import stats
from harness.config import Target
from harness.errors import ConfigError, HarnessError, MeasurementError, StoreError
from harness.lab.drivers.base import Driver, Emit, Evaluator, Message
from harness.models import evalset
from harness.models.analysis import analyze
from harness.models.files import check_model
from harness.plan import EvalInputs, EvalPlan, Job, Plan
from harness.results.benchmark import Benchmark, from_lines
from harness.results.store import RecordWriter, RunStore
from harness.results.summary import BenchmarkSummary, summarize
from harness.results.variants import VariantSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    job: Job
    benchmark: Benchmark
    summary: BenchmarkSummary  # computed once, for summary.jsonl and the tables
    error: HarnessError | None
    path: Path


def plan_jobs(targets: Sequence[Target], models: Sequence[Path], threads: Sequence[int] | None,
              plan: Plan) -> tuple[list[Job], list[tuple[Job, HarnessError]]]:
    """The matrix, and the jobs refused on the host already (a file that is not a whole TFLite
    model: one error per file, code ``bad_model`` as the board would say, shared by its jobs,
    since no board is at fault)."""
    checked: dict[Path, tuple[str, HarnessError | None]] = {}
    facts: dict[Path, dict[str, object]] = {}
    for model in models:
        try:
            checked[model] = (check_model(model), None)
        except HarnessError as exc:
            checked[model] = ("", ConfigError(exc.message, hint=exc.hint, code="bad_model"))
        else:
            facts[model] = model_facts(model)
    jobs: list[Job] = []
    refused: list[tuple[Job, HarnessError]] = []
    for target in targets:
        for model in models:
            digest, error = checked[model]
            # a microcontroller runs TFLite Micro on one core: --threads does not multiply it
            counts = (1,) if target.serial_board else (threads or target.threads)
            for t in counts:
                job = Job(target=target.name, model=model, model_sha256=digest, threads=t, plan=plan,
                          model_facts=facts.get(model, {}))
                if error is None:
                    jobs.append(job)
                else:
                    refused.append((job, error))
    return jobs, refused


def prepare_eval(jobs: Sequence[Job], directory: Path, domain: Mapping[Path, Path] | None = None
                 ) -> tuple[list[Job], list[tuple[Job, HarnessError]]]:
    """The jobs with their model's eval samples (``Job.eval``), written under ``directory``, and
    the jobs whose model the samples do not fit (one ``bad_inputs`` error per model, shared by
    its jobs). Jobs without ``plan.eval`` pass unchanged.

    ``domain`` maps a model to the model whose inputs define the samples' domain, its variants'
    float32 base: the base's real-valued samples (or random draws) then reach every variant,
    each quantized with its own input scale. A model not in it is its own domain.
    """
    prepared: dict[tuple[Path, Path, EvalPlan, int], EvalInputs | HarnessError] = {}
    ready: list[Job] = []
    refused: list[tuple[Job, HarnessError]] = []
    for job in jobs:
        plan = job.plan.eval
        if plan is None:
            ready.append(job)
            continue
        key = (job.model, (domain or {}).get(job.model, job.model), plan, job.plan.seed)
        if key not in prepared:
            try:
                prepared[key] = evalset.prepare(plan, key[0], key[1], key[3], directory)
            except StoreError:
                raise  # this machine's disk, not the model: the run stops
            except HarnessError as exc:
                prepared[key] = exc
        got = prepared[key]
        if isinstance(got, HarnessError):
            refused.append((job, got))
        else:
            ready.append(replace(job, eval=got))
    return ready, refused


def model_facts(model: Path) -> dict[str, object]:
    """The model's totals from harness analyze, for the results; {} when it cannot be analysed
    (the board's runtime is the judge of what runs: a model we cannot count may still run)."""
    try:
        a = analyze(model)
    except Exception as exc:  # analysis is a bonus here, never a reason to refuse a benchmark
        log.warning("%s: no FLOP count (%s)", model.name, exc)
        return {}
    return {"flops": a.total_flops, "macs": a.total_macs, "params": a.total_params,
            "weight_bytes": a.total_weight_bytes, "scheme": a.scheme, "scheme_detail": a.scheme_detail,
            "uncounted_ops": len(a.uncounted_ops), "size_bytes": a.size_bytes}


def error_dict(exc: HarnessError, file: str | None = None) -> dict[str, object]:
    """A host-side error as a stored message's fields; ``file`` the name of the file at fault."""
    return {"code": exc.code, "message": exc.message, "hint": exc.hint, "file": file}


def no_samples(job: Job, benchmark: Benchmark) -> MeasurementError:
    """A board that ended without samples of both modes: never a complete benchmark."""
    counts = {mode: len(benchmark.loop(mode)) for mode in ("with", "without")}
    return MeasurementError(
        f"the agent ended benchmarking {job.model.name} with {counts['with']} samples with Invoke and "
        f"{counts['without']} without", target=job.target, code="no_samples",
        hint=f"the board's agent is not the one this harness ships, or its output was lost: run "
             f"`harness doctor {job.target}`")


class BenchmarkScenario:
    """Jobs of `harness run`: stored under benchmarks/, summarized into summary.jsonl, each
    summary judged by ``variants`` against its base run when it is a variant (harness.results.variants)."""

    kind = "benchmark"

    def __init__(self, variants: VariantSet | None = None) -> None:
        self.variants = variants or VariantSet()
        self._done: list[BenchmarkSummary] = []  # what a variant is judged against: its base ran before it
        self._lock = threading.Lock()

    def open(self, store: RunStore, job: Job) -> RecordWriter:
        return store.open_benchmark(job)

    def start(self, driver: Driver, job: Job, emit: Emit, cancel: threading.Event) -> None:
        run_processes(driver, job, emit, cancel)
        if job.eval is not None and not cancel.is_set():
            run_eval(driver, job, emit, cancel)

    def finish(self, store: RunStore, job: Job, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> Outcome:
        lines = list(messages)
        benchmark = from_lines(header(job), lines)
        if error is None and not cancelled and not (benchmark.loop("with") and benchmark.loop("without")):
            error = no_samples(job, benchmark)
        if error is not None:
            # the host names the file at fault only for a model it refused itself (the board
            # names its own); the hint is the host's, from the error's code
            culprit = job.model.name if error.code == "bad_model" else None
            lines.append({"type": "error", **error_dict(error, culprit)})
            benchmark = from_lines(header(job), lines)
        if error is not None:
            reason: str | None = "error"
        elif cancelled and not benchmark.complete:
            reason = "interrupted"
        else:
            reason = None
        writer.end(complete=benchmark.complete, reason=reason, error=benchmark.error)
        outcome = Outcome(job=job, benchmark=benchmark, summary=summarize(benchmark), error=error,
                          path=writer.path)
        with self._lock:
            self._done.append(outcome.summary)
            done = list(self._done)
        store.add_summary(self.variants.judge(outcome.summary, done).to_json(store.run_id))
        return outcome


def header(job: Job) -> dict[str, object]:
    """What from_lines needs of the job (the store's header line holds the same and more)."""
    return {"target": job.target, "model": job.model.name, "model_sha256": job.model_sha256,
            "threads": job.threads, "plan": job.plan.as_dict(), "model_facts": job.model_facts,
            **job.placement()}


def run_processes(driver: Driver, job: Job, emit: Emit, cancel: threading.Event,
                  clock: Callable[[], float] = time.monotonic) -> None:
    """Run the job's processes one after the other until ``stop_reason`` says stop (or cancel).

    Each process is announced by a ``process`` line and then is one ``driver.benchmark`` call;
    with --until-stable a ``stop`` line says why the last one was the last. The wall time is the
    host's clock from the first process's start: it includes staging, start-up and model loads.
    """
    plan = job.plan
    medians: list[float] = []  # each finished process's median Invoke, computed once
    longest = 0.0  # the longest process so far: what the next one is expected to take
    started = clock()
    done = 0
    while not cancel.is_set():
        if done:
            reason = stop_reason(plan, medians, done, clock() - started, longest)
            if reason is not None:
                if plan.until_stable_pct is not None:
                    emit({"type": "stop", "by": reason, "processes": done,
                          "wall_ns": round((clock() - started) * 1e9), "host_measured": True})
                return
        t0 = clock()
        lines = _one_process(driver, job, emit, cancel, done)
        longest = max(longest, clock() - t0)
        medians += [stats.median(g) for g in from_lines(header(job), lines).by_process("with", "invoke")]
        done += 1


def _one_process(driver: Driver, job: Job, emit: Emit, cancel: threading.Event, index: int) -> list[Message]:
    """Process ``index`` of the job: its ``process`` line, then the driver's messages; all returned."""
    lines: list[Message] = [{"type": "process", "index": index, "host_measured": True}]
    emit(lines[0])

    def keep(msg: Message) -> None:
        lines.append(msg)
        emit(msg)

    driver.benchmark(job, keep, cancel)
    return lines


def run_eval(driver: Driver, job: Job, emit: Emit, cancel: threading.Event) -> None:
    """The evaluation pass of ``job``: its ``eval_set`` line, then the driver's messages."""
    assert job.eval is not None
    if not isinstance(driver, Evaluator):
        raise ConfigError(f"the driver of {job.target} cannot run an evaluation pass", target=job.target,
                          hint="drop --eval for this target")
    emit({"type": "eval_set", **job.eval.as_dict(), "host_measured": True})
    driver.evaluate(job, emit, cancel)


def stop_reason(plan: Plan, medians: Sequence[float], done: int, elapsed_s: float,
                longest_s: float) -> str | None:
    """Why no further process should run after ``done`` of them, or None to run one more.

    Without --until-stable: "processes" once ``plan.processes`` have run. With it: "stable" once
    at least ``plan.processes`` have run and the 95 % interval of the mean of the per-process
    Invoke medians (``medians``, harness.stats.mean_interval) is within ± until_stable_pct % of
    that mean; else "max_duration" when one more process, if it took as long as the longest so
    far (``longest_s``), would end after ``plan.max_duration_s`` (``elapsed_s`` have passed).
    The time bound wins over the minimum number of processes: it is a bound.
    """
    if plan.until_stable_pct is None:
        return "processes" if done >= plan.processes else None
    if done >= plan.processes:
        ci = stats.mean_interval(medians)
        if ci is not None and (ci[1] - ci[0]) / 2 <= plan.until_stable_pct / 100 * (ci[0] + ci[1]) / 2:
            return "stable"
    if elapsed_s + longest_s > plan.max_duration_s:
        return "max_duration"
    return None
