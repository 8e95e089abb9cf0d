"""`harness run --target ... --json` on the emulated MCU, as a user runs it, and the targets contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.config import DEFAULT_TARGETS, SerialOptions, load_targets, parse_targets
from harness.errors import ConfigError
from tests.serialkit import fc_model, write_model

ROOT = Path(__file__).resolve().parents[1]


def test_mcu_sim_is_a_default_target_in_both_files() -> None:
    shipped, _ = load_targets(DEFAULT_TARGETS)
    local, _ = load_targets(ROOT / "targets.toml")
    for targets in (shipped, local):
        sim = targets["mcu-sim"]
        assert sim.kind == "serial" and isinstance(sim.options, SerialOptions) and sim.options.emulator
        assert sim.options.baud > 0 and sim.options.arena > 0
    assert (ROOT / "targets.toml").read_text() == DEFAULT_TARGETS.read_text()


@pytest.mark.parametrize(("table", "words"), [
    ('kind = "serial"', "needs port"),
    ('kind = "serial"\nport = "/dev/ttyACM0"\nbaud = "fast"', "baud"),
    ('kind = "serial"\nport = "/dev/ttyACM0"\nbaud = 0', "positive integer"),
    ('kind = "serial"\nemulator = true\nport = "/dev/ttyACM0"', "chosen by harness"),
    ('kind = "serial"\nport = "/dev/ttyACM0"\nspeed = 9600', "unknown key 'speed'"),
])
def test_bad_serial_tables_name_file_and_key(table: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_targets(f"[targets.board]\n{table}\n", "lab.toml")
    assert "lab.toml" in str(err.value) and "[targets.board]" in str(err.value) and words in str(err.value)


def test_harness_run_json_on_the_emulated_mcu(tmp_path: Path) -> None:
    name = f"mcu-e2e-{os.getpid()}"
    targets = tmp_path / "targets.toml"
    targets.write_text(f'[targets.{name}]\nkind = "serial"\nemulator = true\nbaud = 921600\narena = "64KiB"\n')
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    big = write_model(tmp_path, "big.tflite", fc_model(k=20000, m=2))  # an 80 KB input: arena > 64 KiB
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--targets", str(targets), "--target", name,
         "--model", str(model), "--model", str(big), "--json", "--iterations", "20", "--blocks", "2",
         "--warmup", "2", "--warmup-time", "0", "--results", str(tmp_path / "results")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, proc.stderr
    ok, refused = lines
    assert ok["target"] == name and ok["complete"] is True and ok["emulated"] is True
    assert ok["timer_resolution_ns"] == 1 and 0 < ok["arena_used_bytes"] <= 64 * 1024
    assert ok["runtime"] == "tflite-micro" and ok["with_invoke"]["n"] == 20
    assert refused["complete"] is False and refused["error"]["code"] == "arena_too_small"
    assert proc.returncode == 1 and "big.tflite" in proc.stderr  # one failed: said on stderr, exit 1
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if any(f"({name})" in part for part in (p.info["cmdline"] or []))]
    assert leftovers == []  # the emulator was stopped with the run
