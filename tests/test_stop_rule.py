"""The stop rule of --processes / --until-stable and the data model of processes: pure logic, so
exact fixtures (the end-to-end runs are in tests/test_processes.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from harness.lab.drivers.base import Emit
from harness.plan import Job, Plan
from harness.results.benchmark import from_lines
from harness.results.summary import summarize
from harness.scenarios.benchmark import run_processes, stop_reason

STABLE = Plan(until_stable_pct=1.0, processes=3, iterations=0, max_duration_s=60.0)
HEADER = {"target": "t", "model": "m.tflite", "model_sha256": "0" * 64, "threads": 1}


def test_a_fixed_number_of_processes() -> None:
    plan = Plan(processes=3)
    assert [stop_reason(plan, [], done, 0.0, 1.0) for done in (1, 2, 3)] == [None, None, "processes"]


def test_stable_needs_the_minimum_and_a_narrow_interval() -> None:
    tight = [1000.0, 1001.0, 999.0]  # half-width 4.30 * 1 / sqrt(3) = 2.5: 0.25 % of 1000
    assert stop_reason(STABLE, tight[:2], 2, 1.0, 0.5) is None  # narrow, but only 2 processes
    assert stop_reason(STABLE, tight, 3, 1.0, 0.5) == "stable"
    wide = [1000.0, 1100.0, 900.0]  # half-width 4.30 * 100 / sqrt(3) = 248.4: 24.8 %
    assert stop_reason(STABLE, wide, 3, 1.0, 0.5) is None
    assert stop_reason(Plan(until_stable_pct=24.0, processes=3), wide, 3, 1.0, 0.5) is None
    assert stop_reason(Plan(until_stable_pct=25.0, processes=3), wide, 3, 1.0, 0.5) == "stable"


def test_max_duration_is_judged_by_the_longest_process_and_wins_over_the_minimum() -> None:
    wide = [1000.0, 1100.0, 900.0]
    assert stop_reason(STABLE, wide, 3, 58.0, 2.0) is None  # ends at exactly 60 s: allowed
    assert stop_reason(STABLE, wide, 3, 58.5, 2.0) == "max_duration"
    assert stop_reason(STABLE, wide[:1], 1, 59.0, 2.0) == "max_duration"  # before the minimum: a bound


class FakeDriver:
    """Plays a board for the loop's logic only: each process sends fixed Invoke samples and takes
    ``seconds`` of a fake clock."""

    def __init__(self, medians: list[int], seconds: float, clock: list[float]) -> None:
        self.medians, self.seconds, self.clock, self.calls = list(medians), seconds, clock, 0

    def benchmark(self, job: Job, emit: Emit, cancel: threading.Event) -> None:
        x = self.medians[self.calls % len(self.medians)]
        self.calls += 1
        self.clock[0] += self.seconds
        for msg in ({"type": "hello"}, {"type": "plan", "iterations": 3}):
            emit(msg)
        emit({"type": "samples", "mode": "with", "block": 0, "loop_ns": [x + 10] * 3,
              "stages": {"invoke": [x - 1, x, x + 1]}})
        emit({"type": "samples", "mode": "without", "block": 0, "loop_ns": [10] * 3, "stages": {}})
        emit({"type": "summary", "iterations": 3})

    def close(self) -> None:
        pass


def loop(plan: Plan, medians: list[int], seconds: float) -> tuple[list[dict[str, Any]], FakeDriver]:
    clock = [0.0]
    driver = FakeDriver(medians, seconds, clock)
    job = Job(target="t", model=Path("m.tflite"), model_sha256="0" * 64, threads=1, plan=plan)
    out: list[dict[str, Any]] = []
    run_processes(driver, job, out.append, threading.Event(), clock=lambda: clock[0])
    return out, driver


def test_the_loop_adds_processes_until_stable() -> None:
    # the spread of the first three, then steady processes: about 30 until ±1 % (30 s of 60)
    out, driver = loop(STABLE, [1000, 1100, 900] + [1000] * 100, 1.0)
    stop = out[-1]
    assert stop["type"] == "stop" and stop["by"] == "stable" and stop["processes"] == driver.calls
    assert 20 < driver.calls < 40
    assert [m["index"] for m in out if m["type"] == "process"] == list(range(driver.calls))
    b = from_lines({**HEADER, "plan": STABLE.as_dict()}, out)
    assert b.complete and b.stopped_by == "stable" and len(b.processes) == driver.calls
    lo, hi = summarize(b).invoke_median_ci  # type: ignore[misc]
    assert (hi - lo) / 2 <= 0.01 * (hi + lo) / 2


def test_the_loop_stops_at_max_duration() -> None:
    plan = Plan(until_stable_pct=0.001, processes=3, iterations=0, max_duration_s=10.0)
    out, driver = loop(plan, [1000, 1100, 900], 3.0)
    assert driver.calls == 3 and out[-1]["by"] == "max_duration"  # 9 s run; a fourth would end at 12


def test_the_loop_runs_exactly_the_fixed_count_and_writes_no_stop_line() -> None:
    out, driver = loop(Plan(processes=4), [1000], 1.0)
    assert driver.calls == 4 and not [m for m in out if m["type"] == "stop"]


def _messages(x: int) -> list[dict[str, Any]]:
    return [{"type": "hello", "board": {}}, {"type": "model", "init_ns": 5}, {"type": "plan", "iterations": 3},
            {"type": "first_invoke", "ns": 9 * x}, {"type": "warmup", "loop_ns": [x, x]},
            {"type": "samples", "mode": "with", "block": 0, "loop_ns": [x + 10] * 3,
             "stages": {"invoke": [x - 1, x, x + 1]}},
            {"type": "samples", "mode": "without", "block": 0, "loop_ns": [10] * 3, "stages": {}},
            {"type": "summary", "iterations": 3, "max_rss_kb": x}]


def test_a_file_without_process_lines_is_one_process() -> None:
    """Files of schema 1 and 2: no process lines; read as one process, complete as before."""
    b = from_lines({**HEADER, "plan": {"iterations": 3}}, _messages(100))
    assert len(b.processes) == 1 and b.processes[0].index == 0 and b.complete
    o = summarize(b).to_json()
    assert (o["processes"], o["stopped_by"], o["invoke_median_ci"], o["blocks"]) == (1, None, None, 1)
    assert o["invoke"]["median_ns"] == 100 and o["first_invoke_ns"] == 900 and o["warmup_n"] == 2


def test_processes_are_kept_apart_and_weigh_the_same() -> None:
    lines: list[dict[str, Any]] = []
    for i, x in enumerate((100, 200, 600)):
        lines += [{"type": "process", "index": i}, *_messages(x)]
    b = from_lines({**HEADER, "plan": Plan(processes=3).as_dict()}, lines)
    assert [p.first_invoke_ns for p in b.processes] == [900, 1800, 5400]
    assert {blk.process for blk in b.blocks} == {0, 1, 2} and b.complete
    o = summarize(b).to_json()
    # the pooled median would be 200; each process weighs the same: (100 + 200 + 600) / 3
    assert o["invoke"]["median_ns"] == 300 and o["invoke"]["n"] == 9
    assert o["blocks"] == 3 and o["warmup_n"] == 6 and o["max_rss_kb"] == 600
    assert o["invoke_median_ci"] == pytest.approx([300 - 4.302653 * 264.575 / 3**0.5,
                                                   300 + 4.302653 * 264.575 / 3**0.5], abs=1)
    # two of three processes: not complete, whatever each of them says
    cut = from_lines({**HEADER, "plan": Plan(processes=3).as_dict()}, lines[: 2 * 9])
    assert len(cut.processes) == 2 and not cut.complete


def test_until_stable_is_complete_only_with_its_stop_line() -> None:
    lines: list[dict[str, Any]] = []
    for i in range(3):
        lines += [{"type": "process", "index": i}, *_messages(100)]
    header = {**HEADER, "plan": STABLE.as_dict()}
    assert not from_lines(header, lines).complete  # interrupted before the rule decided
    b = from_lines(header, [*lines, {"type": "stop", "by": "stable", "processes": 3}])
    assert b.complete and b.stopped_by == "stable"


def test_running_out_of_time_is_a_finding_that_names_the_width_reached() -> None:
    lines: list[dict[str, Any]] = []
    for i, x in enumerate((1000, 1100, 900)):
        lines += [{"type": "process", "index": i}, *_messages(x)]
    header = {**HEADER, "plan": STABLE.as_dict()}
    timed_out = summarize(from_lines(header, [*lines, {"type": "stop", "by": "max_duration", "processes": 3}]))
    (finding,) = [f for f in timed_out.findings if f.code == "not_stable"]
    assert "±24.8 %" in finding.message and "±1 %" in finding.message and "--max-duration" in finding.hint
    stable = summarize(from_lines(header, [*lines, {"type": "stop", "by": "stable", "processes": 3}]))
    assert "not_stable" not in {f.code for f in stable.findings}
