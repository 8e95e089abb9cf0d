"""`harness stream` on `mcu-sim` (the emulated MCU of targets.toml) as a user runs it: the schedule
runs in the emulator's STREAM batches (SERIAL_PROTOCOL.md 3.12), the known load is the device's
own spin before each frame (``--device-work-us T``), and the figures are what tests/streamkit.py
says must follow from T, as on local and over SSH. Every figure is labelled emulated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests import streamkit
from tests.agentrun import DIGITS, ROOT, harness, json_objects

TARGETS = ["--targets", str(ROOT / "targets.toml"), "--target", "mcu-sim", "--model", str(DIGITS)]


def stream(directory: Path, t_ms: float, *args: str) -> tuple[dict[str, Any], Path]:
    """One `harness stream --json` on mcu-sim with T of device work: (object, run)."""
    directory.mkdir(parents=True, exist_ok=True)
    p = harness("stream", *TARGETS, "--warmup", "2", "--warmup-time", "0", "--device-work-us",
                str(round(t_ms * 1000)), *args, "--results", str(directory / "r"), "--json", cwd=directory)
    assert p.returncode == 0, p.stderr
    (obj,) = json_objects(p.stdout)
    assert obj["emulated"] is True and obj["runtime"] == "tflite-micro" and obj["target"] == "mcu-sim"
    return obj, directory / "r" / obj["run_id"]


def test_the_figures_hold_on_the_emulated_mcu(tmp_path: Path) -> None:
    keep, run = stream(tmp_path / "keep", 5.0, "--rate", "20", "--minutes", "0.05")
    streamkit.check_keeps_up(keep, 5.0, 20.0)
    shown = harness("show", str(run), "--json", cwd=tmp_path)
    assert json_objects(shown.stdout) == [keep]  # recomputed from the stored frames
    assert "emulated" in harness("show", str(run), cwd=tmp_path).stdout
    queued, run = stream(tmp_path / "queue", 10.0, "--rate", "200", "--minutes", "0.01")
    streamkit.check_queue_overload(queued, run, 10.0)
    dropped, run = stream(tmp_path / "drop", 10.0, "--rate", "200", "--minutes", "0.01", "--drop-late")
    streamkit.check_drop_overload(dropped, run, 10.0, 200.0)


def test_find_max_on_the_emulated_mcu(tmp_path: Path) -> None:
    """As on local: never above 1 / T, within 10 % of it in one of up to three searches."""
    t_ms = 10.0
    found = []
    for attempt in range(3):
        obj, _ = stream(tmp_path / f"a{attempt}", t_ms, "--rate", "25", "--minutes", "0.05", "--drop-late",
                        "--find-max", "--max-late", "10")
        found.append(obj["max_sustainable_rate_hz"])
        if streamkit.check_found_max(obj, t_ms):
            break
    else:
        raise AssertionError(f"--find-max found {found} Hz, not within 10 % of {1e3 / t_ms:g} Hz "
                             f"(load average {os.getloadavg()})")
    assert any(t["by"] in ("early_pass", "early_fail") for t in obj["trials"])
