"""Per-layer time on the device: time every prefix of a model on a board, in interleaved rounds.

The method is described in harness.models.prefixes (how prefixes are built) and
harness.results.layers (how per-layer times and the sum check come from the samples).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.config import SerialOptions, Target
from harness.errors import AgentError, ConfigError, MeasurementError
from harness.lab.transports.base import Transport
from harness.models.analysis import analyze_model, load_model
from harness.models.prefixes import build_prefixes
from harness.results.layers import LayerProfile, layer_profile

PROTOCOL_VERSION = 1
HEARTBEATS_MISSED = 5  # as harness.lab.drivers.linux: missed heartbeats before the board-side timer exits


def timer_path() -> Path:
    """device_agents/linux/prefix_timer.py, as shipped with harness."""
    from importlib import resources

    return Path(str(resources.files("device_agents").joinpath("linux", "prefix_timer.py")))


def agent_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("device_agents").joinpath("linux", "tflite_agent.py")))


def profile(transport: Transport, python: str, model_path: Path | str, work_dir: Path | str, *,
            threads: int = 1, runtime: str = "auto", xnnpack: bool = False, rounds: int = 15,
            min_time_s: float = 0.005, slices: int = 5, seed: int = 0, clock: str = "wall",
            timeout_s: float = 600.0) -> LayerProfile:
    """Build the prefixes of ``model_path`` in ``work_dir``, time them on the board behind
    ``transport`` with prefix_timer.py, and return the per-layer profile.

    ``rounds``: interleaved rounds (each times every prefix); ``min_time_s``: seconds of samples
    per model per round, taken in ``slices`` turns. ``clock``: "wall" or "cpu" (see LayerProfile). The whole run must end within
    ``timeout_s`` seconds.
    """
    if clock not in ("wall", "cpu") or (clock == "cpu" and threads != 1):
        raise ConfigError(f"clock {clock!r} with {threads} threads: the CPU clock covers only the "
                          "calling thread", hint="use clock \"wall\", or \"cpu\" with 1 thread")
    path = Path(model_path)
    model = load_model(path)
    analysis = analyze_model(model, path=str(path), size_bytes=path.stat().st_size)
    prefixes = build_prefixes(path, work_dir)
    timer = transport.stage(timer_path()).remote_path
    agent = transport.stage(agent_path()).remote_path
    remote = [transport.stage(p.path).remote_path for p in prefixes] + [transport.stage(path).remote_path]
    argv = [python, timer, "--agent", agent, "--threads", str(threads), "--runtime", runtime,
            "--xnnpack", "on" if xnnpack else "off", "--rounds", str(rounds), "--min-time", str(min_time_s),
            "--slices", str(slices),
            "--seed", str(seed), "--lifeline"]
    heartbeat_s = getattr(transport, "heartbeat_s", None)  # newlines the transport writes to stdin
    if heartbeat_s:
        # The timer gives up on a host whose heartbeats stopped (a dead link the board missed),
        # after as many missed beats as the benchmark agent tolerates.
        argv += ["--heartbeat-timeout", repr(HEARTBEATS_MISSED * heartbeat_s)]
    argv += remote
    proc = transport.run(argv)
    slices_done = slices
    deadline = time.monotonic() + timeout_s
    runtime_name = runtime
    rounds_ns: list[list[list[int]]] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MeasurementError(f"{path.name}: prefix timing took over {timeout_s:.0f} s",
                                       target=transport.name, hint="lower --rounds or --min-time")
            try:
                line = proc.readline(timeout=min(left, 5.0))
            except EOFError:
                break
            if line is None:
                continue
            try:
                msg = json.loads(line)
            except ValueError as exc:
                raise AgentError(f"prefix_timer wrote a line that is not JSON: {line[:120]!r}",
                                 target=transport.name) from exc
            if msg.get("v") != PROTOCOL_VERSION:
                raise AgentError(f"prefix_timer speaks protocol {msg.get('v')!r}, harness {PROTOCOL_VERSION}",
                                 target=transport.name, hint="harness stages its own prefix_timer.py; re-run")
            kind = msg.get("type")
            if kind == "hello":
                runtime_name = (msg.get("runtime") or {}).get("name") or runtime
            elif kind == "plan":
                slices_done = int(msg.get("slices", slices))
            elif kind == "round":
                rounds_ns.append(msg["ns"] if clock == "wall" else msg["cpu_ns"])
            elif kind == "error":
                raise AgentError(f"{path.name}: prefix_timer failed: {msg.get('message')}",
                                 code=str(msg.get("code", "agent")), target=transport.name)
            elif kind == "summary":
                break
        status = proc.wait(timeout=10.0)
    finally:
        proc.terminate()  # idempotent; on any error it stops the timer on the board
    if not rounds_ns:
        raise AgentError(f"{path.name}: prefix_timer ended (status {status}) without timing anything: "
                         f"{proc.stderr_tail()[-400:]}", target=transport.name)
    return layer_profile(analysis, rounds_ns, slices=slices_done, model=str(path), target=transport.name,
                         runtime=runtime_name, threads=threads, xnnpack=xnnpack, clock=clock)



def profile_target(target: Target, model_path: Path | str, work_dir: Path | str, **options: Any) -> LayerProfile:
    """``profile`` on a target of targets.toml: its transport, its python, closed afterwards.

    Only boards that run commands (local, ssh) can time prefixes; microcontrollers would need
    firmware with TFLite Micro's profiler, which this does not provide.
    """
    from harness.lab.transports import open_transport

    if isinstance(target.options, SerialOptions):
        raise ConfigError(f"per-layer timing needs a board that runs Python; {target.name} is kind "
                          f"{target.kind!r}", target=target.name,
                          hint="profile on a local or ssh target; for a microcontroller use `harness analyze "
                               "--fits` (arena) and a firmware build with the TFLM profiler")
    transport = open_transport(target)
    try:
        return profile(transport, target.options.python, model_path, work_dir, **options)
    finally:
        transport.close()
