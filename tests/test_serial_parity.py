"""One plan, one meaning on every board kind: the Linux agent and the MCU driver, both run for real.

The Linux agent runs as a local board (device_agents/linux/tflite_agent.py in a child process,
through LinuxAgentDriver); the MCU driver talks to the emulated MCU on a pty. Both get the same
Job, and the tests compare what they actually did: the blocks, modes and sample counts in their
``samples`` messages, and which input samples reached the model. The Linux agent reports the
samples it used through a recording pipeline; the MCU's are read off the line (SET_INPUT and RUN
frames, decoded from a pty-in-the-middle) and off the ``outputs`` of its last Invoke.
"""

from __future__ import annotations

import collections
import dataclasses
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as LiteRT
from hypothesis import given
from hypothesis import strategies as st

from device_agents.linux.tflite_agent import schedule
from device_agents.wire import serial_frames as sf
from harness.config import LocalOptions, SerialOptions, Target
from harness.errors import AgentError
from harness.lab.drivers import open_driver
from harness.lab.drivers.base import Driver
from harness.lab.drivers.mcu import McuDriver
from harness.lab.drivers.mcu_inputs import sample_runs
from harness.models.files import sha256
from harness.plan import Job, Plan
from harness.results.benchmark import from_lines
from tests.agentrun import run_agent
from tests.serialkit import (
    LineProxy,
    fc_model,
    running_emulator,
    serial_target,
    sub_model,
    write_model,
)


def _job(model: Path, plan: Plan, target: str) -> Job:
    return Job(target=target, model=model, model_sha256=sha256(model), threads=1, plan=plan)


def _run(driver: Driver, job: Job) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    driver.benchmark(job, messages.append, threading.Event())
    return messages


def _one(messages: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in messages if m["type"] == kind)


@pytest.fixture(scope="module")
def linux() -> Iterator[Driver]:
    driver = open_driver(Target(name="local", kind="local", options=LocalOptions(timeout_s=60)))
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def mcu() -> Iterator[McuDriver]:
    driver = McuDriver(Target(name="mcu-sim", kind="serial", options=SerialOptions(emulator=True, baud=921600)))
    yield driver
    driver.close()


# --------------------------------------------------------------------------- the schedule

def test_schedule_counts_and_abba_order() -> None:
    s = schedule(20, 1.0, 100, 20000, 3, 1000)  # fixed count, rounded up to a multiple of 3 blocks
    assert (s.iterations, s.blocks, s.per_block) == (21, 3, 7)
    assert s.order == ((0, True), (0, False), (1, False), (1, True), (2, True), (2, False))
    assert schedule(0, 0.01, 7, 40, 2, 1000).iterations == 40  # 10 000 wanted, max_iterations wins
    assert schedule(0, 0.01, 7, 40, 2, 10_000_000).iterations == 8  # 1 wanted, min 7, rounded to 8
    assert schedule(0, 0.5, 1, 10**6, 4, 1_000_000).iterations == 500
    assert schedule(5, 1.0, 100, 20000, 0, 1).order == ((0, True), (0, False))  # --blocks 0: one block
    assert schedule(2, 1.0, 100, 20000, 4, 1).iterations == 4  # at least one iteration per block


@given(n=st.integers(1, 300), samples=st.integers(1, 50), cut=st.integers(1, 300))
def test_sample_runs_use_every_sample_as_often_as_linux(n: int, samples: int, cut: int) -> None:
    cut = min(cut, n)
    runs = sample_runs(0, cut, n, samples) + sample_runs(cut, n - cut, n, samples)  # cut like a block edge
    assert all(count > 0 for _, count in runs) and sum(count for _, count in runs) == n
    used = collections.Counter()
    for sample, count in runs:
        used[sample] += count
    linux = collections.Counter(i % samples for i in range(n))
    assert set(used) == set(linux)  # the same samples: all of them, or the first n
    assert sorted(used.values()) == sorted(linux.values())  # each used as often, within one
    order = [sample for sample, _ in runs]
    assert order == sorted(order)  # contiguous runs, in sample order


def _executed(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What a board did, from its messages and from the benchmark the store would keep."""
    plan = _one(messages, "plan")
    samples = [m for m in messages if m["type"] == "samples"]
    bench = from_lines({"target": "t", "model": "m", "model_sha256": "", "threads": 1}, messages)
    assert [(b.index, b.mode, len(b.loop_ns)) for b in bench.blocks] == [
        (m["block"], m["mode"], len(m["loop_ns"])) for m in samples]
    return {"iterations": plan["iterations"], "blocks": plan["blocks"],
            "summary": _one(messages, "summary")["iterations"],
            "order": [(m["block"], m["mode"], len(m["loop_ns"]), len(m["settle_ns"])) for m in samples],
            "progress": [(m["done"], m["total"]) for m in messages if m["type"] == "progress"]}


def _scheduled(messages: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """What the schedule says a board with this warm-up should have done."""
    s = schedule(plan.iterations, plan.duration_s, plan.min_iterations, plan.max_iterations, plan.blocks,
                 sorted(_one(messages, "warmup")["loop_ns"])[len(_one(messages, "warmup")["loop_ns"]) // 2])
    return {"iterations": s.iterations, "blocks": s.blocks, "summary": s.iterations,
            "order": [(b, "with" if w else "without", s.per_block, plan.settle) for b, w in s.order],
            "progress": [(2 * s.per_block * (b + 1), 2 * s.iterations) for b in range(s.blocks)]}


PLANS = {
    "odd-blocks": Plan(warmup=2, warmup_time_s=0.0, iterations=20, blocks=3, settle=1),
    "one-block": Plan(warmup=1, warmup_time_s=0.0, iterations=5, blocks=1, settle=2),
    "blocks-0": Plan(warmup=1, warmup_time_s=0.0, iterations=6, blocks=0, settle=0),
    "duration-clamped": Plan(warmup=3, warmup_time_s=0.0, duration_s=0.05, min_iterations=7, max_iterations=40,
                             blocks=2, settle=1),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_linux_agent_and_mcu_driver_run_the_same_schedule(tmp_path: Path, linux: Driver, mcu: McuDriver,
                                                          name: str) -> None:
    plan = PLANS[name]
    model = write_model(tmp_path, "fc.tflite", fc_model(k=16, m=4))
    on_linux = _run(linux, _job(model, plan, "local"))
    on_mcu = _run(mcu, _job(model, plan, "mcu-sim"))
    assert _executed(on_linux) == _executed(on_mcu) == _scheduled(on_mcu, plan)
    if name == "odd-blocks":  # an independent figure: 20 rounded up to 21 over 3 ABBA blocks
        assert _executed(on_mcu)["order"] == [(0, "with", 7, 1), (0, "without", 7, 1), (1, "without", 7, 1),
                                              (1, "with", 7, 1), (2, "with", 7, 1), (2, "without", 7, 1)]


def test_duration_plans_follow_each_boards_own_warm_up(tmp_path: Path, linux: Driver, mcu: McuDriver) -> None:
    """Unclamped, the count depends on the board's speed: each side derives it from its own warm-up median."""
    plan = Plan(warmup=5, warmup_time_s=0.0, duration_s=0.01, min_iterations=1, max_iterations=10**6,
                blocks=2, settle=0)
    model = write_model(tmp_path, "fc.tflite", fc_model(k=16, m=4))
    for messages in (_run(linux, _job(model, plan, "local")), _run(mcu, _job(model, plan, "mcu-sim"))):
        assert _executed(messages) == _scheduled(messages, plan)
        assert _executed(messages)["iterations"] > 20  # the duration, not a clamp, set it


# --------------------------------------------------------------------------- --inputs

RECORDER = '''RECORD = {path!r}


def preprocess(raw):  # writes the first value of each array it is given, in model input order
    with open(RECORD, "a") as f:
        f.write(" ".join(repr(float(a.ravel()[0])) for a in raw) + "\\n")
    return raw
'''


def _linux_inputs(linux: Driver, model: Path, plan: Plan, tmp_path: Path) -> list[list[float]]:
    """The first value of each input array of every iteration the Linux agent ran, in order."""
    record = tmp_path / "record.txt"
    app = tmp_path / "recorder.py"
    app.write_text(RECORDER.format(path=str(record)))
    messages = _run(linux, _job(model, dataclasses.replace(plan, pipeline=app), "local"))
    assert messages[-1]["type"] == "summary"
    return [[float(v) for v in line.split()] for line in record.read_text().splitlines()]


class Wiretap:
    """The emulated MCU behind a pty-in-the-middle that decodes every frame the host sends."""

    def __init__(self, port: str) -> None:
        self.proxy = LineProxy(port)
        self.decoder = sf.Decoder()
        self.frames: list[sf.Frame] = []
        self.proxy.to_device = self._tap

    def _tap(self, data: bytes) -> bytes:
        self.frames += [e for e in self.decoder.feed(data) if isinstance(e, sf.Frame)]
        return data

    def trace(self) -> list[tuple[str, Any]]:
        """("set", (input index, values)) and ("run", (mode, count)) in the order the host sent them."""
        out: list[tuple[str, Any]] = []
        for f in self.frames:
            if f.type == sf.T.SET_INPUT:
                out.append(("set", (f.payload[0], np.frombuffer(f.payload[5:], np.float32).tolist())))
            elif f.type == sf.T.RUN:
                mode, _, count = struct.unpack("<BBH", f.payload)
                out.append(("run", (mode, count)))
        return out


def _host_outputs(model: Path, arrays: list[np.ndarray]) -> np.ndarray:
    ref = LiteRT(model_path=str(model))
    ref.allocate_tensors()
    for detail, array in zip(ref.get_input_details(), arrays, strict=True):
        ref.set_tensor(detail["index"], array)
    ref.invoke()
    return ref.get_tensor(ref.get_output_details()[0]["index"]).ravel()


def test_npz_keyed_by_name_feeds_each_input_alike_on_linux_and_mcu(tmp_path: Path, linux: Driver) -> None:
    model = write_model(tmp_path, "sub.tflite", sub_model(k=4))  # inputs: beta, then alpha
    alpha = np.stack([np.full((1, 4), j + 1.0, np.float32) for j in range(3)])  # [3, 1, 4]: 3 samples
    beta = np.stack([np.full((1, 4), 10.0 * (j + 1), np.float32) for j in range(3)])
    inputs = tmp_path / "named.npz"
    np.savez(inputs, alpha=alpha, beta=beta)  # file order alpha, beta; the model's is beta, alpha
    plan = Plan(warmup=1, warmup_time_s=0.0, iterations=12, blocks=2, settle=0, inputs=inputs)

    seen = _linux_inputs(linux, model, plan, tmp_path)
    assert {tuple(v) for v in seen} == {(10.0, 1.0), (20.0, 2.0), (30.0, 3.0)}  # (beta_j, alpha_j): by name

    with running_emulator() as sim:
        tap = Wiretap(sim.port)
        driver = McuDriver(serial_target(tap.proxy.host_port, timeout_s=2.0))
        try:
            messages = _run(driver, _job(model, plan, "board"))
        finally:
            driver.close()
            tap.proxy.close()
    staged = [v for kind, v in tap.trace() if kind == "set"]
    assert {(i, vals[0]) for i, vals in staged} == {(0, 10.0), (0, 20.0), (0, 30.0), (1, 1.0), (1, 2.0), (1, 3.0)}
    got = np.array(_one(messages, "outputs")["outputs"][0]["values"], np.float32)
    # the last Invoke ran the last sample (iterations 8..11 of 12 are sample 2): beta - alpha = 27
    np.testing.assert_array_equal(got, _host_outputs(model, [beta[2], alpha[2]]))
    assert got.tolist() == [27.0] * 4 and _one(messages, "plan")["inputs"] == "named.npz"


def test_x_y_file_cycles_every_sample_on_the_mcu_as_on_linux(tmp_path: Path, linux: Driver) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=16, m=4))
    x = np.stack([np.linspace(-1, 1, 16, dtype=np.float32) * (j + 1) for j in range(3)])  # [3, 16]
    inputs = tmp_path / "test.npz"
    np.savez(inputs, y=np.arange(3), x=x)  # labels first: file order would feed y
    plan = Plan(warmup=1, warmup_time_s=0.0, iterations=12, blocks=2, settle=0, inputs=inputs)
    first = [float(x[j, 0]) for j in range(3)]

    seen = [v[0] for v in _linux_inputs(linux, model, plan, tmp_path)]
    # first Invoke, warm-up, then the blocks (with, without, without, with) of 6 iterations each
    linux_modes = {"with": seen[2:8] + seen[20:26], "without": seen[8:20]}

    with running_emulator() as sim:
        tap = Wiretap(sim.port)
        driver = McuDriver(serial_target(tap.proxy.host_port, timeout_s=2.0))
        try:
            messages = _run(driver, _job(model, plan, "board"))
        finally:
            driver.close()
            tap.proxy.close()
    trace = tap.trace()
    staged = [first.index(value[1][0]) for kind, value in trace if kind == "set"]
    # i * 3 // 12 over two blocks of 6: samples 0,0,0,0,1,1 | 1,1,2,2,2,2 in each mode, restaged per half
    assert staged == [0, 1, 0, 1, 2, 1, 2]
    mcu_modes: dict[str, list[float]] = {"with": [], "without": []}
    assert [kind for kind, _ in trace[:3]] == ["set", "run", "run"]  # sample 0, first Invoke, warm-up
    current = trace[0][1][1][0]
    for kind, value in trace[3:]:
        if kind == "set":
            current = value[1][0]
        else:
            mcu_modes["with" if value[0] == sf.MODE_WITH else "without"] += [current] * value[1]
    for mode in ("with", "without"):  # every sample, as often as on Linux
        assert collections.Counter(mcu_modes[mode]) == collections.Counter(linux_modes[mode]) == {
            v: 4 for v in first}
    got = np.array(_one(messages, "outputs")["outputs"][0]["values"], np.float32)
    np.testing.assert_allclose(got, _host_outputs(model, [x[2:3]]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arrays", [
    {"alpha": np.zeros((1, 4), np.float32), "gamma": np.zeros((1, 4), np.float32), "c": np.zeros(1)},
    {"alpha": np.zeros((2, 1, 5), np.float32), "beta": np.zeros((2, 1, 5), np.float32)},
    {"alpha": np.zeros((1, 4), np.float64), "beta": np.zeros((1, 4), np.float64)},
    {"alpha": np.zeros((0, 1, 4), np.float32), "beta": np.zeros((0, 1, 4), np.float32)},
], ids=["names", "shape", "dtype", "empty"])
def test_bad_inputs_are_the_same_error_on_linux_and_mcu(tmp_path: Path, mcu: McuDriver,
                                                        arrays: dict[str, np.ndarray]) -> None:
    model = write_model(tmp_path, "sub.tflite", sub_model(k=4))
    inputs = tmp_path / "bad.npz"
    np.savez(inputs, **arrays)
    msgs, status, _ = run_agent("run", "--model", str(model), "--inputs", str(inputs), "--iterations", "2",
                                "--blocks", "1", "--warmup", "0", "--warmup-time", "0")
    assert status == 1 and msgs[-1]["code"] == "bad_inputs" and msgs[-1]["file"] == "bad.npz"
    with pytest.raises(AgentError) as err:
        _run(mcu, _job(model, Plan(warmup=0, warmup_time_s=0.0, iterations=2, blocks=1, inputs=inputs),
                       "mcu-sim"))
    assert err.value.code == "bad_inputs" and err.value.hint and "bad.npz" in err.value.message
    assert err.value.message == msgs[-1]["message"]
