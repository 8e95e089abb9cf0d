"""The runner's job queues: one per target, shared by the boards of a pool.

A plain target's queue has one board, which runs the target's jobs one after the other. A board
pool (a labgrid target with ``pool = "board=rpi4"``, or ``harness run --pool board=rpi4``) has one
queue for its jobs and one board per free place with those tags; each board takes the next job
whenever it is free, so the jobs spread over the boards, and each job runs under its place's
name (``Job.target``; ``Job.pool`` names the pool). When a board fails (it cannot be held or
reached, or its link breaks during a job), it takes no more jobs and its job goes back to the
queue for the other boards, naming the board in ``Job.moved_from``; a job that broke half-way is
recorded as failed on that board first, so what it measured stays on disk. The last board of a
pool keeps its jobs, as a plain target does: they fail on it with their errors.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from harness.config import LabgridOptions, Target
from harness.errors import ConfigError

log = logging.getLogger(__name__)

J = TypeVar("J")


@dataclass(frozen=True)
class Entry(Generic[J]):
    """A job in a queue; ``index`` is its place in the order the runner returns outcomes in."""

    index: int
    job: J


def is_pool(target: Target) -> bool:
    return isinstance(target.options, LabgridOptions) and bool(target.options.pool) and not target.options.place


def boards_of(target: Target, cancel: threading.Event) -> list[Target]:
    """The boards that run a target's jobs: the target itself, or each free place of its pool."""
    if not is_pool(target):
        return [target]
    from harness.lab.labgrid_place import pool_places

    boards = pool_places(target, cancel)
    log.info("pool %s: %d free places: %s", target.name, len(boards), ", ".join(b.name for b in boards))
    return boards


class JobQueue(Generic[J]):
    """The jobs of one target, taken by its boards; thread-safe."""

    def __init__(self, target: Target, boards: Sequence[Target], entries: Sequence[Entry[J]]) -> None:
        self.target = target
        self.boards = list(boards)
        self.pool = target.name if is_pool(target) else None
        self._entries = deque(entries)
        self._live = len(self.boards)
        self._lock = threading.Lock()

    def take(self) -> Entry[J] | None:
        with self._lock:
            return self._entries.popleft() if self._entries else None

    def placed(self, entry: Entry[J], board: Target) -> J:
        """The job as ``board`` runs it: under the place's name, within its pool."""
        if self.pool is None:
            return entry.job
        return _replace(entry.job, target=board.name, pool=self.pool)

    def give_up(self, entry: Entry[J], board: Target) -> bool:
        """``board`` failed on ``entry``: put the job back for the pool's other boards and retire
        the board (True), or False when no other board is left (or this is no pool)."""
        with self._lock:
            if self.pool is None or self._live <= 1:
                return False
            self._live -= 1
            moved = _replace(entry.job, moved_from=(*getattr(entry.job, "moved_from", ()), board.name))
            self._entries.appendleft(Entry(entry.index, moved))
        log.warning("pool %s: %s failed; its job moves to another board of the pool", self.pool, board.name)
        return True


def _replace(job: J, **changes: Any) -> J:
    if not hasattr(job, "moved_from"):  # a per-layer profile is of one board, not of a pool
        raise ConfigError(f"a board pool runs benchmarks only, not {type(job).__name__}s",
                          target=str(getattr(job, "target", "")), hint="name one place (place = \"NAME\")")
    return replace(job, **changes)  # type: ignore[type-var]
