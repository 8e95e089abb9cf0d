"""The Linux agent driver: device_agents/linux/tflite_agent.py over any command transport.

It stages the agent, the model and the user's files on the board, starts the agent with argv
(every plan parameter explicit), relays the agent's JSON lines as normalized messages, and turns
an `error` line, a dead agent or a silent one into one AgentError/TransportError that names the
target, the file and the fix. On cancel or timeout it stops the agent on the board.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import threading
import time
from importlib import resources
from pathlib import Path

from harness.config import SerialOptions, Target
from harness.errors import AgentError, TransportError
from harness.lab.drivers.base import Emit, Message
from harness.lab.transports.base import Process, Staged, Transport
from harness.plan import Job

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
POLL_S = 0.2  # how often a blocked read checks for cancel

HINTS = {
    "bad_model": "check that the file is a complete .tflite model (re-export it with the TFLite converter)",
    "unsupported_op": "use a runtime that has this op (ai-edge-litert is the newest), or re-export the "
                      "model with builtin ops only",
    "bad_inputs": "--inputs must hold arrays of the model's input shape and dtype "
                  "(harness analyze MODEL lists them)",
    "pipeline": "fix the pipeline file; it runs on the board with only numpy and the TFLite runtime",
    "runtime_missing": "install a runtime for the board's python (pip install ai-edge-litert, or "
                       "tflite-runtime), or point python = \"...\" in targets.toml at a venv that has one",
    "usage": "this is a harness bug if you did not run the agent by hand",
}


def agent_path() -> Path:
    return Path(str(resources.files("device_agents").joinpath("linux", "tflite_agent.py")))


HEARTBEATS_MISSED = 5  # the agent gives up on the host after this many heartbeat intervals


def agent_argv(python: str, agent: str, model: str, job: Job, target: Target,
               inputs: str | None, pipeline: str | None, heartbeat_s: float | None = None) -> list[str]:
    """The agent's command line, with every plan parameter explicit."""
    p = job.plan
    xnnpack = p.xnnpack if target.xnnpack is None else target.xnnpack
    argv = [python, agent, "run", "--model", model, "--threads", str(job.threads),
            "--runtime", target.runtime, "--xnnpack", "on" if xnnpack else "off",
            "--warmup", str(p.warmup), "--warmup-time", repr(p.warmup_time_s),
            "--iterations", str(p.iterations), "--duration", repr(p.duration_s),
            "--min-iterations", str(p.min_iterations), "--max-iterations", str(p.max_iterations),
            "--blocks", str(p.blocks), "--settle", str(p.settle), "--seed", str(p.seed), "--lifeline"]
    if heartbeat_s:
        argv += ["--heartbeat-timeout", repr(HEARTBEATS_MISSED * heartbeat_s)]
    if inputs:
        argv += ["--inputs", inputs]
    if pipeline:
        argv += ["--pipeline", pipeline]
    return argv


def parse_line(line: str, target: str) -> Message | None:
    """A protocol message, or None for a line that is not one (runtime chatter on stdout)."""
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(msg, dict) or "type" not in msg:
        return None
    if msg.get("v") != PROTOCOL_VERSION:
        raise AgentError(f"the agent speaks protocol version {msg.get('v')}, harness speaks "
                         f"{PROTOCOL_VERSION}", code="protocol", target=target,
                         hint="use the agent that ships with this harness")
    return msg


class LinuxAgentDriver:
    def __init__(self, target: Target, transport: Transport, python: str) -> None:
        self.target = target
        self.transport = transport
        self.python = python

    def _stage(self, path: Path, emit: Emit, what: str) -> Staged:
        t0 = time.monotonic_ns()
        staged = self.transport.stage(path)
        emit({"type": "push", "file": path.name, "what": what, "bytes": staged.sent_bytes,
              "ns": time.monotonic_ns() - t0, "host_measured": True})
        return staged

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        plan = job.plan
        agent = self._stage(agent_path(), emit, "agent").remote_path
        model = self._stage(job.model, emit, "model").remote_path
        inputs = self._stage(plan.inputs, emit, "inputs").remote_path if plan.inputs else None
        pipeline = self._stage(plan.pipeline, emit, "pipeline").remote_path if plan.pipeline else None
        argv = agent_argv(self.python, agent, model, job, self.target, inputs, pipeline,
                          self.transport.heartbeat_s)
        log.info("%s: %s", self.target.name, shlex.join(argv))
        proc = self.transport.run(argv)
        try:
            self._relay(proc, job, emit, cancel)
        finally:
            proc.terminate()

    def _relay(self, proc: Process, job: Job, emit: Emit, cancel: threading.Event) -> None:
        name = self.target.name
        assert not isinstance(self.target.options, SerialOptions)  # open_driver gives those the McuDriver
        silence_limit = self.target.options.timeout_s
        last = time.monotonic()
        while not cancel.is_set():
            try:
                line = proc.readline(POLL_S)
            except EOFError:
                break
            if line is None:
                if time.monotonic() - last > silence_limit:
                    raise TransportError(
                        f"no message from the agent for {silence_limit:.0f} s while benchmarking "
                        f"{job.model.name}", target=name,
                        hint="check the board (is it overloaded, or hung?), or raise timeout_s in targets.toml")
                continue
            last = time.monotonic()
            msg = parse_line(line, name)
            if msg is None:
                log.debug("%s: agent stdout: %s", name, line)
                continue
            if msg["type"] == "error":
                emit(msg)
                code = str(msg.get("code", "agent"))
                raise AgentError(str(msg.get("message")), code=code, target=name,
                                 hint=HINTS.get(code))
            emit(msg)
            if msg["type"] == "summary":
                return
        if cancel.is_set():
            return
        self._explain_death(proc, job)

    def _explain_death(self, proc: Process, job: Job) -> None:
        status = proc.wait(timeout=5.0)
        tail = proc.stderr_tail().strip().splitlines()
        last_words = f": {tail[-1]}" if tail else ""
        if status is not None and status < 0:
            sig = signal.Signals(-status).name
            raise AgentError(f"the agent died with {sig} while benchmarking {job.model.name}{last_words}",
                             code="crashed", target=self.target.name,
                             hint="the runtime crashed on this model: try --xnnpack off, or another "
                                  "runtime (runtime = ... in targets.toml)")
        raise AgentError(f"the agent exited (status {status}) before its summary while benchmarking "
                         f"{job.model.name}{last_words}", code="crashed", target=self.target.name,
                         hint=f"run `harness doctor {self.target.name}`")

    def close(self) -> None:
        self.transport.close()

