"""The microcontroller driver: SERIAL_PROTOCOL.md frames in, normalized PROTOCOL.md messages out.

For each job it says HELLO, checks that TFLite Micro can run the model (harness.models.micro:
refused when it cannot, offset buffers inlined with a ``repair`` message) and that it can fit
(model size against the device's largest model, TFLite Micro arena measured on the host
against the device's arena) *before* uploading, uploads in acknowledged chunks (or uses the
model built into the firmware when its SHA-256 matches; mcu_upload.py), stages inputs (mcu_inputs.py), then
runs the plan in batches: the cold first Invoke, warm-up, and the ABBA blocks with and without
Invoke of the Linux agent's own ``schedule``.
All times are the device's timer ticks converted to ns; the emulated MCU's are labelled
``emulated`` (host timings of the TFLite Micro kernels).

Stages of one MCU iteration: ``set_input``, ``invoke`` (with-mode only), ``get_output``; ``loop_ns``
spans the iteration. Samples are emitted per block; a block cut short by a fault is still emitted
with ``"partial": true``, so nothing received is lost.

Each ``benchmark`` call loads the model again (UPLOAD, or USE_BUILTIN), which makes the device
build a fresh interpreter: on a microcontroller that is what one *process* of a benchmark of
several processes is (harness.scenarios.benchmark.run_processes calls it once per process).

``evaluate`` runs the evaluation pass (mcu_outputs.py) on firmware with flag EVAL, on the model the
last ``benchmark`` left loaded when the device still holds it (no second upload), else loading it.
``stream`` (Streamer) runs a schedule on firmware with flag STREAM, the same way (mcu_stream.py).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from device_agents.linux.tflite_agent import Schedule, median_ns, schedule
from device_agents.wire import serial_frames as sf
from harness.config import SerialOptions, Target
from harness.errors import AgentError, ConfigError, HarnessError, MeasurementError, TransportError
from harness.lab.drivers import mcu_stream
from harness.lab.drivers.base import Emit, Message
from harness.lab.drivers.emulator import EmulatedMcu
from harness.lab.drivers.mcu_fit import fit_check
from harness.lab.drivers.mcu_inputs import DeviceInputs, read_samples
from harness.lab.drivers.mcu_messages import (
    PROTOCOL_VERSION,
    STAGES,
    dtype_name,
    hello_message,
    model_message,
    samples_message,
    ticks_to_ns,
)
from harness.lab.drivers.mcu_outputs import outputs_message, profile_message, run_eval
from harness.lab.drivers.mcu_upload import upload_or_builtin
from harness.lab.transports.serial import FramedLink, SerialLink
from harness.models import micro
from harness.models.files import sha256
from harness.plan import Job
from harness.stream_plan import StreamJob

log = logging.getLogger(__name__)

AnyJob = Job | StreamJob  # what the steps before a benchmark, an evaluation or a stream share

class Cancelled(Exception):
    """The runner asked to stop; not an error."""


class McuDriver:
    """Benchmarks jobs on one serial board (or the emulated MCU it starts itself)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        opts = target.options
        assert isinstance(opts, SerialOptions)  # open_driver gives the other kinds the LinuxAgentDriver
        self.baud = opts.baud
        self.timeout_s = opts.command_timeout_s
        self.emulator: EmulatedMcu | None = None
        self._cancel = threading.Event()
        if opts.emulator:
            extra: tuple[str, ...] = ()
            if opts.max_model is not None:
                extra = ("--max-model", str(opts.max_model))
            self.emulator = EmulatedMcu(target.name, baud=self.baud, arena=opts.arena, extra_args=extra)
            port = self.emulator.port
        else:
            port = str(opts.port)
        try:
            self.link = FramedLink(SerialLink(target.name, port, self.baud), self._cancel.is_set)
        except HarnessError:
            self.close()
            raise
        self.info: dict[str, Any] = {}
        self._loaded: tuple[str, dict[str, Any]] | None = None  # (sha256, MODEL_INFO) last loaded here

    # ------------------------------------------------------------------ plumbing

    def _req(self, type_: int, payload: bytes = b"", **kw: Any) -> sf.Frame:
        """One request; a dead emulator or a cancel is reported as such, not as a timeout."""
        try:
            return self.link.request(type_, payload, **kw)
        except TransportError as exc:
            if self._cancel.is_set():
                raise Cancelled() from exc
            if self.emulator is not None and self.emulator.exited():
                tail = self.emulator.stderr_tail().splitlines()
                raise TransportError(f"the emulated MCU exited (status {self.emulator.proc.returncode})"
                                     + (f": {tail[-1]}" if tail else ""), target=self.target.name,
                                     hint="run again; report it if it repeats") from exc
            raise

    def probe(self) -> Message:
        """The board's ``hello`` message (what it is, its limits), without loading a model."""
        self.info = self.link.hello()
        return hello_message(self.info, self.baud)

    def close(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            link.close()
        if self.emulator is not None:
            self.emulator.stop()

    # ------------------------------------------------------------------ the job

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        self._cancellable(cancel, self._benchmark, job, emit)

    def evaluate(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        """The evaluation pass (Evaluator.evaluate): every sample of ``job.eval`` through EVAL."""
        self._cancellable(cancel, self._evaluate, job, emit)

    def stream(self, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
        """Streamer.stream: the schedule runs on the device in STREAM batches (mcu_stream.py)."""
        self._cancellable(cancel, lambda j, e: self._stream(j, e, cancel), job, emit)

    def _cancellable(self, cancel: threading.Event, fn: Callable[[Any, Emit], None], job: AnyJob, emit: Emit) -> None:
        """``fn(job, emit)``, stopped promptly when the runner sets ``cancel``."""
        stop = threading.Event()

        def forward() -> None:  # cancel is the runner's event; the link polls ours
            while not stop.is_set():
                if cancel.wait(0.1):
                    self._cancel.set()
                    return

        watcher = threading.Thread(target=forward, daemon=True, name=f"{self.target.name}-cancel")
        watcher.start()
        try:
            fn(job, emit)
        except (Cancelled, mcu_stream.Stopped):
            log.info("%s: cancelled", self.target.name)
        finally:
            stop.set()
            watcher.join()
            self._cancel.clear()

    def _one_loop(self, job: AnyJob) -> None:
        """A microcontroller runs the model alone, on one thread: no pipeline."""
        name = self.target.name
        if job.plan.pipeline is not None:
            raise ConfigError(f"{job.plan.pipeline.name}: pipelines run on Linux boards only, not on "
                              f"the microcontroller {name}", target=name,
                              hint="drop --pipeline for serial targets (--device-work-us gives a stream a known load)")
        if job.threads != 1:
            log.warning("%s: a microcontroller runs one thread; --threads %d is ignored", name, job.threads)

    def _benchmark(self, job: Job, emit: Emit) -> None:
        name = self.target.name
        self._one_loop(job)
        info = self.info = self.link.hello()
        emit(hello_message(info, self.baud))
        model = self._micro_model(job, emit)
        fit_check(self.target.name, job.model, model, info, self.emulator is not None)
        minfo = self._load_model(job, model, emit, info)
        inputs = [self._tensor(0, i) for i in range(minfo["n_inputs"])]
        outputs = [self._tensor(1, i) for i in range(minfo["n_outputs"])]
        timer_hz = int(info["timer_hz"])
        emit(model_message(job.model.name, len(model), minfo, inputs, outputs, timer_hz))
        self._measure(job, emit, self._stage_inputs(job, inputs), timer_hz)
        emit(outputs_message(self._req, name, outputs, self.link.max_payload))
        if info["flags"] & sf.FLAG_PROFILER:
            emit(profile_message(self._req, timer_hz))

    def _evaluate(self, job: Job, emit: Emit) -> None:
        name = self.target.name
        assert job.eval is not None  # the scenario runs the pass only for jobs that have one
        info = self.info = self.link.hello()
        emit({**hello_message(info, self.baud), "mode": "eval"})
        if not info["flags"] & sf.FLAG_EVAL:
            raise AgentError(f"the firmware on {self.link.link.port} has no EVAL request (HELLO flag EVAL is "
                             "not set): it cannot send the outputs of every sample", code="unsupported",
                             target=name, hint="flash the firmware that ships with this harness "
                                               "(device_agents/firmware), or run without --eval on this board")
        model = self._micro_model(job, emit)
        minfo = self._model_on_device(job, model, emit, info)
        inputs = [self._tensor(0, i) for i in range(minfo["n_inputs"])]
        outputs = [self._tensor(1, i) for i in range(minfo["n_outputs"])]
        emit(model_message(job.model.name, len(model), minfo, inputs, outputs, int(info["timer_hz"])))
        staged = DeviceInputs(job.eval.path.name, read_samples(job.eval.path, inputs, name), self._send_input,
                              self.link.max_payload)
        run_eval(self._req, name, staged, outputs, emit, self.link.max_payload, self.timeout_s)

    def _stream(self, job: StreamJob, emit: Emit, cancel: threading.Event) -> None:
        self._one_loop(job)
        info = self.info = self.link.hello()
        emit({**hello_message(info, self.baud), "mode": "stream"})
        mcu_stream.require_stream(info, self.link.link.port, self.target.name)
        model = self._micro_model(job, emit)
        minfo = self._model_on_device(job, model, emit, info)
        inputs = [self._tensor(0, i) for i in range(minfo["n_inputs"])]
        outputs = [self._tensor(1, i) for i in range(minfo["n_outputs"])]
        timer_hz = int(info["timer_hz"])
        emit(model_message(job.model.name, len(model), minfo, inputs, outputs, timer_hz))
        mcu_stream.cool_down(job, emit, cancel)
        staged = self._stage_inputs(job, inputs)
        if staged.count > 1:
            log.warning("%s: a stream on a microcontroller feeds sample 0 of %s to every frame (the device "
                        "holds one staged input)", self.target.name, staged.label)
        limit = mcu_stream.max_frames(self._req, self.target.name)
        device = mcu_stream.DeviceSchedule.of(job, timer_hz)
        first = self._run(sf.MODE_WITH, 1, timer_hz, 0.0)[0]
        emit(mcu_stream.plan_message(job, device, staged.label, limit))
        warm = self._warm_up(job, timer_hz, first[0])
        emit({"v": PROTOCOL_VERSION, "type": "warmup", "loop_ns": warm})
        service = device.work + mcu_stream.to_ticks(median_ns(warm, first[0]), timer_hz)
        mcu_stream.StreamBatches(self._req, self.target.name, device, limit, self.timeout_s, cancel).run(emit, service)

    def _model_on_device(self, job: AnyJob, model: bytes, emit: Emit, info: dict[str, Any]) -> dict[str, Any]:
        """MODEL_INFO of the job's model: the one loaded last over this link if the device still
        holds it (GET_TENSOR answers BAD_STATE after a reset), else uploaded (or built in) now."""
        if self._loaded is not None and self._loaded[0] == sha256(model):
            try:
                self._tensor(1, 0)
                return self._loaded[1]
            except AgentError as exc:
                if exc.code != "bad_state":
                    raise
                log.info("%s: the device lost %s (reset?): loading it again", self.target.name, job.model.name)
        fit_check(self.target.name, job.model, model, info, self.emulator is not None)
        return self._load_model(job, model, emit, info)

    def _micro_model(self, job: AnyJob, emit: Emit) -> bytes:
        """The bytes to send (harness.models.micro: refused, or repaired and said so)."""
        model, repair = micro.for_micro(job.model, self.target.name)
        if repair is not None:
            emit({"v": PROTOCOL_VERSION, "type": "repair", **repair, "host_measured": True})
        return model

    def _load_model(self, job: AnyJob, model: bytes, emit: Emit, info: dict[str, Any]) -> dict[str, Any]:
        """Load ``model``; a refusal that means TFLite Micro cannot run it is ``unsupported_model``."""
        self._loaded = None
        try:
            minfo = upload_or_builtin(self._req, self.link, self.target.name, job.model.name, model, emit, info,
                                      self.timeout_s, self.baud)
        except AgentError as exc:
            unsupported = micro.refused(exc, job.model.name)
            if unsupported is None:
                raise
            raise unsupported from exc
        self._loaded = (sha256(model), minfo)
        return minfo

    def _tensor(self, which: int, index: int) -> dict[str, Any]:
        t = sf.unpack_tensor(self._req(sf.T.GET_TENSOR, bytes([which, index]), what="GET_TENSOR").payload)
        t["dtype_name"] = dtype_name(t["dtype"])
        return t

    def _stage_inputs(self, job: AnyJob, inputs: list[dict[str, Any]]) -> DeviceInputs:
        """Random inputs drawn on the device, or the file's samples with sample 0 staged."""
        path = job.plan.inputs
        if path is None:
            self._req(sf.T.RANDOM_INPUT, struct.pack("<I", job.plan.seed & 0xFFFFFFFF), reply_bytes=0,
                      work_s=self.timeout_s, what="RANDOM_INPUT")
            return DeviceInputs("random", None, self._send_input, self.link.max_payload)
        samples = read_samples(path, inputs, self.target.name)
        staged = DeviceInputs(path.name, samples, self._send_input, self.link.max_payload)
        if len(samples) > 1:
            log.info("%s: %d samples in %s: the host stages each between RUN batches", self.target.name,
                     len(samples), path.name)
        staged.stage(0)
        return staged

    def _send_input(self, payload: bytes, what: str) -> None:
        self._req(sf.T.SET_INPUT, payload, reply_bytes=4, what=what)

    def _run(self, mode: int, count: int, timer_hz: int, per_iter_s: float,
             into: list[tuple[int, ...]] | None = None) -> list[tuple[int, ...]]:
        """``count`` iterations in batches; rows of ns in SAMPLE_FIELDS order.

        Rows are appended to ``into`` batch by batch, so a caller keeps what came before a fault.
        """
        rows: list[tuple[int, ...]] = [] if into is None else into
        start = len(rows)
        batch_max = max(1, min(int(self.info["max_batch"]), sf.max_batch_rows(self.link.max_payload)))
        while len(rows) - start < count:
            n = min(batch_max, count - (len(rows) - start))
            reply = self._req(sf.T.RUN, struct.pack("<BBH", mode, 0, n), work_s=self.timeout_s + 3 * n * per_iter_s,
                              reply_bytes=4 + 16 * n, what=f"RUN of {n} iterations")
            got_mode, batch = sf.unpack_samples(reply.payload)
            if got_mode != mode or len(batch) != n:
                raise TransportError(f"the device returned {len(batch)} samples of mode {got_mode} for a RUN of "
                                     f"{n} in mode {mode}", target=self.target.name,
                                     hint="flash the firmware that ships with harness")
            if any(v == sf.UNKNOWN_U32 for row in batch for v in row):
                limit = sf.UNKNOWN_U32 / timer_hz
                raise MeasurementError(f"an iteration took longer than the device timer's range ({limit:.1f} s at "
                                       f"{timer_hz} Hz); its samples cannot be trusted", target=self.target.name,
                                       hint="use a smaller model, or firmware with a slower sample timer")
            rows += [tuple(ticks_to_ns(v, timer_hz) for v in row) for row in batch]
        return rows

    def _measure(self, job: Job, emit: Emit, inputs: DeviceInputs, timer_hz: int) -> None:
        plan = job.plan
        first = self._run(sf.MODE_WITH, 1, timer_hz, 0.0)[0]
        warm = self._warm_up(job, timer_hz, first[0])
        per_iter_ns = median_ns(warm, first[0])
        sched = schedule(plan.iterations, plan.duration_s, plan.min_iterations, plan.max_iterations,
                         plan.blocks, per_iter_ns)
        emit({"v": PROTOCOL_VERSION, "type": "plan", "warmup": len(warm), "warmup_time_s": plan.warmup_time_s,
              "iterations": sched.iterations, "blocks": sched.blocks, "settle": plan.settle, "seed": plan.seed,
              "inputs": inputs.label, "pipeline": None, "stages": list(STAGES)})
        emit({"v": PROTOCOL_VERSION, "type": "first_invoke", "ns": first[2]})
        emit({"v": PROTOCOL_VERSION, "type": "warmup", "loop_ns": warm})
        wall0 = time.monotonic_ns()
        for i, (block, with_invoke) in enumerate(sched.order):
            mode = sf.MODE_WITH if with_invoke else sf.MODE_WITHOUT
            self._half_block(job, emit, inputs, sched, block, mode, timer_hz, per_iter_ns / 1e9)
            if i % 2:  # both modes of the block are done
                emit({"v": PROTOCOL_VERSION, "type": "progress", "done": (i + 1) * sched.per_block,
                      "total": 2 * sched.iterations})
        log.debug("%s: %d input stagings", self.target.name, inputs.stagings)
        emit({"v": PROTOCOL_VERSION, "type": "summary", "iterations": sched.iterations,
              "wall_ns": time.monotonic_ns() - wall0,
              "wall_host_measured": True, "max_rss_kb": None, "env_end": {"temp_c": None, "freq_khz": None},
              "serial": {"retransmissions": self.link.retransmissions, "crc_errors": self.link.decoder.crc_errors,
                         "discarded_bytes": self.link.decoder.discarded}})

    def _warm_up(self, job: AnyJob, timer_hz: int, first_ns: int) -> list[int]:
        """At least ``warmup`` iterations and ``warmup_time_s`` of device time, with Invoke."""
        plan = job.plan
        warm: list[int] = []
        warm_ns = 0
        per_iter_ns = first_ns
        while len(warm) < plan.warmup or warm_ns < plan.warmup_time_s * 1e9:
            want = max(1, plan.warmup - len(warm))
            if len(warm) >= plan.warmup:  # time-bound: enough for the rest of warmup_time_s
                want = int((plan.warmup_time_s * 1e9 - warm_ns) / max(per_iter_ns, 1)) + 1
            batch = self._run(sf.MODE_WITH, min(want, 1000), timer_hz, per_iter_ns / 1e9)
            warm += [r[0] for r in batch]
            warm_ns += sum(r[0] for r in batch)
            per_iter_ns = median_ns(warm, first_ns)
        return warm

    def _half_block(self, job: Job, emit: Emit, inputs: DeviceInputs, sched: Schedule, block: int, mode: int,
                    timer_hz: int, per_iter_s: float) -> None:
        """One mode of one block: its settle iterations, then its samples, emitted even when cut short."""
        start = block * sched.per_block
        settle: list[tuple[int, ...]] = []
        if job.plan.settle:
            inputs.stage(inputs.sample_of(start, sched.iterations))
            settle = self._run(mode, job.plan.settle, timer_hz, per_iter_s)
        rows: list[tuple[int, ...]] = []
        try:
            for sample, count in inputs.runs(start, sched.per_block, sched.iterations):
                inputs.stage(sample)
                self._run(mode, count, timer_hz, per_iter_s, into=rows)
        finally:
            if rows:
                emit(samples_message(mode, block, rows, settle, partial=len(rows) < sched.per_block))
