"""Transports: how the host reaches a board that runs commands (see base.py for the protocol)."""

from __future__ import annotations

from harness.config import Target
from harness.errors import ConfigError
from harness.lab.transports.base import Transport
from harness.lab.transports.local import LocalTransport


def open_transport(target: Target) -> Transport:
    """The command transport of a local or SSH target."""
    if target.kind == "local":
        return LocalTransport(target.name)
    if target.kind == "ssh":
        from harness.lab.transports.ssh import SshTransport  # paramiko loads only when a board needs it

        return SshTransport(target)
    raise ConfigError(f"targets of kind {target.kind!r} have no command transport", target=target.name)
