"""Live progress on stderr: one line per target, fed by the runner's observer calls."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.lab.drivers.base import Message
from harness.models.micro import UNSUPPORTED_CODE
from harness.plan import Job
from harness.render.text import visible
from harness.scenarios.benchmark import Outcome


class LiveProgress:
    """A rich progress display; quiet (only failures) when stderr is not a terminal."""

    def __init__(self, console: Console, jobs_per_target: dict[str, int]) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("[bold]{task.fields[target]:<12}"), TextColumn("{task.fields[what]:<34}"),
            BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(), console=console, transient=False,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, TaskID] = {}
        self._jobs = jobs_per_target
        self._done: dict[str, int] = {}
        self._reported: set[int] = set()  # an error shared by several jobs (a bad file) is said once
        self._process: dict[str, str] = {}  # " · process N" once a job runs in several processes
        self._lock = threading.Lock()

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _task(self, target: str) -> TaskID:
        if target not in self._tasks:
            self._tasks[target] = self._progress.add_task("", total=None, target=escape(visible(target)), what="",
                                                          phase="connecting")
        return self._tasks[target]

    def job_started(self, job: Job) -> None:
        with self._lock:
            share = job.pool or job.target  # a pool's boards share its count of jobs
            done = self._done.get(share, 0)
            # (the columns read markup: a name with [brackets] is escaped for it as well)
            what = escape(visible(f"{job.model.name} · {job.threads} thr ({done + 1}/{self._jobs.get(share, 1)})"))
            self._progress.update(self._task(job.target), what=what, phase="pushing",
                                  completed=0, total=None)

    def job_message(self, job: Job, msg: Message) -> None:
        kind = msg.get("type")
        with self._lock:
            task = self._task(job.target)
            if kind == "process":
                index = int(msg["index"])
                self._process[job.target] = f" · process {index + 1}" if index or job.plan.processes > 1 else ""
            suffix = self._process.get(job.target, "")
            if kind == "hello":
                self._progress.update(task, phase="loading model" + suffix)
            elif kind == "plan":
                self._progress.update(task, phase="warming up" + suffix, completed=0,
                                      total=2 * int(msg["iterations"]))
            elif kind == "progress":
                self._progress.update(task, phase="measuring" + suffix, completed=int(msg["done"]),
                                      total=int(msg["total"]))

    def job_finished(self, outcome: Outcome) -> None:
        job = outcome.job
        with self._lock:
            self._done[job.pool or job.target] = self._done.get(job.pool or job.target, 0) + 1
            unsupported = outcome.error is not None and outcome.error.code == UNSUPPORTED_CODE
            phase = "done" if outcome.error is None else "[yellow]unsupported" if unsupported else "[red]failed"
            self._progress.update(self._task(job.target), phase=phase)
        if outcome.error is not None and id(outcome.error) not in self._reported:
            self._reported.add(id(outcome.error))
            what = ("unsupported", "yellow") if unsupported else ("error", "red")
            self.console.print(Text.assemble(what, f": {visible(str(outcome.error))}"))
