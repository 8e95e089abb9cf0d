"""Energy and cost end to end: `harness run` on the local board with declared power, and with the
agent's power readers reading a recorded sysfs tree (HARNESS_POWER_ROOT) or a stand-in
`vcgencmd` on PATH (tests/fixtures/power/fake_vcgencmd.py). The agent, the runtime, the sampler
thread and the store are all real; only the sensor is a recording."""

from __future__ import annotations

import csv as csvlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.render.energy import millijoules
from harness.render.energy import watts as watts_text
from harness.render.table import rate
from tests.agentrun import AGENT, DIGITS, KWS, board_env, json_objects

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "power"
QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "40", "--blocks", "4"]
PMIC_TOTAL = {"idle": 1.55023, "load": 4.829189}  # the two recordings' sums of V x A


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=dict(os.environ, COLUMNS="100", **(env or {})))


def targets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.board]\nkind = "local"\n{body}\n')
    return path


def stored(results: Path, run_id: str) -> list[dict[str, Any]]:
    (record,) = (results / run_id / "benchmarks").glob("*.jsonl")
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_declared_power_and_price_give_the_energy_table_and_json(tmp_path: Path) -> None:
    t = targets(tmp_path, "price_usd = 35.0\npower_w = 6.4\nidle_power_w = 2.7")
    p = run("run", "--targets", str(t), "--model", str(DIGITS), "--model", str(KWS), *QUICK, "--rate", "10",
            "--results", "r", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    table = p.stdout[p.stdout.index("Energy and cost"):].splitlines()
    legend = next(i for i, line in enumerate(table) if line.startswith("declared:"))
    assert all(len(line) <= 100 for line in table[:legend]), table  # the legend lines are never wrapped
    head = " ".join(table[:5])
    for word in ("Power", "Active", "inference", "loop", "per $", "Busy", "10/s"):
        assert word in head
    rows = [line for line in table if line.startswith("board ")]
    assert len(rows) == 2 and all(" declared " in r and " 6.4 / 2.7 " in r for r in rows)
    assert any(line.startswith("declared: targets.toml power_w") for line in table)
    shown = run("show", "--results", "r", "--json", cwd=tmp_path)
    for o in json_objects(shown.stdout):
        # medians are rounded to a whole ns in the JSON, the figures use the exact ones: 1 ns of slack
        invoke, loop = o["invoke"]["median_ns"], o["with_invoke"]["median_ns"]
        tol = 1 / invoke
        e = o["energy"]
        assert e["source"] == "declared" and (e["active_w"], e["idle_w"]) == (6.4, 2.7) and e["samples"] is None
        assert e["per_inference_mj"] == pytest.approx((6.4 - 2.7) * invoke / 1e6, rel=tol)
        assert e["per_loop_mj"] == pytest.approx((6.4 - 2.7) * loop / 1e6, rel=tol)
        assert o["cost"] == {"price_usd": 35.0, "ips_per_usd": pytest.approx(1e9 / loop / 35.0, rel=tol)}
        busy = 10 * loop / 1e9
        assert o["duty"] == {"rate_hz": 10.0, "busy_fraction": pytest.approx(busy, rel=tol), "sustainable": True,
                             "average_w": pytest.approx(busy * 6.4 + (1 - busy) * 2.7, rel=tol)}
    # another rate from the stored run: the digits model's loop cannot be run 10^6 times a second
    fast = json_objects(run("show", "--results", "r", "--json", "--rate", "1000000", cwd=tmp_path).stdout)
    assert all(o["duty"]["sustainable"] is False and o["duty"]["average_w"] is None for o in fast)
    assert "too slow" in run("show", "--results", "r", "--rate", "1000000", cwd=tmp_path).stdout


def test_a_recorded_ina3221_tree_is_read_through_the_agents_power_pass(tmp_path: Path) -> None:
    t = targets(tmp_path, 'power = "ina3221"')
    p = run("run", "--targets", str(t), "--model", str(DIGITS), *QUICK, "--power-window", "1", "--results", "r",
            "--json", cwd=tmp_path, env={"HARNESS_POWER_ROOT": str(FIXTURES / "jetson-orin-nano")})
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    e = o["energy"]
    # a recording does not change under load: active and idle are both VDD_IN's 5088 mV x 968 mA
    assert e["source"] == "measured" and e["reader"] == "ina3221" and e["total"] == "VDD_IN"
    assert e["active_w"] == e["idle_w"] == pytest.approx(4.925184) and e["per_inference_mj"] == 0
    assert e["samples"]["idle"] >= 3 and e["samples"]["active"] >= 3 and e["samples"]["failed"] == 0
    assert o["complete"] is True and o["cost"] is None and o["duty"] is None
    lines = stored(tmp_path / "r", o["run_id"])
    kinds = [m["type"] for m in lines]
    assert kinds.index("power_set") > kinds.index("summary")  # after the timed part
    windows = [m for m in lines if m["type"] == "power_window"]
    assert [w["window"] for w in windows] == ["idle", "active"] and windows[1]["invokes"] > 0
    for w in windows:
        assert all(w["t0_ns"] <= s["t_ns"] <= w["t1_ns"] + 10**8 for s in w["samples"])
        assert all(set(s["rails"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"} for s in w["samples"])


def test_a_stand_in_vcgencmd_is_read_only_inside_the_power_windows(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vcgencmd"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} {FIXTURES / "fake_vcgencmd.py"} "$@"\n')
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    t = targets(tmp_path, 'power = "rpi5-pmic"\nprice_usd = 80')
    p = run("run", "--targets", str(t), "--model", str(KWS), *QUICK, "--power-window", "1.5", "--results", "r",
            "--json", cwd=tmp_path, env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_VCGENCMD_STATE":
                                         str(tmp_path / "state.json"), "FAKE_VCGENCMD_LOG": str(calls)})
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    lines = stored(tmp_path / "r", o["run_id"])
    windows = {m["window"]: m for m in lines if m["type"] == "power_window"}
    watts = {name: [s["watts"] for s in w["samples"]] for name, w in windows.items()}
    # each reading is one of the two recordings, and which one follows what the agent was doing
    assert set(watts["idle"] + watts["active"]) <= {PMIC_TOTAL["idle"], PMIC_TOTAL["load"]}
    assert sorted(watts["idle"])[len(watts["idle"]) // 2] == PMIC_TOTAL["idle"]
    assert sorted(watts["active"])[len(watts["active"]) // 2] == PMIC_TOTAL["load"]
    e = o["energy"]
    assert e["source"] == "measured" and e["total"] == "sum of rails" and e["reader"] == "rpi5-pmic"
    assert e["active_w"] == pytest.approx(sum(watts["active"]) / len(watts["active"]))
    assert e["idle_w"] == pytest.approx(sum(watts["idle"]) / len(watts["idle"]))
    invoke = o["invoke"]["median_ns"]  # rounded to a whole ns in the JSON: 1 ns of slack
    assert e["per_inference_mj"] == pytest.approx((e["active_w"] - e["idle_w"]) * invoke / 1e6, rel=1 / invoke)
    assert e["per_inference_mj"] > 0 and o["cost"]["ips_per_usd"] == pytest.approx(o["throughput_ips"] / 80)
    # vcgencmd ran once to check the sensor, then only inside the windows: never in a timed block
    # (the fake logs time.monotonic_ns(), the clock of the agent's perf_counter_ns on Linux)
    times = [json.loads(line)["t_ns"] for line in calls.read_text().splitlines()]
    inside = [x for x in times if any(w["t0_ns"] - 10**7 <= x <= w["t1_ns"] + 5 * 10**8 for w in windows.values())]
    assert len(times) - len(inside) == 1 and times[0] < windows["idle"]["t0_ns"]
    assert len(inside) == sum(len(w["samples"]) + w["failed"] for w in windows.values())
    # the report's energy table takes the same measured figures
    r = run("report", "--results", "r", "-o", str(tmp_path / "report.html"), "--csv", str(tmp_path / "csv"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (table,) = (tmp_path / "csv").glob("*efficiency.csv")
    header, row = list(csvlib.reader(io.StringIO(table.read_text(encoding="utf-8"))))[:2]
    cells = dict(zip(header, row, strict=True))
    # under the terminal's energy table's names (harness.render.energy), as in the terminal
    assert cells["source"] == "measured" and cells["price"] == "80.00"
    assert cells["watts"] == f"{watts_text(e['active_w'])} / {watts_text(e['idle_w'])}"
    assert cells["inference"] == millijoules(e["per_inference_mj"])
    assert cells["ips_per_usd"] == rate(o["cost"]["ips_per_usd"])


@pytest.mark.parametrize("power, env, words", [
    ("ina3221", {"HARNESS_POWER_ROOT": "EMPTY"}, ["no INA3221 monitor"]),
    ("rpi5-pmic", {"PATH": "/nonexistent"}, ["vcgencmd is not on PATH"]),
])
def test_a_board_without_its_sensor_fails_with_one_line_and_keeps_its_timings(
        tmp_path: Path, power: str, env: dict[str, str], words: list[str]) -> None:
    (tmp_path / "empty").mkdir()
    env = {k: str(tmp_path / "empty") if v == "EMPTY" else v for k, v in env.items()}
    t = targets(tmp_path, f'power = "{power}"')
    p = run("run", "--targets", str(t), "--model", str(DIGITS), *QUICK, "--power-window", "0.5", "--results", "r",
            cwd=tmp_path, env=env)
    assert p.returncode == 1
    errors = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "board" in errors[0] and f"power = {power}" in errors[0]
    assert all(w in errors[0] for w in words) and "remove power = ..." in errors[0]
    assert "cut short" not in p.stdout  # the timings are whole: only the power pass failed
    (o,) = json_objects(run("show", "--results", "r", "--json", cwd=tmp_path).stdout)
    assert o["complete"] is False and o["error"]["code"] == "power_unavailable"
    assert o["with_invoke"]["n"] == 40 and o["energy"] is None  # what was timed is kept and shown


def test_the_power_mode_runs_on_a_tflite_runtime_214_board(tflite214_python: Path) -> None:
    """The agent's power mode as an older board runs it: numpy<2, tflite-runtime 2.14 only."""
    p = subprocess.run([str(tflite214_python), str(AGENT), "power", "--model", str(DIGITS), "--source", "ina3221",
                        "--window", "0.4", "--settle", "0.1", "--interval", "0.1"], capture_output=True, text=True,
                       timeout=120, env=dict(board_env(), HARNESS_POWER_ROOT=str(FIXTURES / "jetson-agx-orin")))
    assert p.returncode == 0, p.stderr
    msgs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [m["type"] for m in msgs] == ["hello", "model", "power_source", "power_window", "power_window",
                                         "power_summary"]
    assert msgs[0]["runtime"]["name"] == "tflite_runtime" and msgs[2]["total"] == "sum of rails"
    assert all(len(m["samples"]) >= 2 and m["failed"] == 0 for m in msgs[3:5]) and msgs[4]["invokes"] > 0
