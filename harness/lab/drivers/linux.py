"""The Linux agent driver: device_agents/linux/tflite_agent.py over any command transport.

One method per scenario (``benchmark``: the agent's ``run`` mode; ``evaluate``: its ``eval``
mode, the evaluation pass; ``measure_power``: its ``power`` mode, the power pass; ``profile``: its
``profile`` mode; ``stream``: its ``stream`` mode, for `harness stream` and `harness soak`) stages
the agent and the job's files on the board and builds the agent's argv (every plan parameter
explicit). All of them hand the started agent to the one
relay, ``LinuxAgentDriver._relay``: it reads the agent's JSON lines, checks the protocol
version, passes each message on as it arrives until the scenario's last message type, and turns
an `error` line, a dead agent or a silent one into one AgentError/TransportError that names the
target, the file and the fix. On cancel, error or timeout the agent is stopped on the board.
Each ``benchmark`` call is one agent process (a fresh interpreter that loads the model itself):
a benchmark of several processes (harness.scenarios.benchmark.run_processes) calls it once per
process, through the same relay.
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

from harness.config import LabgridOptions, SerialOptions, Target
from harness.errors import AgentError, TransportError
from harness.lab.drivers.base import Emit, Message
from harness.lab.transports.base import Process, Staged, Transport
from harness.plan import Job, ProfileJob, ProfileSession
from harness.stream_plan import StreamJob

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
    "power_unavailable": "remove power = ... from this target in targets.toml and declare power_w and "
                         "idle_power_w instead, or name the sensor the board has: \"ina3221\" on a Jetson, "
                         "\"rpi5-pmic\" on a Raspberry Pi 5",
}


def silence_limit_s(target: Target) -> float:
    """The longest the agent may stay quiet on this target (targets.toml timeout_s)."""
    # open_driver gives serial targets the McuDriver, and a labgrid place the driver of what it resolves to
    assert not isinstance(target.options, SerialOptions | LabgridOptions)
    return target.options.timeout_s


def agent_path() -> Path:
    return Path(str(resources.files("device_agents") / "linux" / "tflite_agent.py"))


HEARTBEATS_MISSED = 5  # the agent gives up on the host after this many heartbeat intervals


def _model_argv(python: str, agent: str, mode: str, model: str, threads: int, target: Target,
                plan_xnnpack: bool) -> list[str]:
    """How every mode that loads one model starts: the model with the job's threads, the target's
    runtime and XNNPACK setting (the target's own, where it sets one, over the plan's)."""
    xnnpack = plan_xnnpack if target.xnnpack is None else target.xnnpack
    return [python, agent, mode, "--model", model, "--threads", str(threads), "--runtime", target.runtime,
            "--xnnpack", "on" if xnnpack else "off"]


def _lifeline_argv(heartbeat_s: float | None, inputs: str | None = None,
                   pipeline: str | None = None) -> list[str]:
    """How every mode ends: the watchdog (and its heartbeat timeout), the staged inputs and pipeline."""
    argv = ["--lifeline"]
    if heartbeat_s:
        argv += ["--heartbeat-timeout", repr(HEARTBEATS_MISSED * heartbeat_s)]
    if inputs:
        argv += ["--inputs", inputs]
    if pipeline:
        argv += ["--pipeline", pipeline]
    return argv


def agent_argv(python: str, agent: str, model: str, job: Job, target: Target,
               inputs: str | None, pipeline: str | None, heartbeat_s: float | None = None) -> list[str]:
    """The agent's command line, with every plan parameter explicit."""
    p = job.plan
    return [*_model_argv(python, agent, "run", model, job.threads, target, p.xnnpack),
            "--warmup", str(p.warmup), "--warmup-time", repr(p.warmup_time_s),
            "--iterations", str(p.iterations), "--duration", repr(p.duration_s),
            "--min-iterations", str(p.min_iterations), "--max-iterations", str(p.max_iterations),
            "--blocks", str(p.blocks), "--settle", str(p.settle), "--seed", str(p.seed),
            *_lifeline_argv(heartbeat_s, inputs, pipeline)]


def profile_argv(python: str, agent: str, models: list[str], job: ProfileJob, target: Target,
                 heartbeat_s: float | None = None) -> list[str]:
    """The agent's profile-mode command line: prefixes 0..N then the whole model, plan explicit;
    the rounds and time bound of ``job.session`` (harness.scenarios.profile sets it)."""
    p = job.plan
    session = job.session or ProfileSession(0, p.rounds or 1)
    return [python, agent, "profile", "--threads", str(p.threads), "--runtime", target.runtime,
            "--xnnpack", "on" if p.xnnpack else "off", "--rounds", str(session.rounds),
            "--max-time", repr(session.max_time_s),
            "--min-time", repr(p.min_time_s), "--slices", str(p.slices),
            "--min-per-slice", str(p.min_per_slice), "--seed", str(p.seed),
            *_lifeline_argv(heartbeat_s), *models]


def eval_argv(python: str, agent: str, model: str, inputs: str, job: Job, target: Target,
              heartbeat_s: float | None = None) -> list[str]:
    """The agent's eval-mode command line: the job's runtime, threads and XNNPACK setting, so the
    outputs are those of the model as it was timed."""
    return [*_model_argv(python, agent, "eval", model, job.threads, target, job.plan.xnnpack),
            *_lifeline_argv(heartbeat_s, inputs)]


def power_argv(python: str, agent: str, model: str, inputs: str | None, job: Job, target: Target,
               heartbeat_s: float | None = None) -> list[str]:
    """The agent's power-mode command line: the job's runtime, threads, XNNPACK setting and inputs,
    so the model draws the power it drew while timed, and the power plan (job.power)."""
    assert job.power is not None
    power = job.power
    return [*_model_argv(python, agent, "power", model, job.threads, target, job.plan.xnnpack),
            "--source", power.source, "--window", repr(power.window_s), "--settle", repr(power.settle_s),
            "--interval", repr(power.interval_s), "--seed", str(job.plan.seed),
            *_lifeline_argv(heartbeat_s, inputs)]


def stream_argv(python: str, agent: str, model: str, job: StreamJob, target: Target,
                inputs: str | None, pipeline: str | None, heartbeat_s: float | None = None) -> list[str]:
    """The agent's stream-mode command line: the job's schedule and plan, every parameter explicit."""
    p, s = job.plan, job.schedule
    argv = [*_model_argv(python, agent, "stream", model, job.threads, target, p.xnnpack),
            "--arrivals", s.arrivals, "--period-ns", str(s.period_ns), "--frames", str(s.frames),
            "--deadline-ns", str(s.deadline_ns), "--policy", s.policy, "--seed", str(s.seed),
            "--warmup", str(p.warmup), "--warmup-time", repr(p.warmup_time_s),
            "--spin-ns", str(p.spin_us * 1000), "--device-work-ns", str(p.device_work_us * 1000),
            "--state-interval", repr(p.state_interval_s)]
    if job.cooldown is not None and job.cooldown.max_s > 0:
        argv += ["--cooldown-max", repr(job.cooldown.max_s)]
        if job.cooldown.target_temp_c is not None:
            argv += ["--cooldown-temp", repr(job.cooldown.target_temp_c)]
    return argv + _lifeline_argv(heartbeat_s, inputs, pipeline)


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

    def _stage_loop(self, model: Path, inputs: Path | None, pipeline: Path | None,
                    emit: Emit) -> tuple[str, str, str | None, str | None]:
        """The application loop's files on the board (agent, model, inputs, pipeline): their paths there."""
        return (self._stage(agent_path(), emit, "agent").remote_path, self._stage(model, emit, "model").remote_path,
                self._stage(inputs, emit, "inputs").remote_path if inputs else None,
                self._stage(pipeline, emit, "pipeline").remote_path if pipeline else None)

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        agent, model, inputs, pipeline = self._stage_loop(job.model, job.plan.inputs, job.plan.pipeline, emit)
        argv = agent_argv(self.python, agent, model, job, self.target, inputs, pipeline,
                          self.transport.heartbeat_s)
        self._run(argv, f"benchmarking {job.model.name}", emit, cancel, last="summary")

    def evaluate(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """The evaluation pass: the agent's eval mode on the job's prepared samples (``job.eval``)."""
        assert job.eval is not None  # the scenario runs the pass only for jobs that have one
        agent = self._stage(agent_path(), emit, "agent").remote_path
        model = self._stage(job.model, emit, "model").remote_path
        inputs = self._stage(job.eval.path, emit, "eval").remote_path
        argv = eval_argv(self.python, agent, model, inputs, job, self.target, self.transport.heartbeat_s)
        self._run(argv, f"evaluating {job.model.name}", emit, cancel, last="eval_summary")

    def measure_power(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """The power pass: the agent's power mode, with the job's power plan (``job.power``)."""
        assert job.power is not None  # the scenario runs the pass only for jobs that have one
        agent = self._stage(agent_path(), emit, "agent").remote_path
        model = self._stage(job.model, emit, "model").remote_path
        inputs = self._stage(job.plan.inputs, emit, "inputs").remote_path if job.plan.inputs else None
        argv = power_argv(self.python, agent, model, inputs, job, self.target, self.transport.heartbeat_s)
        self._run(argv, f"measuring the power of {job.model.name}", emit, cancel, last="power_summary")

    def profile(self, job: ProfileJob, emit: Emit, cancel: threading.Event) -> None:
        """Time the job's prefixes and the whole model in the agent's profile mode."""
        agent = self._stage(agent_path(), emit, "agent").remote_path
        models = [self._stage(p, emit, "prefix").remote_path for p in job.prefixes]
        models.append(self._stage(job.model, emit, "model").remote_path)
        argv = profile_argv(self.python, agent, models, job, self.target, self.transport.heartbeat_s)
        self._run(argv, f"profiling {job.model.name}", emit, cancel, last="summary")

    def stream(self, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
        """Run ``job.schedule`` in the agent's stream mode (after ``job.cooldown``, when set);
        ``cancel`` (Ctrl-C, or a --find-max trial whose answer is clear) stops the agent."""
        agent, model, inputs, pipeline = self._stage_loop(job.model, job.plan.inputs, job.plan.pipeline, emit)
        argv = stream_argv(self.python, agent, model, job, self.target, inputs, pipeline,
                           self.transport.heartbeat_s)
        self._run(argv, f"streaming {job.model.name}", emit, cancel, last="stream_summary")

    def _run(self, argv: list[str], what: str, emit: Emit, cancel: threading.Event, *, last: str) -> None:
        log.info("%s: %s", self.target.name, shlex.join(argv))
        proc = self.transport.run(argv)
        try:
            self._relay(proc, what, emit, cancel, last)
        finally:
            proc.terminate()  # idempotent; after an error, a timeout or cancel it stops the agent

    def _relay(self, proc: Process, what: str, emit: Emit, cancel: threading.Event, last: str) -> None:
        """Pass the agent's messages to ``emit`` until one of type ``last``; ``what`` the agent is
        doing ("benchmarking m.tflite") names the job in errors."""
        name = self.target.name
        silence_limit = silence_limit_s(self.target)
        seen = time.monotonic()
        while not cancel.is_set():
            try:
                line = proc.readline(POLL_S)
            except EOFError:
                break
            if line is None:
                if time.monotonic() - seen > silence_limit:
                    raise TransportError(
                        f"no message from the agent for {silence_limit:.0f} s while {what}", target=name,
                        hint="check the board (is it overloaded, or hung?), or raise timeout_s in targets.toml")
                continue
            seen = time.monotonic()
            msg = parse_line(line, name)
            if msg is None:
                log.debug("%s: agent stdout: %s", name, line)
                continue
            emit(msg)
            if msg["type"] == "error":
                code = str(msg.get("code", "agent"))
                raise AgentError(str(msg.get("message")), code=code, target=name, hint=HINTS.get(code))
            if msg["type"] == last:
                return
        if cancel.is_set():
            return
        self._explain_death(proc, what, last)

    def _explain_death(self, proc: Process, what: str, last: str) -> None:
        status = proc.wait(timeout=5.0)
        tail = proc.stderr_tail().strip().splitlines()
        last_words = f": {tail[-1]}" if tail else ""
        if status is not None and status < 0:
            sig = signal.Signals(-status).name
            raise AgentError(f"the agent died with {sig} while {what}{last_words}",
                             code="crashed", target=self.target.name,
                             hint="the runtime crashed on this model: try --xnnpack off, or another "
                                  "runtime (runtime = ... in targets.toml)")
        raise AgentError(f"the agent exited (status {status}) before its {last} while {what}{last_words}",
                         code="crashed", target=self.target.name,
                         hint=f"run `harness doctor {self.target.name}`")

    def close(self) -> None:
        self.transport.close()

