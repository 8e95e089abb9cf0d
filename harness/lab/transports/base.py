"""The transport protocol: how the host reaches a board that runs commands.

A transport knows *how* to reach a board (a child process, SSH); the target in targets.toml
says *what* the board is. Drivers (harness.lab.drivers) speak the agent protocol over a transport.

Contract shared by every implementation:
- ``run(argv)`` starts ``argv`` on the board. argv is a list; remote implementations quote it
  with ``shlex.join`` and never build a command by string concatenation.
- ``Process.readline(timeout)`` returns one line of the process's stdout without its newline,
  ``None`` when nothing arrived within ``timeout`` seconds, and raises ``EOFError`` at end of stream.
- ``Process.terminate()`` stops the process *on the board* and everything it started: no orphan
  may be left behind. It is idempotent and safe to call from another thread.
- ``stage(path)`` makes a host file available on the board and returns where the board sees it and
  how many bytes were actually sent (0 when the board already had it, or for the local transport).
- Every wait has a deadline; nothing blocks forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Staged:
    """A host file as seen by the board."""

    remote_path: str
    sent_bytes: int


class Process(Protocol):
    def readline(self, timeout: float) -> str | None: ...

    def terminate(self) -> None: ...

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None if still running after ``timeout`` seconds."""
        ...

    def stderr_tail(self) -> str:
        """The last lines the process wrote to stderr, for error messages."""
        ...


class Transport(Protocol):
    name: str
    # Seconds between the newlines the transport writes to a running command's stdin, or None.
    # The agent's watchdog ends it when they stop (--heartbeat-timeout): a host gone behind a dead link
    # cannot leave it running, even where the board never notices the link is down.
    heartbeat_s: float | None

    def run(self, argv: list[str]) -> Process: ...

    def stage(self, path: Path) -> Staged: ...

    def close(self) -> None: ...
