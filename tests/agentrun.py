"""Helpers to run the real agent and the real CLI in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "device_agents" / "linux" / "tflite_agent.py"
MODELS = ROOT / "harness" / "example_models"
DIGITS = MODELS / "digits_cnn.tflite"
KWS = MODELS / "ds_cnn_kws.tflite"
MOBILENET = MODELS / "mobilenet_v1_025_96.tflite"

QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "40", "--blocks", "4"]


def board_env() -> dict[str, str]:
    """This environment without PYTHONPATH: what a board's python sees (no harness on its path)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_agent(*args: str, python: str = sys.executable, timeout: float = 120) -> tuple[list[dict[str, Any]], int, str]:
    """Messages, exit status and stderr of one agent run, with the environment a board has."""
    p = subprocess.run([python, str(AGENT), *args], capture_output=True, text=True, timeout=timeout,
                       env=board_env())
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()], p.returncode, p.stderr


def harness(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def json_objects(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
