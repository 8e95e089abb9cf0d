"""What the stream tests share, on every board kind: a pipeline of a known cost, the contract, and
the checks that the stream figures are true.

The known cost: the pipeline's preprocess busy-waits T on the board's own clock, so a frame's
service time S is at least T (never less, whatever the machine's load: a frame preempted during
its wait still ends when the wait does) and a little more (the Invoke of a tiny model, the loop).
What follows from that, and is checked:

- at a period P well above T (P = 10 T), nothing is late: a frame would have to be held up for
  9 T, which this shared 2-core machine does not do to a 5 ms frame;
- at P < T with frames queued, every frame is late: frame 0's latency is already S >= T > P, and
  each later one waits longer (frame i: S + i (S - P));
- at P < T with --drop-late (the deadline one period), the board is never idle (a frame whose
  deadline has not passed, scheduled within the last period, is always waiting), every frame it
  runs is late (its latency is at least S > P), and it runs P / S of the frames: the dropped
  fraction is 1 - P / mean(S), at least 1 - P / T;
- --find-max lands within 10 % of 1 / T (the p90 criterion, to keep trials short).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import stats
from harness.results import stream_store

CONTRACT = {"kind", "run_id", "target", "model", "threads", "arrivals", "policy", "rate_hz", "deadline_ns",
            "frames", "late", "dropped", "late_pct", "latency", "queue_delay_median_ns", "start_jitter_ns",
            "sustained_rate_hz", "busy_fraction", "max_sustainable_rate_hz", "emulated"}
LATENCY = {"n", "median_ns", "p90_ns", "p99_ns", "max_ns"}
MS = 1_000_000


def busy_pipeline(directory: Path, t_ms: float) -> Path:
    """A pipeline whose preprocess busy-waits ``t_ms`` on the board's clock."""
    path = directory / f"busy{int(t_ms * 1000)}us.py"
    path.write_text("import time\n\n"
                    f"T_NS = {int(t_ms * MS)}\n\n\n"
                    "def preprocess(raw):\n"
                    "    until = time.perf_counter_ns() + T_NS\n"
                    "    while time.perf_counter_ns() < until:\n"
                    "        pass\n"
                    "    return raw\n")
    return path


def check_contract(obj: dict[str, Any]) -> None:
    assert set(obj) >= CONTRACT, CONTRACT - set(obj)
    assert obj["kind"] == "stream" and obj["arrivals"] in ("fixed", "poisson")
    assert obj["policy"] in ("queue", "drop-late") and set(obj["latency"]) >= LATENCY
    lat = obj["latency"]
    assert lat["median_ns"] <= lat["p90_ns"] <= lat["p99_ns"] <= lat["max_ns"]
    assert obj["late"] + obj["dropped"] <= obj["frames"] and obj["complete"] is True


def service_times(run: Path) -> list[int]:
    """end - start of every frame run, from the stored records (not from the --json figures)."""
    _, records = stream_store.load_streams(run)
    (record,) = records
    assert record.main is not None
    return [e - a for _, a, e in record.main.frames.run()]


def check_keeps_up(obj: dict[str, Any], t_ms: float, rate_hz: float) -> None:
    """A period of 10 T: no frame late, latency at least T, the board busy about T / P of the time."""
    check_contract(obj)
    period = 1e9 / rate_hz
    assert obj["late"] == 0 and obj["dropped"] == 0, obj
    assert obj["deadline_ns"] == round(period)
    assert obj["latency"]["median_ns"] >= t_ms * MS
    assert obj["sustained_rate_hz"] == _approx(rate_hz, 0.03)
    assert t_ms * MS / period <= obj["busy_fraction"] < 3 * t_ms * MS / period
    assert obj["queue_delay_median_ns"] < MS  # the board was idle for every frame: it started on time


def check_queue_overload(obj: dict[str, Any], run: Path, t_ms: float) -> None:
    """A period under T, frames queued: every frame late, the board always busy, completions at 1 / S."""
    check_contract(obj)
    assert obj["late"] == obj["frames"] and obj["late_pct"] == 100.0 and obj["dropped"] == 0, obj
    service = service_times(run)
    assert min(service) >= t_ms * MS
    assert obj["sustained_rate_hz"] == _approx(1e9 / stats.mean(service), 0.05)
    assert obj["busy_fraction"] > 0.9
    assert obj["queue_delay_median_ns"] > 10 * t_ms * MS  # the queue grows through the stream


def check_drop_overload(obj: dict[str, Any], run: Path, t_ms: float, rate_hz: float) -> None:
    """A period under T with --drop-late: dropped 1 - P / mean(S) of the frames, the rest late."""
    check_contract(obj)
    period = 1e9 / rate_hz
    service = service_times(run)
    expected = 100 * (1 - period / stats.mean(service))
    assert obj["late"] == obj["frames"] - obj["dropped"], obj  # every frame run was late
    assert abs(obj["dropped_pct"] - expected) <= 4.0, (obj["dropped_pct"], expected)
    assert obj["dropped_pct"] >= 100 * (1 - period / (t_ms * MS)) - 4.0
    assert obj["busy_fraction"] > 0.9


def check_found_max(obj: dict[str, Any], t_ms: float) -> bool:
    """The search's answer is never above the board's capacity (1 / T, +10 % for the rounding of
    the search), whatever the load; True when it is within 10 % of 1 / T. The trials that bound
    it passed and failed as the answer says."""
    check_contract(obj)
    capacity = 1e3 / t_ms
    found = obj["max_sustainable_rate_hz"]
    assert found is not None and 0 < found <= 1.1 * capacity, obj["trials"]
    verdicts = {t["rate_hz"]: t["verdict"] for t in obj["trials"]}
    assert verdicts[found] == "pass" and obj["rate_hz"] == found
    above = [r for r, v in verdicts.items() if v == "fail" and r > found]
    assert above and (min(above) - found) / min(above) <= 0.02, obj["trials"]
    passing = [t for t in obj["trials"] if t["verdict"] == "pass"]
    assert all(t["frames"] >= 64 for t in passing)  # LoadGen's minimum for a p90 claim
    return 0.9 * capacity <= found <= 1.1 * capacity


def _approx(value: float, rel: float) -> Any:
    return pytest.approx(value, rel=rel)
