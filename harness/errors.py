"""The one exception tree of harness.

    HarnessError                 known failure: the CLI prints one line and exits 1
    ├── ConfigError              targets.toml, a CLI option, a model or inputs file on the host
    ├── TransportError           reaching a board: connect, auth, host key, lost link, serial line
    ├── AgentError               the agent on the board refused or failed (bad model, pipeline raised, ...)
    ├── MeasurementError         a run produced samples that cannot be trusted or summarised
    └── StoreError               the result store cannot be written or read (read-only, full disk, ...)

    KeyboardInterrupt            Ctrl-C: stop every board, keep what was measured, exit 130
    └── Interrupted              SIGTERM or SIGHUP, raised by the CLI's handler: the same, exit 143 or 129

Every message names what failed, on which target, with which value; ``hint`` names the option,
`targets.toml` key or command that fixes it. ``code`` names the failure for scripts (the ``code``
of the error objects in ``--json``): the class name unless the raiser says more (an AgentError's
``bad_model``, ``arena_too_small``, ...). ``detail`` carries what the board added beyond its
message, such as the number in a serial ERROR frame. Anything else that escapes is a bug (exit 70).
"""

from __future__ import annotations

import signal


class HarnessError(Exception):
    """A known failure with a one-line message and an optional fix."""

    def __init__(self, message: str, *, target: str | None = None, hint: str | None = None,
                 code: str | None = None, detail: int | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.hint = hint
        self.code = code or type(self).__name__
        self.detail = detail

    def __str__(self) -> str:
        prefix = f"{self.target}: " if self.target else ""
        suffix = f" (fix: {self.hint})" if self.hint else ""
        return f"{prefix}{self.message}{suffix}"


class ConfigError(HarnessError):
    """A configuration or input file on the host is wrong."""


class TransportError(HarnessError):
    """A board could not be reached, or the link to it broke."""


class AgentError(HarnessError):
    """The agent on the board reported an error, or died."""

    def __init__(self, message: str, *, code: str = "agent", target: str | None = None,
                 hint: str | None = None, detail: int | str | None = None) -> None:
        super().__init__(message, target=target, hint=hint, code=code, detail=detail)


class MeasurementError(HarnessError):
    """Samples exist but cannot be summarised honestly."""


class StoreError(HarnessError):
    """The result store cannot be written or read: an I/O failure of this machine, not a bug."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread by the CLI's handler so that harness stops as
    it does on Ctrl-C (which stays Python's own KeyboardInterrupt)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig

    @staticmethod
    def of(exc: KeyboardInterrupt) -> signal.Signals:
        """The signal behind an interruption: SIGINT for Ctrl-C. The exit status is 128 + it."""
        return exc.signal if isinstance(exc, Interrupted) else signal.SIGINT
