"""The stream scenario (`harness stream`, `harness soak`): the application loop on the board, fed
by a schedule that runs there (PROTOCOL.md, stream mode); run by harness.scenarios.runner.

A job is one model on one target with one thread count, like a benchmark; the driver's
``stream`` runs its schedule (``Streamer``; every driver has one). With ``--find-max`` the job is
a search of trials instead (harness.scenarios.find_max), all within the job's one turn on the
board and over one connection. Every message lands in the job's record under ``streams/``;
the figures come from the stored frames (harness.results.stream), so `harness show` recomputes
them, and each job's ``--json`` object goes to summary.jsonl.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Target
from harness.errors import ConfigError, HarnessError, MeasurementError
from harness.lab.drivers.base import Driver, Emit, Message, Streamer
from harness.models.files import check_model
from harness.results.benchmark import SCHEMA_VERSION
from harness.results.soak import soak
from harness.results.store import RecordWriter, RunStore
from harness.results.stream import StreamRecord, stream_from_lines
from harness.results.stream_json import to_json
from harness.scenarios.benchmark import error_dict, model_facts
from harness.scenarios.find_max import search
from harness.stream_plan import StreamJob, StreamPlan


@dataclass(frozen=True)
class StreamOutcome:
    job: StreamJob
    record: StreamRecord
    summary: dict[str, Any]  # the --json object, as stored in summary.jsonl
    error: HarnessError | None
    path: Path


def plan_streams(targets: Sequence[Target], models: Sequence[Path], threads: Sequence[int] | None,
                 plan: StreamPlan) -> tuple[list[StreamJob], list[tuple[StreamJob, HarnessError]]]:
    """The matrix of streams, and the jobs refused on the host already (a file that is not a
    whole TFLite model: code ``bad_model``, as in harness.scenarios.benchmark.plan_jobs)."""
    checked: dict[Path, tuple[str, dict[str, Any], HarnessError | None]] = {}
    for model in models:
        try:
            checked[model] = (check_model(model), model_facts(model), None)
        except HarnessError as exc:
            checked[model] = ("", {}, ConfigError(exc.message, hint=exc.hint, code="bad_model"))
    jobs: list[StreamJob] = []
    refused: list[tuple[StreamJob, HarnessError]] = []
    for target in targets:
        for model in models:
            digest, facts, error = checked[model]
            for t in (1,) if target.kind == "serial" else (threads or target.threads):
                job = StreamJob(target=target.name, model=model, model_sha256=digest, threads=t, plan=plan,
                                schedule=plan.schedule(), model_facts=facts)
                if error is None:
                    jobs.append(job)
                else:
                    refused.append((job, error))
    return jobs, refused


def header(job: StreamJob) -> dict[str, Any]:
    """What stream_from_lines needs of the job (the store's header line holds the same and more)."""
    return {"target": job.target, "model": job.model.name, "model_sha256": job.model_sha256,
            "threads": job.threads, "plan": job.plan.as_dict(), "model_facts": job.model_facts}


def no_frames(job: StreamJob) -> MeasurementError:
    return MeasurementError(
        f"the agent ended streaming {job.model.name} without a frame", target=job.target, code="no_samples",
        hint=f"the board's agent is not the one this harness ships, or its output was lost: run "
             f"`harness doctor {job.target}`")


class StreamScenario:
    """Jobs of `harness stream` and `harness soak`: stored under streams/, summarized into
    summary.jsonl."""

    kind = "stream"

    def open(self, store: RunStore, job: StreamJob) -> RecordWriter:
        return store.open_stream(job)

    def start(self, driver: Driver, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
        if not isinstance(driver, Streamer):
            raise ConfigError(f"the driver of {job.target} cannot run a stream", target=job.target,
                              hint="this board's firmware or driver predates harness stream")
        if job.plan.find_max is None:
            driver.stream(job, emit, cancel)
        else:
            search(driver, job, emit, cancel)

    def finish(self, store: RunStore, job: StreamJob, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> StreamOutcome:
        lines = list(messages)
        record = stream_from_lines(header(job), lines)
        if error is None and not cancelled and not any(len(t.frames) for t in record.trials):
            error = no_frames(job)
        if error is not None:
            culprit = job.model.name if error.code == "bad_model" else None
            lines.append({"type": "error", **error_dict(error, culprit)})
            record = stream_from_lines(header(job), lines)
        reason = "error" if error is not None else ("interrupted" if cancelled and not record.complete else None)
        writer.end(complete=record.complete, reason=reason, error=record.error)
        summary = summarize(record, store.run_id)
        store.add_summary(summary)
        return StreamOutcome(job, record, summary, error, writer.path)


def summarize(record: StreamRecord, run_id: str | None) -> dict[str, Any]:
    """The --json object of a stream, its soak figures included (harness.results.soak)."""
    main = record.main
    heat = soak(main).to_json() if main is not None and len(main.frames) else None
    return to_json(record, run_id, SCHEMA_VERSION, heat)
