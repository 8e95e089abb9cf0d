"""Turns on this machine's CPU: jobs on targets whose work runs here (the local board, emulated
MCUs) never run side by side, whether they belong to one harness process or to several.

Two such jobs at once would each measure the other's load. A job holds an exclusive flock(2) on
one lock file for as long as it runs; flock conflicts between two descriptors of one process as
between processes, and the kernel drops the lock when its holder dies, so a crashed harness never
leaves the CPU taken. The holder writes "PID TARGET" into the file, so a waiter can say for whom
it waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from harness.config import Target
from harness.errors import ConfigError
from harness.lab.drivers import uses_host_cpu

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often a waiting job looks at the lock and at its cancel event


def default_lock_path() -> Path:
    """One lock per user of this machine (a user's harness runs share it)."""
    return Path(tempfile.gettempdir()) / f"harness-host-cpu-{os.getuid()}.lock"


class HostCpu:
    """The host CPU's turns. Cheap to create: all instances on one lock file share its turns."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()

    @contextlib.contextmanager
    def turn(self, target: Target, cancel: threading.Event) -> Iterator[bool]:
        """Hold the host CPU for the block when ``target`` computes on it (else yield at once).

        Yields True with the turn held, or False without it when ``cancel`` was set while waiting.
        """
        if not uses_host_cpu(target):
            yield True
            return
        fd = self._acquire(target.name, cancel)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _acquire(self, name: str, cancel: threading.Event) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by the agents we start
        except OSError as exc:
            raise ConfigError(f"cannot open the host-CPU lock {self.path}: {exc.strerror}", target=name,
                              hint="make the temporary directory writable (or set TMPDIR)") from exc
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if cancel.is_set():
                    os.close(fd)
                    return None
                if not waited:
                    self._log_wait(name, fd)
                    waited = True
                cancel.wait(POLL_S)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {name}\n".encode(), 0)
            return fd

    def _log_wait(self, name: str, fd: int) -> None:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        if holder and holder[0] != str(os.getpid()):
            log.warning("%s: waiting for the host CPU: harness process %s is running %s on it",
                        name, holder[0], " ".join(holder[1:]) or "a job")
        else:
            log.info("%s: waiting for the host CPU (%s has it)", name, " ".join(holder[1:]) or "another target")
