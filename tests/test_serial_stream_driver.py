"""McuDriver.stream on mcu-sim (the emulated MCU): the stream figures are true.

``--device-work-us T`` makes the device spin T before each frame's loop, a known load. Then:
- at a period well above T nothing is late (on this shared host an emulated board can be
  descheduled; a late frame must follow such a stall, measured in the frames themselves);
- at a period of T / 2 every frame is late when queued (its service alone exceeds the deadline),
  and with drop-late the dropped share is 1 - period / service;
- Poisson batches stitch into one schedule, the reference's;
- a cancel mid-stream stops it (no stream_summary), and the same driver streams again;
- firmware without STREAM is refused before anything is uploaded.
The messages are the Linux agent's (PROTOCOL.md, stream mode), times in ns, labelled emulated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss
from harness import stats
from harness.config import SerialOptions, Target
from harness.errors import AgentError
from harness.lab.drivers.base import Streamer
from harness.lab.drivers.mcu import McuDriver
from tests.serialkit import fc_model, old_firmware, write_model
from tests.serialstreamkit import explained, frames_of, stalls, stream_job

T_US = 2000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("stream"), "fc.tflite", fc_model(k=16, m=4))


@pytest.fixture(scope="module")
def driver() -> Iterator[McuDriver]:
    d = McuDriver(Target(name="mcu-sim", kind="serial",
                         options=SerialOptions(emulator=True, baud=921600, arena=64 * 1024)))
    try:
        yield d
    finally:
        d.close()


def _stream(driver: McuDriver, model: Path, **plan: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    driver.stream(stream_job(model, device_work_us=T_US, **plan), messages.append, threading.Event())
    return messages


def test_a_period_well_above_the_work_has_nothing_late(driver: McuDriver, model: Path) -> None:
    assert isinstance(driver, Streamer)
    messages = _stream(driver, model, rate_hz=100.0, duration_s=1.5)  # 10 ms, 5 T
    kinds = [m["type"] for m in messages]
    assert kinds[:5] == ["hello", "push", "model", "stream_plan", "warmup"] and kinds[-1] == "stream_summary"
    hello, plan, summary = messages[0], messages[3], messages[-1]
    assert hello["mode"] == "stream" and hello["emulated"] is True
    assert (plan["period_ns"], plan["deadline_ns"], plan["device_work_ns"]) == (10**7, 10**7, T_US * 1000)
    assert plan["frames"] == summary["frames"] == 150 and plan["stages"][0] == "work"
    frames = frames_of(messages)
    assert [f[0] for f in frames] == [i * 10**7 for i in range(150)]  # the schedule, exactly
    service = stats.median([e - a for _, a, e, _, _ in frames if a is not None and e is not None])
    assert T_US * 1000 <= service < T_US * 1000 + 1_000_000
    late = [i for i, f in enumerate(frames) if f[4] == "l"]
    assert summary["late"] == len(late) and summary["dropped"] == 0
    assert len(late) <= 5 and explained(frames, stalls(frames, service), 10**7), late
    # stream time: the last frame ends a service after its scheduled time, gaps between batches left out
    assert summary["wall_ns"] == frames[-1][2] and frames[-1][2] - frames[-1][0] < 10**7


def test_a_period_below_the_work_queues_or_drops(driver: McuDriver, model: Path) -> None:
    """Period T / 2 = 1 ms: each frame's service (>= T) exceeds its deadline (the period)."""
    queued = frames_of(_stream(driver, model, rate_hz=1000.0, duration_s=0.5))
    assert len(queued) == 500 and all(f[4] == "l" for f in queued)
    starts = [a for _, a, _, _, _ in queued]
    ends = [e for _, _, e, _, _ in queued]
    waits = [a - e_prev for a, e_prev in zip(starts[1:], ends, strict=False)]  # the queue never empties:
    assert min(waits) >= 0 and stats.median(waits) < 100_000  # each frame starts as the one before ends
    messages = _stream(driver, model, rate_hz=1000.0, duration_s=0.5, policy="drop-late")
    frames, summary = frames_of(messages), messages[-1]
    served = [e - a for _, a, e, _, st in frames if st != "d" and a is not None and e is not None]
    dropped = sum(f[4] == "d" for f in frames)
    expected = len(frames) * (1 - 1e6 / (sum(served) / len(served)))  # 1 - period / mean service
    assert abs(dropped - expected) <= 0.05 * len(frames), (dropped, expected)
    assert summary["dropped"] == dropped and summary["late"] + dropped == len(frames) == 500
    assert all(f[1] is None and f[2] is None and f[3] is None for f in frames if f[4] == "d")


def test_poisson_batches_are_one_schedule(driver: McuDriver, model: Path) -> None:
    messages = _stream(driver, model, arrivals="poisson", rate_hz=400.0, duration_s=1.0, seed=12)
    frames = frames_of(messages)
    assert len([m for m in messages if m["type"] == "stream"]) >= 2  # several batches
    assert [f[0] for f in frames] == ss.schedule(ss.POISSON, 2_500_000, 12, 400)


def test_a_cancel_stops_the_stream_and_the_link_stays_usable(driver: McuDriver, model: Path) -> None:
    cancel = threading.Event()
    got: list[dict[str, Any]] = []

    def keep(msg: dict[str, Any]) -> None:
        got.append(msg)
        if msg["type"] == "stream":
            cancel.set()  # as a --find-max trial does once its answer is clear

    driver.stream(stream_job(model, device_work_us=T_US, rate_hz=200.0, duration_s=3.0), keep, cancel)
    kinds = [m["type"] for m in got]
    assert kinds.count("stream") == 1 and "stream_summary" not in kinds
    again = _stream(driver, model, rate_hz=200.0, duration_s=0.2)
    assert again[-1]["type"] == "stream_summary" and again[-1]["frames"] == 40
    assert "push" not in [m["type"] for m in again]  # the model the device still holds


def test_firmware_without_stream_is_refused_before_any_upload(model: Path) -> None:
    with old_firmware(sf.FLAG_STREAM) as (driver, sent), pytest.raises(AgentError) as err:
        driver.stream(stream_job(model, target="board"), lambda m: None, threading.Event())
    assert err.value.code == "unsupported" and "has no STREAM request" in err.value.message
    assert "flash the firmware that ships with this harness" in str(err.value.hint)
    assert {f.type for f in sent.seen} == {sf.T.HELLO}
