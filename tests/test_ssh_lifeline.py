"""Nothing left running on an SSH board when the host dies: `harness run` killed (SIGKILL, SIGTERM)
while the pipeline spins in Python or holds the GIL, and a host gone behind a dead link whose
board's sshd never notices. Real sshd boards in network namespaces (tests/sshd.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.lab.drivers.linux import HEARTBEATS_MISSED
from harness.lab.transports.ssh import KEEPALIVE_S
from tests.agentrun import DIGITS, ROOT
from tests.environment import NETNS_WHY, ROOT_WHY, is_root, needs, require
from tests.hostkill import gone_after, stuck_pipeline, wait_for

if TYPE_CHECKING:
    from tests.sshd import Board, Lab
    from tests.sshfixtures import SshEnv

pytest_plugins = ("tests.sshfixtures",)
pytestmark = needs(is_root(), ROOT_WHY)

# The heartbeat bound: the agent's watchdog gives up after HEARTBEATS_MISSED silent intervals,
# then allows 1 s between SIGTERM and SIGKILL; the rest is slack for a loaded 2-core machine.
HEARTBEAT_BOUND_S = HEARTBEATS_MISSED * KEEPALIVE_S + 1 + 4
PLAN = ["--warmup", "2", "--warmup-time", "0", "--iterations", "400", "--blocks", "20"]
STUCK_AFTER = 80


def child_env(env: SshEnv) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    e["HOME"] = str(env.home)
    return e


def start_run(ssh_env: SshEnv, ssh_lab: Lab, board: Board, python: Path, tmp_path: Path,
              how: str) -> tuple[subprocess.Popen[str], Path, str]:
    """`harness run` on ``board`` with a pipeline stuck (``how``) after its first blocks; returns
    the host once the pipeline is stuck on the board, the results directory and the board's
    workdir (every process of the run on the board names it)."""
    from tests.sshfixtures import targets_toml  # imported late: pytest loads it as a plugin

    workdir = ssh_lab.workdir(f"lf-{how}-{tmp_path.name}")
    marker = Path(workdir) / "stuck"  # written by the board user, in its cache directory
    app = stuck_pipeline(tmp_path / "app.py", marker, how, after=STUCK_AFTER)
    targets = tmp_path / "targets.toml"
    targets.write_text(targets_toml({"pi": ssh_env.table(board, python=str(python), workdir=workdir)}))
    results = tmp_path / "r"
    host = subprocess.Popen([sys.executable, "-m", "harness", "run", "--targets", str(targets), "--model",
                             str(DIGITS), "--pipeline", str(app), *PLAN, "--results", str(results), "--json"],
                            cwd=ROOT, env=child_env(ssh_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    wait_for(lambda: marker.exists() or host.poll() is not None, 90, "the pipeline got stuck on the board")
    assert host.poll() is None, host.communicate()
    wait_for(lambda: '"type":"samples"' in record(results).read_text(), 30, "samples reached the store")
    return host, results, Path(workdir).name


def record(results: Path) -> Path:
    (path,) = results.glob("*/benchmarks/*.jsonl")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def on_board(ssh_lab: Lab, needle: str) -> list[int]:
    return [pid for pid, _ in ssh_lab.processes(needle)]


def cleanup(ssh_lab: Lab, needle: str, host: subprocess.Popen[str]) -> None:
    """SIGKILL what a failed test left on the board (by pid), and the host if it still runs."""
    for pid in on_board(ssh_lab, needle):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if host.poll() is None:
        host.kill()
        host.communicate()


@pytest.mark.parametrize("how", ["spin", "gil"])
def test_a_killed_host_leaves_no_agent_on_the_board(ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path,
                                                    tmp_path: Path, how: str) -> None:
    host, results, needle = start_run(ssh_env, ssh_lab, ssh_lab.boards[0], litert_python, tmp_path, how)
    try:
        assert on_board(ssh_lab, needle)
        host.kill()
        host.communicate(timeout=30)
        elapsed = gone_after(lambda: on_board(ssh_lab, needle), HEARTBEAT_BOUND_S)
        print(f"{how}: board empty {elapsed:.2f} s after SIGKILL of the host")
        assert any(m["type"] == "samples" for m in lines(record(results)))
    finally:
        cleanup(ssh_lab, needle, host)


@pytest.mark.parametrize("how", ["spin", "gil"])
def test_sigterm_stops_every_agent_and_marks_the_run(ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path,
                                                     tmp_path: Path, how: str) -> None:
    host, results, needle = start_run(ssh_env, ssh_lab, ssh_lab.boards[1], litert_python, tmp_path, how)
    try:
        host.send_signal(signal.SIGTERM)
        out, err = host.communicate(timeout=60)
        assert host.returncode == 143, err
        elapsed = gone_after(lambda: on_board(ssh_lab, needle), HEARTBEAT_BOUND_S)
        print(f"{how}: board empty {elapsed:.2f} s after harness exited on SIGTERM")
        (run_json,) = results.glob("*/run.json")
        meta = json.loads(run_json.read_text())
        assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM", meta
        stored = lines(record(results))
        assert any(m["type"] == "samples" for m in stored)
        assert stored[-1]["type"] == "end" and stored[-1]["reason"] == "interrupted"
        (obj,) = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
        assert obj["complete"] is False and obj["with_invoke"]["n"] > 0
    finally:
        cleanup(ssh_lab, needle, host)


@pytest.fixture
def deaf_board(ssh_lab: Lab, ssh_env: SshEnv) -> Iterator[Board]:
    """A board whose sshd never checks on its clients (no ClientAliveInterval): behind a dead
    link only the agent's own watchdog can notice that the host is gone."""
    require(ssh_lab.use_netns, f"dropping a link {NETNS_WHY}")
    board = ssh_lab.add_board(f"deaf{ssh_lab._count + 1}", client_alive_s=0)
    ssh_env.add_board(board)
    try:
        yield board
    finally:
        ssh_lab.remove_board(board)


def test_a_host_gone_behind_a_dead_link_leaves_no_agent_holding_the_gil(
        ssh_env: SshEnv, ssh_lab: Lab, deaf_board: Board, litert_python: Path, tmp_path: Path) -> None:
    host, _, needle = start_run(ssh_env, ssh_lab, deaf_board, litert_python, tmp_path, "gil")
    try:
        deaf_board.link_down()  # no FIN, no RST: the board's sshd keeps the session open
        host.kill()
        host.communicate(timeout=30)
        elapsed = gone_after(lambda: on_board(ssh_lab, needle), HEARTBEAT_BOUND_S)
        print(f"dead link: board empty {elapsed:.2f} s after the host died "
              f"(heartbeat timeout {HEARTBEATS_MISSED * KEEPALIVE_S:g} s)")
    finally:
        cleanup(ssh_lab, needle, host)
