"""Drivers: how the runner benchmarks a model on one kind of board (see base.py)."""

from __future__ import annotations

import threading

from harness.config import LabgridOptions, SerialOptions, Target
from harness.lab.drivers.base import Driver
from harness.lab.drivers.linux import LinuxAgentDriver
from harness.lab.drivers.mcu import McuDriver
from harness.lab.transports import open_transport


def open_driver(target: Target, cancel: threading.Event | None = None) -> Driver:
    """Connect to a target and return the driver that benchmarks on it. A labgrid target's place
    is held first (``cancel`` stops a wait for it) and released when the driver closes."""
    if isinstance(target.options, LabgridOptions):
        return _open_place(target, cancel or threading.Event())
    if isinstance(target.options, SerialOptions):
        return McuDriver(target)
    return LinuxAgentDriver(target, open_transport(target), target.options.python)


def _open_place(target: Target, cancel: threading.Event) -> Driver:
    from harness.lab.drivers.place import PlaceDriver  # labgrid loads only for labgrid targets
    from harness.lab.labgrid_place import hold

    lease = hold(target, cancel)
    try:
        return PlaceDriver(lease, open_driver(lease.target))
    except BaseException:
        lease.release()
        raise


def uses_host_cpu(target: Target) -> bool:
    """True when the board's work runs on this machine, so it must not run beside another such one."""
    return target.kind == "local" or (isinstance(target.options, SerialOptions) and target.options.emulator)
