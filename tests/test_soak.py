"""The board's state during a stream: the agent's readers on recorded sysfs trees and `vcgencmd`
outputs (tests/fixtures/boards, tests/fixtures/vcgencmd), and the soak's figures over them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from device_agents.linux import tflite_agent as agent
from harness.results.soak import soak, throttle_flags, windows
from harness.results.stream import stream_from_lines

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOARDS = FIXTURES / "boards"
MS = 1_000_000


def test_a_raspberry_pi_4() -> None:
    state = agent.board_state(str(BOARDS / "pi4"))
    assert state["thermal"] == [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 51.121}]
    assert [c["cpu"] for c in state["cpufreq"]] == [0, 1, 2, 3]
    assert state["cpufreq"][0] == {"cpu": 0, "cur_khz": 1800000, "min_khz": 600000, "max_khz": 1800000,
                                   "governor": "ondemand"}
    assert state["devfreq"] is None  # no devfreq device on a Pi 4
    assert state["throttled"] is None  # no vcgencmd given: absent, not zero


def test_a_jetson_nano_lists_its_zones_and_its_gpu_clock() -> None:
    state = agent.board_state(str(BOARDS / "jetson_nano"))
    types = [z["type"] for z in state["thermal"]]
    # Tdiode_tegra reads -256 degrees (the sensor is absent): left out, the others kept in zone order
    assert types == ["AO-therm", "CPU-therm", "GPU-therm", "PLL-therm", "PMIC-Die", "thermal-fan-est"]
    assert agent.hottest(state) == 100.0  # PMIC-Die reports a fixed 100 degrees on a Nano: it is a zone too
    assert state["devfreq"] == [{"name": "57000000.gpu", "cur_hz": 921600000, "max_hz": 921600000}]
    assert {c["governor"] for c in state["cpufreq"]} == {"schedutil"}


def test_an_x86_laptop_zones_in_numeric_order_and_cpuinfo_when_scaling_is_missing() -> None:
    state = agent.board_state(str(BOARDS / "x86_laptop"))
    # zone1 has no readable temperature; zone10 sorts after zone2, not after zone1
    assert [z["zone"] for z in state["thermal"]] == ["thermal_zone0", "thermal_zone2", "thermal_zone10"]
    assert state["cpufreq"] == [{"cpu": 0, "cur_khz": 2100000, "min_khz": 400000, "max_khz": 4200000,
                                 "governor": "powersave"}]  # cpu1 is offline: no cpufreq, not listed


def test_a_container_has_nothing_and_says_so() -> None:
    state = agent.board_state(str(BOARDS / "container"))
    assert state == {"thermal": None, "cpufreq": None, "devfreq": None, "throttled": None}
    assert agent.board_state(str(BOARDS / "no-such-board")) == state


@pytest.mark.parametrize("name, value", [("ok", 0), ("undervoltage_throttled", 0x50005), ("soft_limit", 0x80008),
                                         ("capped_since_boot", 0x20000), ("old_firmware_error", None)])
def test_vcgencmd_outputs_parse(name: str, value: int | None) -> None:
    assert agent.parse_throttled((FIXTURES / "vcgencmd" / f"{name}.txt").read_text()) == value


def fake_vcgencmd(tmp_path: Path, output: str, status: int = 0) -> str:
    """An executable that answers `get_throttled` with a recorded output, as the firmware tool does."""
    path = tmp_path / "vcgencmd"
    path.write_text(f"#!/bin/sh\n[ \"$1\" = get_throttled ] || exit 2\ncat '{output}'\nexit {status}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_read_throttled_runs_the_tool(tmp_path: Path) -> None:
    tool = fake_vcgencmd(tmp_path, str(FIXTURES / "vcgencmd" / "undervoltage_throttled.txt"))
    assert agent.read_throttled(tool) == 0x50005
    assert agent.board_state(str(BOARDS / "pi4"), tool)["throttled"] == 0x50005
    failing = fake_vcgencmd(tmp_path, str(FIXTURES / "vcgencmd" / "ok.txt"), status=1)
    assert agent.read_throttled(failing) is None
    assert agent.read_throttled(str(tmp_path / "missing")) is None
    assert agent.read_throttled(None) is None


def test_find_vcgencmd_looks_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = fake_vcgencmd(tmp_path, str(FIXTURES / "vcgencmd" / "ok.txt"))
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert agent.find_vcgencmd() == tool


def test_throttle_bits_decode_as_the_raspberry_pi_documents_them() -> None:
    assert throttle_flags(0x50005) == (("under-voltage", "throttled"), ("under-voltage", "throttled"))
    assert throttle_flags(0x80008) == (("soft temperature limit",), ("soft temperature limit",))
    assert throttle_flags(0x20000) == ((), ("ARM frequency capped",))
    assert throttle_flags(0) == ((), ()) and throttle_flags(None) == ((), ())


# --- the soak's figures -----------------------------------------------------------------------------

def recorded_state(board: str, t_s: float, throttled: int | None = None, cur_khz: int | None = None) -> dict[str, Any]:
    fields = agent.board_state(str(BOARDS / board))
    if cur_khz is not None and fields["cpufreq"]:
        fields["cpufreq"] = [dict(c, cur_khz=cur_khz) for c in fields["cpufreq"]]
    return {"type": "board_state", "phase": "stream", "t_ns": int(t_s * 1e9), "read_ns": 1000,
            **fields, "throttled": throttled}


def soaked(states: list[dict[str, Any]], seconds: int, latency: Any) -> Any:
    """A 10 Hz stream of ``seconds`` whose frame at t s took ``latency(t)`` ns, with those states."""
    period = 100 * MS
    n = seconds * 10
    rows = [(i * period, i * period + latency(i / 10)) for i in range(n)]
    header = {"target": "pi", "model": "m.tflite", "model_sha256": "0" * 64, "threads": 1, "plan": {}}
    lines = [{"type": "stream_plan", "period_ns": period, "deadline_ns": period}, *states,
             {"type": "stream", "first": 0, "count": n, "scheduled_ns": [r[0] for r in rows],
              "start_ns": [r[0] for r in rows], "end_ns": [r[1] for r in rows], "invoke_ns": [1] * n,
              "status": "o" * n}]
    return stream_from_lines(header, lines).trials[0]


def test_a_pi_that_throttles_as_it_heats() -> None:
    """Latency steps from 20 to 30 ms at 60 s, when the clock drops and the firmware throttles."""
    states = [recorded_state("pi4", t, 0x0, 1800000) for t in range(0, 60, 5)]
    states += [recorded_state("pi4", t, 0x80008, 1200000) for t in range(60, 120, 5)]
    t = soaked(states, 120, lambda s: 20 * MS if s < 60 else 30 * MS)
    s = soak(t)
    assert len(s.windows) == 12 and s.windows[0].start_s == 0 and s.windows[-1].end_s == 120
    assert s.cold_ns == 20 * MS and s.steady_ns == 30 * MS and s.steady_vs_cold == pytest.approx(1.5)
    assert s.throttle_onset_s == 60 and s.throttle_flags == ("soft temperature limit",)
    assert s.clock_drop_onset_s == 60 and s.clock_start_khz == 1800000 and s.clock_low_khz == 1200000
    assert s.temp_max_c == pytest.approx(51.121) and s.absent == ()
    assert [w.throttled for w in s.windows] == [False] * 6 + [True] * 6


def test_a_board_without_sensors_reports_them_absent() -> None:
    states = [recorded_state("container", t) for t in range(0, 30, 5)]
    s = soak(soaked(states, 30, lambda _: 5 * MS))
    assert s.absent == ("thermal zones", "CPU clocks", "throttle flags")
    assert s.throttle_onset_s is None and s.clock_drop_onset_s is None and s.temp_max_c is None
    assert all(w.temp_c is None and w.throttled is None for w in s.windows)
    assert s.cold_ns == s.steady_ns == 5 * MS


def test_windows_count_misses_and_place_every_frame_once() -> None:
    t = soaked([], 20, lambda s: 150 * MS if 5 <= s < 6 else 10 * MS)  # one second over the deadline
    ws = windows(t, 5.0)
    assert [w.frames for w in ws] == [50, 50, 50, 50]
    assert [w.misses for w in ws] == [0, 10, 0, 0]
