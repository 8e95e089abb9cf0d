"""The agent's power readers on recorded sensor outputs (tests/fixtures/power), and its sampler.

Parsing is pure logic over a directory root or a command's text, so recorded trees and outputs,
and variants of them made broken here (missing files, garbage values, lines in another order,
one half of a pair gone), are the right test.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from device_agents.linux.tflite_agent import (
    SUM_OF_RAILS,
    PowerReadError,
    PowerSampler,
    parse_pmic_adc,
    read_ina3221,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "power"
NANO = FIXTURES / "jetson-orin-nano"
AGX = FIXTURES / "jetson-agx-orin"
NANO_HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
IDLE = (FIXTURES / "rpi5" / "pmic_read_adc_idle.txt").read_text()
LOAD = (FIXTURES / "rpi5" / "pmic_read_adc_load.txt").read_text()


def copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / tree.name))


# --- INA3221 (Jetson) ------------------------------------------------------------------------------

def test_vdd_in_is_the_total_and_each_rail_is_mv_times_ma() -> None:
    r = read_ina3221(str(NANO))
    assert r["total"] == "VDD_IN" and r["parts"] == ["VDD_IN"]
    assert r["rails"] == {"VDD_IN": 5088 * 968 / 1e6, "VDD_CPU_GPU_CV": 5080 * 256 / 1e6,
                          "VDD_SOC": 5080 * 296 / 1e6}
    assert r["watts"] == pytest.approx(4.925184)  # VDD_IN alone: it feeds the other two
    assert "sum of shunt voltages" not in r["rails"]  # in7 is no rail


def test_without_vdd_in_the_total_is_the_sum_of_every_connected_rail_and_says_so() -> None:
    r = read_ina3221(str(AGX))
    assert r["total"] == SUM_OF_RAILS == "sum of rails"
    assert set(r["rails"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}  # both monitors
    assert r["skipped"] == ["NC", "NC"]  # not connected
    expected = (19056 * 152 + 19056 * 96 + 4992 * 624 + 4992 * 176) / 1e6
    assert r["watts"] == pytest.approx(expected, abs=1e-5) and sorted(r["parts"]) == sorted(r["rails"])


def test_a_sub_rail_that_cannot_be_read_leaves_vdd_in_standing(tmp_path: Path) -> None:
    tree = copy(NANO, tmp_path)
    (tree / NANO_HWMON / "curr3_input").write_text("garbage\n")
    (tree / NANO_HWMON / "in2_input").unlink()
    r = read_ina3221(str(tree))
    assert r["watts"] == pytest.approx(4.925184) and set(r["rails"]) == {"VDD_IN"}
    assert sorted(r["unreadable"]) == ["VDD_CPU_GPU_CV", "VDD_SOC"]


@pytest.mark.parametrize("file, text", [("curr1_input", "nan\n"), ("in1_input", ""), ("curr1_input", None)])
def test_an_unreadable_vdd_in_is_no_reading_not_a_fallback_to_the_sum(tmp_path: Path, file: str,
                                                                     text: str | None) -> None:
    tree = copy(NANO, tmp_path)
    if text is None:
        (tree / NANO_HWMON / file).unlink()
    else:
        (tree / NANO_HWMON / file).write_text(text)
    with pytest.raises(PowerReadError, match="VDD_IN cannot be read"):
        read_ina3221(str(tree))


def test_a_sum_of_rails_with_a_rail_missing_is_no_reading(tmp_path: Path) -> None:
    tree = copy(AGX, tmp_path)
    (tree / "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon3/in2_input").write_text("-\n")
    with pytest.raises(PowerReadError, match="VDDQ_VDD2_1V8AO cannot be read"):
        read_ina3221(str(tree))


def test_disabled_and_unlabelled_channels_are_left_out(tmp_path: Path) -> None:
    tree = copy(AGX, tmp_path)
    hwmon = tree / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon2"
    (hwmon / "in3_enable").write_text("0\n")
    (hwmon / "in2_label").unlink()
    r = read_ina3221(str(tree))
    assert set(r["rails"]) == {"VDD_GPU_SOC", "VDDQ_VDD2_1V8AO"} and "VIN_SYS_5V0" in r["skipped"]


def test_the_same_label_on_two_monitors_is_kept_twice(tmp_path: Path) -> None:
    tree = copy(AGX, tmp_path)
    (tree / "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon3/in2_label").write_text("VDD_CPU_CV\n")
    r = read_ina3221(str(tree))
    assert {"VDD_CPU_CV", "VDD_CPU_CV (1-0041)"} <= set(r["rails"])
    assert r["watts"] == pytest.approx((19056 * 152 + 19056 * 96 + 4992 * 624 + 4992 * 176) / 1e6, abs=1e-5)


def test_no_monitor_and_no_rail_are_errors_naming_the_place(tmp_path: Path) -> None:
    with pytest.raises(PowerReadError, match="no INA3221 monitor under .*drivers/ina3221"):
        read_ina3221(str(tmp_path))
    empty = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon0"
    empty.mkdir(parents=True)
    (empty / "name").write_text("ina3221\n")
    with pytest.raises(PowerReadError, match="no INA3221 rail"):
        read_ina3221(str(tmp_path))


# --- vcgencmd pmic_read_adc (Raspberry Pi 5) -----------------------------------------------------

def pairs_of(text: str) -> dict[str, float]:
    """The test's own reading of the recorded output: V x A for every rail named with both."""
    values: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        label, _, value = line.strip().partition(" ")
        values.setdefault(label[:-2], {})[label[-1]] = float(value.split("=")[1][:-1])
    return {n: v["A"] * v["V"] for n, v in values.items() if {"A", "V"} <= set(v)}


def test_pmic_rails_pair_by_name_and_the_total_is_their_sum() -> None:
    r = parse_pmic_adc(LOAD)
    expected = pairs_of(LOAD)
    assert len(expected) == 12 and set(r["rails"]) == set(expected)
    assert r["rails"]["VDD_CORE"] == pytest.approx(3.91734 * 0.8617941, abs=1e-6)
    assert r["watts"] == pytest.approx(sum(expected.values()), abs=1e-5)
    assert r["total"] == "sum of rails" and r["skipped"] == ["BATT", "EXT5V"]  # a voltage, no current
    assert parse_pmic_adc(IDLE)["watts"] < r["watts"]


def test_pmic_pairs_do_not_depend_on_line_order_or_channel_numbers() -> None:
    lines = LOAD.splitlines()
    random.Random(7).shuffle(lines)
    assert parse_pmic_adc("\n".join(lines)) == parse_pmic_adc(LOAD)
    # current channel 17 belongs with volt(20), 16 with volt(19): pairing by number would mix rails
    text = "   3V3_DAC_A current(17)=0.50000000A\n   0V8_AON_A current(16)=2.00000000A\n" \
           "   0V8_AON_V volt(19)=0.80000000V\n   3V3_DAC_V volt(20)=3.30000000V\n"
    r = parse_pmic_adc(text)
    assert r["rails"] == {"3V3_DAC": pytest.approx(1.65), "0V8_AON": pytest.approx(1.6)}


@pytest.mark.parametrize("drop", ["VDD_CORE_V", "VDD_CORE_A"])
def test_a_rail_missing_half_its_pair_is_skipped_not_guessed(drop: str) -> None:
    text = "\n".join(x for x in LOAD.splitlines() if not x.strip().startswith(drop + " "))
    r = parse_pmic_adc(text)
    assert "VDD_CORE" not in r["rails"] and "VDD_CORE" in r["skipped"]
    assert r["watts"] == pytest.approx(sum(v for n, v in pairs_of(LOAD).items() if n != "VDD_CORE"), abs=1e-5)


def test_a_garbage_value_breaks_the_reading_only_where_it_counts() -> None:
    nan_batt = LOAD.replace("BATT_V volt(25)=0.00512820V", "BATT_V volt(25)=nanV")
    assert parse_pmic_adc(nan_batt)["watts"] == parse_pmic_adc(LOAD)["watts"]  # BATT never counts
    for bad in ("VDD_CORE_A current(7)=1.2.3A", "VDD_CORE_A current(7)=0.5V", "VDD_CORE_A volt(7)=0.5A"):
        with pytest.raises(PowerReadError, match="VDD_CORE"):
            parse_pmic_adc(LOAD.replace("VDD_CORE_A current(7)=3.91734000A", bad))


@pytest.mark.parametrize("text", ["", 'error=2 error_msg="Command not registered"\n',
                                  "     EXT5V_V volt(24)=5.07648000V\n"])
def test_output_without_a_pair_is_an_error_quoting_it(text: str) -> None:
    with pytest.raises(PowerReadError, match="no rail with both a current"):
        parse_pmic_adc(text)


# --- the sampler -----------------------------------------------------------------------------------

def test_the_sampler_keeps_good_readings_with_timestamps_and_counts_the_others() -> None:
    readings = iter([{"watts": 1.0, "rails": {"a": 1.0}, "parts": ["a"]},
                     PowerReadError("a hiccup"),
                     {"watts": 3.0, "rails": {"a": 2.0, "b": 1.0}, "parts": ["a", "b"]},  # another total
                     {"watts": 2.0, "rails": {"a": 2.0}, "parts": ["a"]}])

    def read() -> dict[str, object]:
        item = next(readings, {"watts": 4.0, "rails": {"a": 4.0}, "parts": ["a"]})
        if isinstance(item, Exception):
            raise item
        return item

    sampler = PowerSampler(read, ["a"], 0.02)
    t0 = time.perf_counter_ns()
    sampler.start(t0, t0 + 200_000_000)
    samples = sampler.join()
    assert [s["watts"] for s in samples[:2]] == [1.0, 2.0] and sampler.failed == 2
    assert "not a" in str(sampler.failure) and "as at the start" in str(sampler.failure)
    times = [s["t_ns"] for s in samples]
    assert times == sorted(times) and t0 <= times[0] and times[-1] < t0 + 220_000_000
    assert 6 <= len(samples) <= 9  # 10 slots of 20 ms, two of them failed
