"""The driver protocol: how the runner benchmarks one model on one board.

A driver turns a board-specific conversation (the Linux agent's JSON lines over a transport, or
the framed serial protocol of a microcontroller) into the *normalized messages* documented in
device_agents/wire/PROTOCOL.md: plain dicts with ``"type"`` among hello, model, first_invoke,
warmup, progress, samples, summary. The runner stores them verbatim and computes statistics from
them, so every board kind lands in the same result store, tables and JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from harness.plan import Job, Plan

__all__ = ["Driver", "Emit", "Job", "Message", "Plan"]

Message = dict[str, Any]
Emit = Callable[[Message], None]


class Driver(Protocol):
    """Benchmarks jobs on one board. One driver per target, used from one thread."""

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """Run ``job``, calling ``emit`` for each normalized message as it arrives.

        Returns after the ``summary`` message. Raises AgentError/TransportError (naming the target,
        the file and the fix) on failure, and stops the device side promptly, leaving no orphan
        process, when ``cancel`` is set; messages emitted before that stay valid.
        """
        ...

    def close(self) -> None: ...
