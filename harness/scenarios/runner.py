"""The runner: the one path from jobs to boards to the result store, for every scenario.

One worker thread per board runs jobs one after the other (a board runs one job at a time, or the
jobs would disturb each other), taking them from its target's queue (harness.scenarios.pool): a
plain target's queue has one board, a board pool's is shared by a board per free place, and a
failed board's job moves to the pool's other boards. Jobs on targets that compute on this machine's
own CPU (the local board, emulators) also take turns with each other and with other harness
processes (harness.scenarios.hostcpu). A failing job or board never stops the others: its error
is recorded in the store and in its outcome. Messages go to the store as they arrive, so nothing
measured is lost, and Ctrl-C (or ``Runner.cancel``) stops every board's agent.

What a job *is* comes from its ``Scenario``: the benchmark (harness.scenarios.benchmark) and the
per-layer profile (harness.scenarios.profile) today, later stream and soak. A scenario opens the
job's record in the store, calls the driver's method for it, and turns the messages into an
outcome; the lifecycle of drivers, the host-CPU turns, cancel and error handling live here, once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, Protocol, TypeVar

from harness.config import Target
from harness.errors import HarnessError, StoreError, TransportError
from harness.lab.drivers import open_driver
from harness.lab.drivers.base import Driver, Emit, Message
from harness.results.store import RecordWriter, RunStore
from harness.scenarios.hostcpu import HostCpu
from harness.scenarios.pool import Entry, JobQueue, boards_of

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 15.0  # how long Ctrl-C waits for boards to stop their agents


class TargetedJob(Protocol):
    @property
    def target(self) -> str: ...


J = TypeVar("J", bound=TargetedJob)
R = TypeVar("R")  # a job's outcome
J_contra = TypeVar("J_contra", bound=TargetedJob, contravariant=True)
R_co = TypeVar("R_co", covariant=True)
R_contra = TypeVar("R_contra", contravariant=True)


class Scenario(Protocol[J_contra, R_co]):
    """One kind of job (its run kind is ``kind``): how it is stored, run on a driver, and judged."""

    @property
    def kind(self) -> str: ...

    def open(self, store: RunStore, job: J_contra) -> RecordWriter:
        """The job's record in the store (header written)."""
        ...

    def start(self, driver: Driver, job: J_contra, emit: Emit, cancel: threading.Event) -> None:
        """Run the job on the board through the driver (e.g. ``driver.benchmark``)."""
        ...

    def finish(self, store: RunStore, job: J_contra, writer: RecordWriter, messages: Sequence[Message],
               error: HarnessError | None, cancelled: bool) -> R_co:
        """End the record (its end line) and return the job's outcome. ``error`` is what stopped
        the job (None when it ran to its end or was cancelled); called exactly once per job."""
        ...


class Observer(Protocol[J_contra, R_contra]):
    """Live progress (the CLI's display); called from worker threads."""

    def job_started(self, job: J_contra) -> None: ...

    def job_message(self, job: J_contra, msg: Message) -> None: ...

    def job_finished(self, outcome: R_contra) -> None: ...


class Quiet:
    """An observer that shows nothing."""

    def job_started(self, job: object) -> None:
        pass

    def job_message(self, job: object, msg: Message) -> None:
        pass

    def job_finished(self, outcome: object) -> None:
        pass


class Runner(Generic[J, R]):
    def __init__(self, store: RunStore, targets: Sequence[Target], scenario: Scenario[J, R],
                 observer: Observer[J, R], host_cpu: HostCpu | None = None,
                 cancel: threading.Event | None = None) -> None:
        if scenario.kind != store.kind:
            raise ValueError(f"a {scenario.kind} scenario in a {store.kind} run")
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.scenario = scenario
        self.observer = observer
        self.host_cpu = host_cpu or HostCpu()
        self.cancel = cancel or threading.Event()  # set it (or press Ctrl-C) to stop every board
        self._lock = threading.Lock()
        self._done: list[tuple[int, R]] = []  # (the job's index in run's order, its outcome)
        self._moved: set[int] = set()  # ids of the outcomes of failed attempts run again elsewhere

    @property
    def outcomes(self) -> list[R]:
        """The outcomes of the jobs finished so far, in the order they finished."""
        with self._lock:
            return [outcome for _, outcome in self._done]

    def moved(self, outcome: R) -> bool:
        """True for a pool job's failed attempt whose job went on to another board."""
        with self._lock:
            return id(outcome) in self._moved

    def run(self, jobs: Sequence[J], refused: Sequence[tuple[J, HarnessError]] = ()) -> list[R]:
        """Run every job; on KeyboardInterrupt stop all boards, keep what was measured, re-raise.

        ``refused``: jobs refused on the host already, recorded with their error. Returns the
        outcomes in the order of ``refused`` then ``jobs`` (a moved job's attempts side by side).
        """
        for index, (job, error) in enumerate(refused):
            self._finish(index, job, self.scenario.open(self.store, job), [], error)
        by_target: dict[str, list[Entry[J]]] = {}
        for index, job in enumerate(jobs, start=len(refused)):
            by_target.setdefault(job.target, []).append(Entry(index, job))
        queues = [q for name, entries in by_target.items() if (q := self._queue(self.targets[name], entries))]
        workers = [(q, board) for q in queues for board in q.boards]
        pool = ThreadPoolExecutor(max_workers=max(1, len(workers)), thread_name_prefix="target")
        futures: list[Future[None]] = []
        try:  # an interruption (Ctrl-C, SIGTERM) even while submitting cancels what was submitted
            futures += [pool.submit(self._run_target, q, board) for q, board in workers]
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
        with self._lock:  # sorted() is stable: a moved job's attempts stay in the order they ran
            return [outcome for _, outcome in sorted(self._done, key=lambda d: d[0])]

    def _queue(self, target: Target, entries: list[Entry[J]]) -> JobQueue[J] | None:
        """The target's queue; None when it has no board (a pool without a free place, a
        coordinator that does not answer): then its jobs are recorded failed with that error."""
        try:
            boards = boards_of(target, self.cancel)
        except HarnessError as exc:
            exc.target = exc.target or target.name
            for entry in entries:
                self._finish(entry.index, entry.job, self.scenario.open(self.store, entry.job), [], exc)
            return None
        return JobQueue(target, boards, entries)

    def _run_target(self, queue: JobQueue[J], target: Target) -> None:
        """One board's worker: ``target`` takes jobs from ``queue`` until it is empty or the board
        gives up its place in a pool."""
        driver: Driver | None = None
        unreachable: HarnessError | None = None
        try:
            while (entry := queue.take()) is not None:
                if self.cancel.is_set():
                    return
                job = queue.placed(entry, target)
                if unreachable is not None:
                    # the board did not answer: its other jobs fail with the same error at once,
                    # instead of one more connect timeout each
                    self._finish(entry.index, job, self.scenario.open(self.store, job), [], unreachable)
                    continue
                if driver is None:
                    try:
                        driver = open_driver(target, self.cancel)
                    except HarnessError as exc:
                        exc.target = exc.target or target.name
                        if not self.cancel.is_set() and queue.give_up(entry, target):
                            return  # the pool's other boards run it
                        self._finish(entry.index, job, self.scenario.open(self.store, job), [], exc)
                        unreachable = exc
                        continue
                broken, outcome = self._run_job(driver, target, job, entry.index)
                if broken:
                    _close(driver, target)
                    driver = None  # the link broke: reconnect for the next job, or leave the pool
                    if not self.cancel.is_set() and queue.give_up(entry, target):
                        with self._lock:
                            self._moved.add(id(outcome))
                        return
        except StoreError:
            self.cancel.set()  # what the boards send can no longer be kept: stop them all
            raise
        finally:
            if driver is not None:
                _close(driver, target)

    def _run_job(self, driver: Driver, target: Target, job: J, index: int) -> tuple[bool, R]:
        """Run one job: (True when the link to the board broke, the job's outcome)."""
        writer = self.scenario.open(self.store, job)
        messages: list[Message] = []
        self.observer.job_started(job)

        def emit(msg: Message) -> None:
            writer.message(msg)
            messages.append(msg)
            self.observer.job_message(job, msg)

        try:
            with self.host_cpu.turn(target, self.cancel) as ours:
                if ours:
                    self.scenario.start(driver, job, emit, self.cancel)
        except StoreError:
            raise  # not this job's failure: _run_target stops the run
        except HarnessError as exc:
            if exc.target is None:
                exc.target = target.name  # an error on a board names the board
            return isinstance(exc, TransportError), self._finish(index, job, writer, messages, exc)
        except Exception as exc:
            # A bug: keep the samples and the story on disk, then let it surface.
            with contextlib.suppress(StoreError):  # the bug is the news, not a full disk after it
                writer.end(complete=False, reason="bug", error={
                    "code": "bug", "message": repr(exc), "hint": "rerun with --debug and report it"})
            raise
        return False, self._finish(index, job, writer, messages, None)

    def _finish(self, index: int, job: J, writer: RecordWriter, messages: list[Message],
                error: HarnessError | None) -> R:
        outcome = self.scenario.finish(self.store, job, writer, messages, error, self.cancel.is_set())
        with self._lock:
            self._done.append((index, outcome))
        self.observer.job_finished(outcome)
        return outcome


def _close(driver: Driver, target: Target) -> None:
    """Close a driver; a failure to close is logged with the target's name, never raised."""
    try:
        driver.close()
    except Exception as exc:
        log.warning("%s: closing the link failed: %s", target.name, exc)
