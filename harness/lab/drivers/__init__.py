"""Drivers: how the runner benchmarks a model on one kind of board (see base.py)."""

from __future__ import annotations

from harness.config import SerialOptions, Target
from harness.lab.drivers.base import Driver
from harness.lab.drivers.linux import LinuxAgentDriver
from harness.lab.drivers.mcu import McuDriver
from harness.lab.transports import open_transport


def open_driver(target: Target) -> Driver:
    """Connect to a target and return the driver that benchmarks on it."""
    if isinstance(target.options, SerialOptions):
        return McuDriver(target)
    return LinuxAgentDriver(target, open_transport(target), target.options.python)


def uses_host_cpu(target: Target) -> bool:
    """True when the board's work runs on this machine, so it must not run beside another such one."""
    return target.kind == "local" or (isinstance(target.options, SerialOptions) and target.options.emulator)
