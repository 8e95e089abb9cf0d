"""Energy, cost and duty cycle on known figures (harness.results.energy), the summary's JSON of
them, and the energy table (harness.render.energy) within 100 columns."""

from __future__ import annotations

from typing import Any

import pytest

from harness.render import terminal
from harness.render.energy import energy_grid, energy_rows
from harness.results import energy
from harness.results.benchmark import Benchmark, Block, PowerRecord, from_lines
from harness.results.summary import at_rate, summarize


def window(name: str, watts: list[Any], failed: int = 0, invokes: int | None = None) -> dict[str, Any]:
    return {"type": "power_window", "window": name, "t0_ns": 0, "t1_ns": 10**9, "failed": failed,
            "invokes": invokes, "samples": [{"t_ns": i, "watts": w, "rails": {}} for i, w in enumerate(watts)]}


def record(idle: list[Any] | None, active: list[Any] | None) -> PowerRecord:
    windows = ([window("idle", idle)] if idle is not None else []) + \
              ([window("active", active, invokes=900)] if active is not None else [])
    return PowerRecord(power_set={"source": "ina3221"}, source={"total": "VDD_IN"}, windows=tuple(windows),
                       summary={"wall_ns": 1})


# --- energy ------------------------------------------------------------------------------------

def test_measured_energy_is_active_less_idle_times_the_medians() -> None:
    e = energy.measured(record([2.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]), invoke_ns=2e6, loop_ns=2.5e6)
    assert e is not None and e.source == "measured" and (e.active_w, e.idle_w) == (5.5, 2.0)
    assert e.per_inference_mj == pytest.approx(3.5 * 2.0)  # 3.5 W for 2 ms = 7 mJ
    assert e.per_loop_mj == pytest.approx(3.5 * 2.5)
    assert (e.idle_samples, e.active_samples, e.reader, e.total) == (3, 4, "ina3221", "VDD_IN")
    assert e.to_json()["samples"] == {"idle": 3, "active": 4, "failed": 0}


def test_measured_without_idle_samples_counts_the_whole_draw() -> None:
    e = energy.measured(record([], [4.0, 4.0]), invoke_ns=1e6, loop_ns=None)
    assert e is not None and e.idle_w is None and e.per_inference_mj == pytest.approx(4.0)
    assert e.per_loop_mj is None


def test_damaged_samples_count_as_failed_never_as_readings() -> None:
    e = energy.measured(record([1.0, "x", float("nan")], [3.0, None, True]), invoke_ns=1e6, loop_ns=1e6)
    assert e is not None and (e.idle_w, e.active_w, e.failed) == (1.0, 3.0, 4)


def test_declared_energy_with_and_without_idle() -> None:
    e = energy.declared({"power_w": 6.4, "idle_power_w": 2.7}, invoke_ns=1e6, loop_ns=4e6)
    assert e is not None and e.source == "declared" and e.per_inference_mj == pytest.approx(3.7)
    assert e.per_loop_mj == pytest.approx(14.8) and e.to_json()["samples"] is None
    alone = energy.declared({"power_w": 6.4}, invoke_ns=1e6, loop_ns=None)
    assert alone is not None and alone.idle_w is None and alone.per_inference_mj == pytest.approx(6.4)
    assert energy.declared({"idle_power_w": 2.7}, 1e6, 1e6) is None


def test_measured_wins_and_is_never_mixed_with_declared() -> None:
    facts = {"power_w": 10.0, "idle_power_w": 1.0}
    e = energy.energy(record([], [4.0]), facts, invoke_ns=1e6, loop_ns=1e6)
    assert e is not None and e.source == "measured" and e.idle_w is None  # not the declared 1 W
    fallback = energy.energy(record([2.0], []), facts, invoke_ns=1e6, loop_ns=1e6)
    assert fallback is not None and fallback.source == "declared" and fallback.per_inference_mj == 9.0
    assert energy.energy(None, {}, 1e6, 1e6) is None


# --- cost and duty -----------------------------------------------------------------------------------

def test_inferences_per_second_per_dollar() -> None:
    c = energy.cost({"price_usd": 50.0}, ips=10_000.0)
    assert c is not None and c.ips_per_usd == 200.0 and c.to_json() == {"price_usd": 50.0, "ips_per_usd": 200.0}
    assert energy.cost({}, 10_000.0) is None
    assert energy.cost({"price_usd": 50.0}, None) == energy.Cost(50.0, None)


def test_duty_cycle_at_a_sustainable_rate() -> None:
    power = energy.declared({"power_w": 5.0, "idle_power_w": 2.0}, 1e6, 20e6)
    d = energy.duty(10.0, loop_ns=20e6, power=power)  # 10 loops of 20 ms: busy 0.2 s a second
    assert d is not None and d.busy_fraction == pytest.approx(0.2) and d.sustainable
    assert d.average_w == pytest.approx(0.2 * 5.0 + 0.8 * 2.0)
    assert d.to_json() == {"rate_hz": 10.0, "busy_fraction": pytest.approx(0.2), "average_w": pytest.approx(2.6),
                           "sustainable": True}


def test_duty_cycle_flags_a_rate_the_board_cannot_keep_up_with() -> None:
    power = energy.declared({"power_w": 5.0, "idle_power_w": 2.0}, 1e6, 20e6)
    d = energy.duty(60.0, loop_ns=20e6, power=power)
    assert d is not None and d.busy_fraction == pytest.approx(1.2) and not d.sustainable and d.average_w is None
    exactly = energy.duty(50.0, loop_ns=20e6, power=power)
    assert exactly is not None and not exactly.sustainable  # no time left to sleep: not sustainable
    no_idle = energy.duty(10.0, 20e6, energy.declared({"power_w": 5.0}, 1e6, 20e6))
    assert no_idle is not None and no_idle.busy_fraction == pytest.approx(0.2) and no_idle.average_w is None
    assert energy.duty(None, 20e6, power) is None and energy.duty(10.0, None, power) is None


# --- the summary and its table -------------------------------------------------------------------------

def benchmark(target: str = "pi5", model: str = "ds_cnn_kws.tflite", facts: dict[str, Any] | None = None,
              rate: float | None = None, power: PowerRecord | None = None, loop_ns: int = 2_000_000,
              invoke_ns: int = 1_500_000) -> Benchmark:
    blocks = (Block("with", 0, (loop_ns,) * 5, {"invoke": (invoke_ns,) * 5}, None, None),
              Block("without", 0, (loop_ns - invoke_ns,) * 5, {}, None, None))
    return Benchmark(target=target, model=model, model_sha256="0" * 64, threads=1, plan={"rate_hz": rate},
                     hello={"board": {}}, summary={}, blocks=blocks, target_facts=facts or {}, power_pass=power)


def test_the_summary_json_carries_energy_cost_and_duty() -> None:
    s = summarize(benchmark(facts={"price_usd": 80.0, "power_w": 7.0, "idle_power_w": 3.0}, rate=100.0))
    o = s.to_json()
    assert o["energy"]["source"] == "declared" and o["energy"]["per_inference_mj"] == pytest.approx(4.0 * 1.5)
    assert o["energy"]["per_loop_mj"] == pytest.approx(4.0 * 2.0)
    assert o["cost"] == {"price_usd": 80.0, "ips_per_usd": pytest.approx(500.0 / 80.0)}
    assert o["duty"]["busy_fraction"] == pytest.approx(0.2) and o["duty"]["average_w"] == pytest.approx(3.8)
    bare = summarize(benchmark()).to_json()
    assert (bare["energy"], bare["cost"], bare["duty"]) == (None, None, None)
    assert at_rate(s, 1000.0).to_json()["duty"]["sustainable"] is False


def test_a_power_pass_read_back_from_lines_is_measured() -> None:
    header = {"target": "jetson", "model": "m.tflite", "model_sha256": "0" * 64, "threads": 1, "plan": {},
              "target_facts": {"power": "ina3221", "power_w": 99.0}}
    lines: list[dict[str, Any]] = [
        {"type": "hello", "board": {}}, {"type": "plan", "stages": ["invoke"]},
        {"type": "samples", "mode": "with", "block": 0, "loop_ns": [2_000_000] * 3,
         "stages": {"invoke": [1_000_000] * 3}},
        {"type": "samples", "mode": "without", "block": 0, "loop_ns": [1_000_000] * 3, "stages": {}},
        {"type": "summary"},
        {"type": "power_set", "source": "ina3221", "window_s": 1.0, "settle_s": 1.0, "interval_s": 0.2},
        {"type": "hello", "mode": "power", "board": {"model": "not a process"}}, {"type": "model"},
        {"type": "power_source", "total": "VDD_IN"}, window("idle", [4.0, 4.0]), window("active", [9.0, 10.0])]
    b = from_lines(header, lines)
    assert len(b.processes) == 1 and b.hello["board"] == {}  # the power pass's hello is its own
    assert not b.complete  # a target with a power reader is complete with its power_summary only
    done = from_lines(header, [*lines, {"type": "power_summary", "wall_ns": 5}])
    assert done.complete
    e = summarize(done).energy
    assert e is not None and e.source == "measured" and e.per_inference_mj == pytest.approx(5.5 * 1.0)


def test_the_energy_table_fits_100_columns_and_drops_empty_columns() -> None:
    long = "a_model_with_a_very_long_name_from_a_model_zoo_int8.tflite"
    summaries = [summarize(benchmark(target="raspberry-pi-5-8gb", model=long,
                                     facts={"price_usd": 80.0, "power_w": 7.0, "idle_power_w": 3.0}, rate=10.0)),
                 summarize(benchmark(target="jetson", facts={"price_usd": 249.0}, rate=10.0,
                                     power=record([4.0], [9.0]))),
                 summarize(benchmark(target="plain"))]
    grid = energy_grid(summaries)
    assert grid is not None and len(grid.rows) == 2  # "plain" has no energy figure
    default = grid.narrow(False)
    assert [c.key for c in default.columns] == ["target", "model", "threads", "source", "watts", "inference",
                                                "loop", "ips_per_usd", "busy", "average"]
    assert "Busy at 10/s" in [c.header for c in default.columns]
    assert all(part.width <= 100 for part in terminal.fit(default, 100))
    rows = energy_rows(summaries)
    assert [r["source"] for r in rows] == ["declared", "measured"] and rows[1]["per_inference_mj"] == pytest.approx(5.0 * 1.5)
    assert any("measured: on the board" in line for line in grid.legend)
    assert energy_grid([summarize(benchmark())]) is None
    no_price = energy_grid([summarize(benchmark(facts={"power_w": 2.0}))])
    assert no_price is not None and "ips_per_usd" not in [c.key for c in no_price.columns]
