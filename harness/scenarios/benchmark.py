"""The benchmark scenario (`harness run`): a matrix of models x targets x thread counts, each
cell timed with and without Invoke by the driver's ``benchmark``; run by harness.scenarios.runner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config import Target
from harness.errors import ConfigError, HarnessError, MeasurementError
from harness.lab.drivers.base import Driver, Emit, Message
from harness.models.analysis import analyze
from harness.models.files import check_model
from harness.plan import Job, Plan
from harness.results.benchmark import Benchmark, from_lines
from harness.results.store import RecordWriter, RunStore
from harness.results.summary import BenchmarkSummary, summarize

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
    """Jobs of `harness run`: stored under benchmarks/, summarized into summary.jsonl."""

    kind = "benchmark"

    def open(self, store: RunStore, job: Job) -> RecordWriter:
        return store.open_benchmark(job)

    def start(self, driver: Driver, job: Job, emit: Emit, cancel: threading.Event) -> None:
        driver.benchmark(job, emit, cancel)

    def finish(self, store: RunStore, job: Job, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> Outcome:
        header = {"target": job.target, "model": job.model.name, "model_sha256": job.model_sha256,
                  "threads": job.threads, "plan": job.plan.as_dict(), "model_facts": job.model_facts}
        lines = list(messages)
        benchmark = from_lines(header, lines)
        if error is None and not cancelled and not benchmark.complete:
            error = no_samples(job, benchmark)
        if error is not None:
            # the host names the file at fault only for a model it refused itself (the board
            # names its own); the hint is the host's, from the error's code
            culprit = job.model.name if error.code == "bad_model" else None
            lines.append({"type": "error", **error_dict(error, culprit)})
            benchmark = from_lines(header, lines)
        if error is not None:
            reason: str | None = "error"
        elif cancelled and not benchmark.complete:
            reason = "interrupted"
        else:
            reason = None
        writer.end(complete=benchmark.complete, reason=reason, error=benchmark.error)
        outcome = Outcome(job=job, benchmark=benchmark, summary=summarize(benchmark), error=error,
                          path=writer.path)
        store.add_summary(outcome.summary.to_json(store.run_id))
        return outcome
