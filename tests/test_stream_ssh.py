"""`harness stream` over real OpenSSH to a network-namespace board: the same figures as on
`local` (tests/streamkit.py), the schedule run on the board, and no agent left there after the
trials of --find-max, each of which the host stops as soon as its answer is clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import streamkit
from tests.conftest import ROOT
from tests.environment import ROOT_WHY, is_root, needs

if TYPE_CHECKING:
    from tests.sshd import Lab
    from tests.sshfixtures import SshEnv

pytest_plugins = ("tests.sshfixtures",)
pytestmark = needs(is_root(), ROOT_WHY)

MODEL = ROOT / "harness" / "example_models" / "digits_cnn.tflite"


@pytest.fixture
def board_targets(ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path, tmp_path: Path) -> Path:
    from tests.sshfixtures import targets_toml

    path = tmp_path / "targets.toml"
    path.write_text(targets_toml({"board": ssh_env.table(ssh_lab.boards[0], python=str(litert_python),
                                                         workdir=ssh_lab.workdir(f"st-{tmp_path.name}"))}))
    return path


def stream(env: SshEnv, targets: Path, directory: Path, *args: str) -> tuple[dict[str, Any], Path]:
    directory.mkdir(parents=True, exist_ok=True)
    child = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    child["HOME"] = str(env.home)
    p = subprocess.run([sys.executable, "-m", "harness", "stream", "--targets", str(targets), "--model", str(MODEL),
                        "--warmup", "2", "--warmup-time", "0", *args, "--results", str(directory / "r"), "--json"],
                       cwd=ROOT, env=child, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (obj,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert obj["target"] == "board"
    return obj, directory / "r" / obj["run_id"]


def no_agent_left(lab: Lab) -> None:
    deadline = time.monotonic() + 10
    while lab.processes("tflite_agent.py") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab.processes("tflite_agent.py") == []


def test_the_figures_hold_over_ssh(ssh_env: SshEnv, ssh_lab: Lab, board_targets: Path, tmp_path: Path) -> None:
    keep, _ = stream(ssh_env, board_targets, tmp_path / "keep", "--rate", "20", "--minutes", "0.05",
                     "--pipeline", str(streamkit.busy_pipeline(tmp_path, 5.0)))
    streamkit.check_keeps_up(keep, 5.0, 20.0)
    busy = str(streamkit.busy_pipeline(tmp_path, 10.0))
    queued, run = stream(ssh_env, board_targets, tmp_path / "queue", "--rate", "200", "--minutes", "0.02",
                         "--pipeline", busy)
    streamkit.check_queue_overload(queued, run, 10.0)
    dropped, run = stream(ssh_env, board_targets, tmp_path / "drop", "--rate", "200", "--minutes", "0.02",
                          "--drop-late", "--pipeline", busy)
    streamkit.check_drop_overload(dropped, run, 10.0, 200.0)
    no_agent_left(ssh_lab)


def test_find_max_over_ssh(ssh_env: SshEnv, ssh_lab: Lab, board_targets: Path, tmp_path: Path) -> None:
    """As on local (tests/test_stream_run.py): never above 1 / T, within 10 % of it in one of up
    to three searches; every trial's agent stopped on the board."""
    t_ms = 20.0
    pipeline = str(streamkit.busy_pipeline(tmp_path, t_ms))
    found = []
    for attempt in range(3):
        obj, _ = stream(ssh_env, board_targets, tmp_path / f"a{attempt}", "--rate", "25", "--minutes", "0.05",
                        "--drop-late", "--find-max", "--max-late", "10", "--pipeline", pipeline)
        found.append(obj["max_sustainable_rate_hz"])
        no_agent_left(ssh_lab)
        if streamkit.check_found_max(obj, t_ms):
            break
    else:
        raise AssertionError(f"--find-max found {found} Hz, not within 10 % of {1e3 / t_ms:g} Hz "
                             f"(load average {os.getloadavg()})")
    assert any(t["by"] in ("early_pass", "early_fail") for t in obj["trials"])
