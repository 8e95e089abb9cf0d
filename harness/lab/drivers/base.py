"""The driver protocols: how a scenario runs one job on one board.

A driver turns a board-specific conversation (the Linux agent's JSON lines over a transport, or
the framed serial protocol of a microcontroller) into the *normalized messages* documented in
device_agents/wire/PROTOCOL.md: plain dicts with a ``"type"``. A driver has one method per
scenario it can run, each with the same shape ``(job, emit, cancel)``: ``benchmark`` (every
driver: hello, model, first_invoke, warmup, progress, samples, summary), ``evaluate`` (every
driver: hello, model, eval, eval_summary; the evaluation pass), ``measure_power`` (boards that run
the Linux agent: hello, model, power_source, power_window, power_summary; the power pass),
``profile`` (boards that run the Linux agent: hello, models, plan, round, summary) and ``stream``
(every driver: hello, model, stream_plan, warmup, stream, board_state, stream_summary; PROTOCOL.md,
stream mode). The scenarios store the messages
verbatim and compute every figure from them, so every board kind lands in the same result store,
tables and JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from harness.plan import Job, Plan, ProfileJob
from harness.stream_plan import StreamJob

__all__ = ["Driver", "Emit", "Evaluator", "Job", "Message", "Plan", "PowerMeter", "Profiler", "Streamer"]

Message = dict[str, Any]
Emit = Callable[[Message], None]


class Driver(Protocol):
    """Runs jobs on one board. One driver per target, used from one thread."""

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """Run ``job``, calling ``emit`` for each normalized message as it arrives.

        Returns after the ``summary`` message. Raises AgentError/TransportError (naming the target,
        the file and the fix) on failure, and stops the device side promptly, leaving no orphan
        process, when ``cancel`` is set; messages emitted before that stay valid.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Evaluator(Protocol):
    """A driver that runs the evaluation pass (both drivers of this package)."""

    def evaluate(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """Run every sample of ``job.eval`` once through ``job.model``, untimed and apart from any
        timed block, calling ``emit`` for each message as it arrives: hello, model, then ``eval``
        messages with the raw outputs of consecutive samples, then ``eval_summary`` (PROTOCOL.md,
        eval mode); the same contract as ``Driver.benchmark`` otherwise. Returns after the
        ``eval_summary`` message."""
        ...


@runtime_checkable
class PowerMeter(Protocol):
    """A driver that reads a board's power sensor (the Linux agent's power mode)."""

    def measure_power(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """Sample the power of the board named by ``job.power`` while idle, then while ``job.model``
        Invokes back to back, apart from any timed block, calling ``emit`` for each message as it
        arrives: hello, model, power_source, then a ``power_window`` message per window with its
        raw samples, then ``power_summary`` (PROTOCOL.md, power mode); the same contract as
        ``Driver.benchmark`` otherwise."""
        ...


@runtime_checkable
class Profiler(Protocol):
    """A driver that can time a model's prefixes (per-layer profiling)."""

    def profile(self, job: ProfileJob, emit: Emit, cancel: threading.Event) -> None:
        """Time ``job.prefixes`` and ``job.model`` in interleaved rounds, calling ``emit`` for each
        message as it arrives (``round`` carries the raw samples); the same contract as
        ``Driver.benchmark`` otherwise. Returns after the ``summary`` message."""
        ...


@runtime_checkable
class Streamer(Protocol):
    """A driver that runs a stream: the application loop fed by ``job.schedule`` on the device."""

    def stream(self, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
        """Run ``job.schedule`` on the board (after ``job.cooldown``, when set), calling ``emit``
        for each normalized message as it arrives (PROTOCOL.md, stream mode); returns after the
        ``stream_summary``. ``cancel`` set stops the board's stream promptly and returns quietly;
        the scenario sets it itself to end a --find-max trial once its answer is clear, and then
        calls ``stream`` again on the same driver for the next trial, so the link must stay
        usable. The same contract as ``Driver.benchmark`` otherwise."""
        ...
