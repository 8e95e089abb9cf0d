"""A labgrid place's driver: the driver of the target its resources make, holding the place.

Each call says first which place runs it (a host ``place`` line with the place's tags, kept in
the record like the board's own messages), then hands over to the ssh or serial target's driver,
so host keys, the hash cache, heartbeats and the lifeline behave as for a plain target. ``close``
closes that driver, then releases the place: the runner closes every driver at the end, after an
error and after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import threading

from harness.errors import ConfigError
from harness.lab.drivers.base import Driver, Emit, Profiler
from harness.lab.labgrid_place import Lease
from harness.plan import Job, ProfileJob


class PlaceDriver:
    def __init__(self, lease: Lease, inner: Driver) -> None:
        self.lease = lease
        self.inner = inner

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        emit(self.lease.message())
        self.inner.benchmark(job, emit, cancel)

    def profile(self, job: ProfileJob, emit: Emit, cancel: threading.Event) -> None:
        if not isinstance(self.inner, Profiler):
            raise ConfigError(f"place {self.lease.place} is used over its serial port, which has no "
                              "per-layer profiler", target=job.target, hint='set use = "ssh"')
        emit(self.lease.message())
        self.inner.profile(job, emit, cancel)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.lease.release()
