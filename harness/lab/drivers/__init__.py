"""Drivers: how the runner benchmarks a model on one kind of board (see base.py)."""

from __future__ import annotations

import sys

from harness.config import Target
from harness.errors import ConfigError
from harness.lab.drivers.base import Driver
from harness.lab.drivers.linux import LinuxAgentDriver
from harness.lab.drivers.mcu import McuDriver
from harness.lab.transports import open_transport


def open_driver(target: Target) -> Driver:
    """Connect to a target and return the driver that benchmarks on it."""
    if target.kind == "local":
        python = str(target.options.get("python", sys.executable))
        return LinuxAgentDriver(target, open_transport(target), python)
    if target.kind == "ssh":
        python = str(target.options.get("python", "python3"))
        return LinuxAgentDriver(target, open_transport(target), python)
    if target.kind == "serial":
        return McuDriver(target)
    raise ConfigError(f"no driver for targets of kind {target.kind!r} yet", target=target.name)


def uses_host_cpu(target: Target) -> bool:
    """True when the board's work runs on this machine, so it must not run beside another such one."""
    return target.kind == "local" or bool(target.options.get("emulator", False))
