"""The MCU driver end to end: emulator on a pty (through a faulty line where needed) -> messages.

Every fault must end in a clear HarnessError within a bounded time, keep the samples already
received, and leave no process behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from ai_edge_litert.interpreter import Interpreter as LiteRT

from harness.config import SerialOptions, Target
from harness.errors import AgentError, HarnessError, TransportError
from harness.lab.drivers.mcu import McuDriver
from harness.models.files import sha256
from harness.plan import Job, Plan
from harness.results.benchmark import from_lines
from tests.serialkit import (
    QUICK_PLAN,
    LineProxy,
    fc_model,
    noisy,
    running_emulator,
    serial_target,
    write_model,
    wrong_baud,
)


def _job(path: Path, plan: Plan = QUICK_PLAN, target: str = "board") -> Job:
    return Job(target=target, model=path, model_sha256=sha256(path), threads=1, plan=plan)


def _run(driver: McuDriver, job: Job, cancel: threading.Event | None = None) -> list[dict]:
    messages: list[dict] = []
    driver.benchmark(job, messages.append, cancel or threading.Event())
    return messages


def _types(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def test_emulator_target_emits_the_normalized_messages(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    target = Target(name="mcu-sim", kind="serial",
                    options=SerialOptions(emulator=True, baud=921600, arena=64 * 1024))
    driver = McuDriver(target)
    sim = driver.emulator
    assert sim is not None
    try:
        messages = _run(driver, _job(model, target="mcu-sim"))
    finally:
        driver.close()
    assert not psutil.pid_exists(sim.pid) or psutil.Process(sim.pid).status() == psutil.STATUS_ZOMBIE
    kinds = _types(messages)
    assert kinds[0] == "hello" and kinds[-1] == "outputs"  # no op_profile: the emulator has no profiler
    for t in ("model", "push", "plan", "first_invoke", "warmup", "samples", "progress", "summary", "outputs"):
        assert t in kinds, t
    hello = messages[0]
    assert hello["emulated"] is True and hello["clock"]["resolution_ns"] == 1
    assert hello["runtime"]["name"] == "tflite-micro" and hello["board"]["cpu"] == "host CPU (emulated MCU)"
    minfo = next(m for m in messages if m["type"] == "model")
    assert 0 < minfo["arena_used_bytes"] <= minfo["arena_bytes"] == 64 * 1024
    samples = [m for m in messages if m["type"] == "samples"]
    assert [(s["block"], s["mode"]) for s in samples] == [(0, "with"), (0, "without"), (1, "without"), (1, "with")]
    for s in samples:
        assert len(s["loop_ns"]) == 10 and len(s["settle_ns"]) == 1
        assert ("invoke" in s["stages"]) == (s["mode"] == "with")
    outputs = next(m for m in messages if m["type"] == "outputs")["outputs"]
    assert outputs[0]["shape"] == [1, 8] and len(outputs[0]["values"]) == 8
    header = {"target": "mcu-sim", "model": model.name, "model_sha256": "", "threads": 1, "plan": {}}
    bench = from_lines(header, messages)
    assert bench.complete and bench.emulated and len(bench.loop("with")) == 20


def test_the_arena_is_measured_once_per_model_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bisecting the TFLite Micro arena takes seconds: the same model on a second board, and again
    under another file name, reuses the first measurement instead of bisecting again."""
    from harness.lab.drivers import mcu_fit

    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(model.read_bytes())
    measured: list[Path] = []
    real = mcu_fit.measure_arena

    def measure(path: Path) -> mcu_fit.ArenaFit:  # the real bisection, counted
        measured.append(path)
        return real(path)

    monkeypatch.setattr(mcu_fit, "measure_arena", measure)
    monkeypatch.setattr(mcu_fit, "_ARENAS", {})  # not what earlier tests of this process measured
    for board, paths in (("mcu-a", (model, twin)), ("mcu-b", (model,))):
        driver = McuDriver(Target(name=board, kind="serial",
                                  options=SerialOptions(emulator=True, baud=921600, arena=64 * 1024)))
        try:
            for path in paths:
                assert _types(_run(driver, _job(path, target=board)))[-1] == "outputs"
        finally:
            driver.close()
    assert measured == [model]


def test_noise_drops_and_duplicates_are_survived(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8, pad_bytes=12000))
    with running_emulator() as sim:
        proxy = LineProxy(sim.port)
        proxy.to_device = noisy(0.1, seed=2)
        proxy.to_host = noisy(0.1, seed=3)
        driver = McuDriver(serial_target(proxy.host_port, timeout_s=0.5))
        try:
            messages = _run(driver, _job(model))
            retrans = driver.link.retransmissions
        finally:
            driver.close()
            proxy.close()
    assert _types(messages)[-1] in ("summary", "outputs", "op_profile")
    assert retrans > 0  # the line really was bad, and retransmission recovered
    assert sum(len(m["loop_ns"]) for m in messages if m["type"] == "samples") == 40


def test_wrong_baud_rate_is_named_in_bounded_time(tmp_path: Path) -> None:
    with running_emulator() as sim:
        proxy = LineProxy(sim.port)
        proxy.to_host = wrong_baud
        t0 = time.monotonic()
        with pytest.raises(TransportError) as err:
            McuDriver(serial_target(proxy.host_port, timeout_s=0.2)).benchmark(
                _job(write_model(tmp_path, "fc.tflite", fc_model())), lambda m: None, threading.Event())
        proxy.close()
    assert time.monotonic() - t0 < 15
    assert "garbled" in err.value.message and "baud" in (err.value.hint or "")


def test_reset_in_the_middle_of_an_upload_is_named(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(pad_bytes=20000))
    chunk_header = b"\xa5\x5a\x01\x03"  # SYNC, VER 1, TYPE UPLOAD_CHUNK
    with running_emulator(extra=("--max-payload", "1024")) as sim:
        proxy = LineProxy(sim.port)
        seen = []

        def reset_at_third_chunk(data: bytes) -> bytes:
            seen.append(data.count(chunk_header))
            if sum(seen) == 3:
                os.kill(sim.pid, signal.SIGUSR1)  # the board resets as the third chunk arrives
            return data

        proxy.to_device = reset_at_third_chunk
        driver = McuDriver(serial_target(proxy.host_port))
        t0 = time.monotonic()
        try:
            with pytest.raises((TransportError, AgentError)) as err:
                _run(driver, _job(model))
        finally:
            driver.close()
            proxy.close()
    assert time.monotonic() - t0 < 20
    assert "reset" in str(err.value)


def test_model_too_large_is_refused_before_upload(tmp_path: Path) -> None:
    model = write_model(tmp_path, "big.tflite", fc_model(pad_bytes=5000))
    with running_emulator(extra=("--max-model", "4096")) as sim:
        driver = McuDriver(serial_target(sim.port))
        messages: list[dict] = []
        try:
            with pytest.raises(AgentError) as err:
                driver.benchmark(_job(model), messages.append, threading.Event())
        finally:
            driver.close()
    assert err.value.code == "model_too_large" and "4096" in err.value.message and "big.tflite" in err.value.message
    assert "push" not in _types(messages)  # nothing was uploaded


def test_arena_too_small_is_refused_before_upload(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=256, m=64))
    with running_emulator(arena=1024) as sim:
        driver = McuDriver(serial_target(sim.port))
        messages: list[dict] = []
        try:
            with pytest.raises(AgentError) as err:
                driver.benchmark(_job(model), messages.append, threading.Event())
        finally:
            driver.close()
    assert err.value.code == "arena_too_small" and "1024" in err.value.message
    assert "push" not in _types(messages)


@pytest.mark.parametrize(("model", "code"), [(fc_model(custom="MyFancyOp"), "unsupported_op"),
                                         (fc_model(bad_tensor=True), "crashed")], ids=["custom-op", "segfault"])
def test_refused_or_crashing_model_is_a_clear_error(tmp_path: Path, model: bytes, code: str) -> None:
    path = write_model(tmp_path, "bad.tflite", model)
    with running_emulator() as sim:
        driver = McuDriver(serial_target(sim.port))
        try:
            with pytest.raises(AgentError) as err:
                _run(driver, _job(path))
            assert sim.alive()  # TFLite Micro's crash cost the model, not the device
        finally:
            driver.close()
    assert err.value.code == code and err.value.hint and "bad.tflite" in err.value.message


def test_inputs_file_is_sent_and_outputs_match_litert(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=300, m=5))  # 1200-byte input: several frames
    x = np.linspace(-1, 1, 300, dtype=np.float32).reshape(1, 300)
    inputs = tmp_path / "x.npy"
    np.save(inputs, x)
    plan = Plan(warmup=1, warmup_time_s=0.0, iterations=4, blocks=2, settle=0, inputs=inputs)
    # A board with a small RX buffer: 256-byte payloads, so the input takes several SET_INPUTs.
    with running_emulator(extra=("--max-payload", "256")) as sim:
        driver = McuDriver(Target(name="board", kind="serial",
                                  options=SerialOptions(port=sim.port, baud=921600, command_timeout_s=2.0)))
        try:
            messages = _run(driver, _job(model, plan))
            with pytest.raises(AgentError) as err:
                np.save(inputs, x[:, :10])
                _run(driver, _job(model, plan))
        finally:
            driver.close()
    assert next(m for m in messages if m["type"] == "plan")["inputs"] == "x.npy"
    got = np.array(next(m for m in messages if m["type"] == "outputs")["outputs"][0]["values"], dtype=np.float32)
    ref = LiteRT(model_path=str(model))
    ref.allocate_tensors()
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    np.testing.assert_allclose(got, ref.get_tensor(ref.get_output_details()[0]["index"]).ravel(), rtol=1e-5,
                               atol=1e-5)
    assert err.value.code == "bad_inputs" and err.value.hint
    assert err.value.message == "x.npy has shape (1, 10) but input 'in' needs (1, 300) (or N stacked samples)"


def test_device_hang_mid_run_keeps_samples_and_fails_in_bounded_time(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    plan = Plan(warmup=2, warmup_time_s=0.0, iterations=4000, blocks=4, settle=0, seed=1)
    messages: list[dict] = []
    with running_emulator() as sim:
        driver = McuDriver(serial_target(sim.port, timeout_s=0.5))

        def emit(msg: dict) -> None:
            messages.append(msg)
            if msg["type"] == "samples":
                os.kill(sim.pid, signal.SIGSTOP)  # the board hangs after its first block

        t0 = time.monotonic()
        try:
            with pytest.raises(TransportError) as err:
                driver.benchmark(_job(model, plan), emit, threading.Event())
        finally:
            os.kill(sim.pid, signal.SIGCONT)
            driver.close()
    assert time.monotonic() - t0 < 30
    assert "no reply" in err.value.message
    samples = [m for m in messages if m["type"] == "samples"]
    assert len(samples[0]["loop_ns"]) == 1000  # the block received before the hang is kept


def test_emulator_killed_mid_run_is_named(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    target = Target(name="mcu-sim", kind="serial", options=SerialOptions(emulator=True, baud=921600, command_timeout_s=0.5))
    driver = McuDriver(target)
    assert driver.emulator is not None
    pid = driver.emulator.pid
    messages: list[dict] = []

    def emit(msg: dict) -> None:
        messages.append(msg)
        if msg["type"] == "samples":
            os.killpg(pid, signal.SIGKILL)  # the emulator and its TFLite Micro child vanish

    t0 = time.monotonic()
    try:
        with pytest.raises(TransportError) as err:
            driver.benchmark(_job(model, target="mcu-sim"), emit, threading.Event())
    finally:
        driver.close()
    assert time.monotonic() - t0 < 20
    assert "emulated MCU exited (status -9)" in err.value.message
    assert sum(m["type"] == "samples" for m in messages) == 1  # what came before is kept


def test_builtin_model_is_used_when_its_hash_matches(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=8, m=2))
    other = write_model(tmp_path, "other.tflite", fc_model(k=8, m=3))
    with running_emulator(extra=("--builtin", str(model), "--max-model", "0")) as sim:
        driver = McuDriver(serial_target(sim.port))
        try:
            messages = _run(driver, _job(model))
            assert "push" not in _types(messages) and "summary" in _types(messages)
            with pytest.raises(AgentError) as err:
                _run(driver, _job(other))
        finally:
            driver.close()
    assert err.value.code == "hash_mismatch" and "other.tflite" in err.value.message


def test_cancel_returns_promptly(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    plan = Plan(warmup=2, warmup_time_s=0.0, iterations=100_000, blocks=10, settle=0, seed=1)
    cancel = threading.Event()
    with running_emulator() as sim:
        driver = McuDriver(serial_target(sim.port))
        messages: list[dict] = []

        def emit(msg: dict) -> None:
            messages.append(msg)
            if msg["type"] == "plan":
                threading.Timer(0.3, cancel.set).start()

        t0 = time.monotonic()
        try:
            driver.benchmark(_job(model, plan), emit, cancel)
        finally:
            driver.close()
    assert time.monotonic() - t0 < 20
    assert "summary" not in _types(messages)


def test_probe_reports_the_board_and_its_limits() -> None:
    with running_emulator(arena=100_000, extra=("--max-model", "300000")) as sim:
        driver = McuDriver(serial_target(sim.port))
        try:
            hello = driver.probe()
        finally:
            driver.close()
    assert hello["type"] == "hello" and hello["emulated"] is True
    assert hello["serial"]["arena_bytes"] == 100_000 and hello["serial"]["max_model_bytes"] == 300_000
    assert hello["runtime"]["name"] == "tflite-micro" and hello["runtime"]["version"]


def test_missing_port_is_a_transport_error() -> None:
    with pytest.raises(HarnessError) as err:
        McuDriver(serial_target("/dev/does-not-exist-ttyACM9"))
    assert "/dev/does-not-exist-ttyACM9" in str(err.value) and err.value.hint
