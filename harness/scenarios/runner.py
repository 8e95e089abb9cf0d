"""The runner: a matrix of models x targets x thread counts, targets in parallel.

One worker thread per target runs that target's jobs one after the other (a board benchmarks
one model at a time, or the runs would disturb each other). Targets whose work runs on this
machine's own CPU (the local board, emulators) also take turns with each other, for the same
reason. A failing job or board never stops the others: its error is recorded in the store and in
its Outcome. Messages go to the store as they arrive, so nothing measured is lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.config import Target
from harness.errors import HarnessError, TransportError
from harness.lab.drivers import open_driver, uses_host_cpu
from harness.lab.drivers.base import Driver, Message
from harness.models.analysis import analyze
from harness.models.files import check_model
from harness.plan import Job, Plan
from harness.results.benchmark import Benchmark, from_lines
from harness.results.store import BenchmarkWriter, RunStore
from harness.results.summary import BenchmarkSummary, summarize

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 15.0  # how long Ctrl-C waits for boards to stop their agents


@dataclass(frozen=True)
class Outcome:
    job: Job
    benchmark: Benchmark
    summary: BenchmarkSummary  # computed once, for summary.jsonl and the tables
    error: HarnessError | None
    path: Path


class Observer(Protocol):
    """Live progress (the CLI's display); called from worker threads."""

    def job_started(self, job: Job) -> None: ...

    def job_message(self, job: Job, msg: Message) -> None: ...

    def job_finished(self, outcome: Outcome) -> None: ...


def plan_jobs(targets: Sequence[Target], models: Sequence[Path], threads: Sequence[int] | None,
              plan: Plan) -> tuple[list[Job], list[tuple[Job, HarnessError]]]:
    """The matrix, and the jobs refused on the host already (a file that is not a whole TFLite
    model: one error per file, shared by its jobs, since no board is at fault)."""
    checked: dict[Path, tuple[str, HarnessError | None]] = {}
    facts: dict[Path, dict[str, object]] = {}
    for model in models:
        try:
            checked[model] = (check_model(model), None)
        except HarnessError as exc:
            checked[model] = ("", exc)
        else:
            facts[model] = model_facts(model)
    jobs: list[Job] = []
    refused: list[tuple[Job, HarnessError]] = []
    for target in targets:
        for model in models:
            digest, error = checked[model]
            # a microcontroller runs TFLite Micro on one core: --threads does not multiply it
            counts = (1,) if target.kind == "serial" else (threads or target.threads)
            for t in counts:
                job = Job(target=target.name, model=model, model_sha256=digest, threads=t, plan=plan,
                          model_facts=facts.get(model, {}))
                if error is None:
                    jobs.append(job)
                else:
                    refused.append((job, error))
    return jobs, refused


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


def _close(driver: Driver, target: Target) -> None:
    """Close a driver; a failure is logged, never raised over the job's own outcome."""
    try:
        driver.close()
    except Exception as exc:
        log.warning("%s: closing the connection to the board failed: %s: %s", target.name,
                    type(exc).__name__, exc)


def _error_dict(exc: HarnessError) -> dict[str, object]:
    return {"code": exc.code, "message": exc.message, "hint": exc.hint}


class Runner:
    def __init__(self, store: RunStore, targets: Sequence[Target], observer: Observer) -> None:
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.observer = observer
        self.cancel = threading.Event()
        self._host_cpu = threading.Lock()
        self._store_lock = threading.Lock()
        self._outcomes: list[Outcome] = []

    def run(self, jobs: Sequence[Job], refused: Sequence[tuple[Job, HarnessError]] = ()) -> list[Outcome]:
        """Run every job; on KeyboardInterrupt stop all boards, keep what was measured, re-raise."""
        for job, error in refused:
            self._record(job, self._open(job), [], error)
        by_target: dict[str, list[Job]] = {}
        for job in jobs:
            by_target.setdefault(job.target, []).append(job)
        pool = ThreadPoolExecutor(max_workers=max(1, len(by_target)), thread_name_prefix="target")
        futures = [pool.submit(self._run_target, self.targets[name], target_jobs)
                   for name, target_jobs in by_target.items()]
        try:
            while wait(futures, timeout=0.25).not_done:
                pass
        except KeyboardInterrupt:
            self.cancel.set()
            wait(futures, timeout=CANCEL_GRACE_S)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for f in futures:
            f.result()  # a bug in a worker surfaces here, not silently
        order = {id(j): i for i, j in enumerate(list(j for j, _ in refused) + list(jobs))}
        return sorted(self._outcomes, key=lambda o: order.get(id(o.job), 0))

    def _open(self, job: Job) -> BenchmarkWriter:
        with self._store_lock:
            return self.store.open_benchmark(job)

    def _run_target(self, target: Target, jobs: list[Job]) -> None:
        driver: Driver | None = None
        unreachable: HarnessError | None = None
        try:
            for job in jobs:
                if self.cancel.is_set():
                    return
                if unreachable is not None:
                    # the board did not answer: its other jobs fail with the same error at once,
                    # instead of one more connect timeout each
                    self._record(job, self._open(job), [], unreachable)
                    continue
                if driver is None:
                    try:
                        driver = open_driver(target)
                    except HarnessError as exc:
                        exc.target = exc.target or target.name
                        self._record(job, self._open(job), [], exc)
                        unreachable = exc
                        continue
                if self._run_job(driver, target, job):
                    _close(driver, target)
                    driver = None  # the link broke: reconnect for the next job
        finally:
            if driver is not None:
                _close(driver, target)

    def _run_job(self, driver: Driver, target: Target, job: Job) -> bool:
        """Run one job; True when the link to the board should be reopened."""
        writer = self._open(job)
        messages: list[Message] = []
        self.observer.job_started(job)

        def emit(msg: Message) -> None:
            writer.message(msg)
            messages.append(msg)
            self.observer.job_message(job, msg)

        lock = self._host_cpu if uses_host_cpu(target) else contextlib.nullcontext()
        try:
            with lock:
                driver.benchmark(job, emit, self.cancel)
        except HarnessError as exc:
            if exc.target is None:
                exc.target = target.name  # an error on a board names the board
            self._record(job, writer, messages, exc)
            return isinstance(exc, TransportError)
        except Exception as exc:
            # A bug: keep the samples and the story on disk, then let it surface.
            writer.end(complete=False, reason="bug", error={"code": "bug", "message": repr(exc)})
            raise
        self._record(job, writer, messages, None)
        return False

    def _record(self, job: Job, writer: BenchmarkWriter, messages: list[Message],
                error: HarnessError | None) -> None:
        header = {"target": job.target, "model": job.model.name, "model_sha256": job.model_sha256,
                  "threads": job.threads, "plan": job.plan.as_dict(), "model_facts": job.model_facts}
        if error is not None:
            messages = [*messages, {"type": "error", **_error_dict(error)}]
        benchmark = from_lines(header, messages)
        if error is not None:
            reason = "error"
        elif self.cancel.is_set() and not benchmark.complete:
            reason = "interrupted"
        else:
            reason = None
        writer.end(complete=benchmark.complete, reason=reason, error=benchmark.error)
        outcome = Outcome(job=job, benchmark=benchmark, summary=summarize(benchmark), error=error,
                          path=writer.path)
        with self._store_lock:
            self._outcomes.append(outcome)
            self.store.add_summary(outcome.summary.to_json(self.store.run_id))
        self.observer.job_finished(outcome)
