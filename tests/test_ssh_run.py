"""`harness run` end to end on several real SSH boards: parallel, cached, a dead board, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import ROOT
from tests.environment import NETNS_WHY, ROOT_WHY, is_root, needs, require

if TYPE_CHECKING:
    from tests.sshd import Lab
    from tests.sshfixtures import SshEnv

pytest_plugins = ("tests.sshfixtures",)
pytestmark = needs(is_root(), ROOT_WHY)

MODEL = ROOT / "harness" / "example_models" / "digits_cnn.tflite"
# Short runs: these tests check plumbing, not timing (that stays on the device either way).
QUICK = ["--duration", "0.05", "--min-iterations", "10", "--blocks", "2", "--warmup", "2",
         "--warmup-time", "0"]


def harness(args: list[str], env: SshEnv, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=child_env(env),
                          capture_output=True, text=True, timeout=120, **kw)


def child_env(env: SshEnv) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    e["HOME"] = str(env.home)
    return e


@pytest.fixture
def lab_targets(ssh_env: SshEnv, ssh_lab: Lab, tflite214_python: Path, litert_python: Path,
                tmp_path: Path) -> Path:
    """pi (tflite-runtime 2.14 venv), jetson and nano (ai-edge-litert venv), each its own cache."""
    b1, b2, b3 = ssh_lab.boards[:3]
    tables = {
        "pi": ssh_env.table(b1, python=str(tflite214_python), workdir=ssh_lab.workdir(f"pi-{tmp_path.name}")),
        "jetson": ssh_env.table(b2, python=str(litert_python),
                                workdir=ssh_lab.workdir(f"jetson-{tmp_path.name}")),
        "nano": ssh_env.table(b3, python=str(litert_python), workdir=ssh_lab.workdir(f"nano-{tmp_path.name}")),
    }
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml(tables))
    return path


def targets_toml(tables: dict[str, dict[str, Any]]) -> str:
    from tests.sshfixtures import targets_toml as render  # imported late: pytest loads it as a plugin

    return render(tables)


def json_results(stdout: str) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in map(json.loads, stdout.splitlines())}


def test_three_boards_in_parallel_then_cached(ssh_env: SshEnv, lab_targets: Path, tmp_path: Path) -> None:
    args = ["run", "--targets", str(lab_targets), "--model", str(MODEL), "--json",
            "--results", str(tmp_path / "results"), *QUICK]
    first = harness(args, ssh_env)
    assert first.returncode == 0, first.stderr
    results = json_results(first.stdout)
    assert set(results) == {"pi", "jetson", "nano"}
    agent = (ROOT / "device_agents" / "linux" / "tflite_agent.py").stat().st_size
    for name, r in results.items():
        assert r["complete"] is True, (name, r)
        assert r["with_invoke"]["n"] >= 10 and r["without_invoke"]["n"] >= 10
        assert r["pushed_bytes"] == MODEL.stat().st_size + agent, name
        assert r["push_ns"] > 0, name  # the push is timed, on the host
    assert results["pi"]["runtime"] == "tflite_runtime" and results["pi"]["runtime_version"] == "2.14.0"
    assert results["jetson"]["runtime"] == "ai_edge_litert"
    # The second run finds model and agent in each board's cache: nothing is sent again.
    second = harness(args, ssh_env)
    assert second.returncode == 0, second.stderr
    for name, r in json_results(second.stdout).items():
        assert r["complete"] is True and r["pushed_bytes"] == 0, name
    # Result files hold no connection details.
    stored = "".join(p.read_text() for p in (tmp_path / "results").rglob("*.json*"))
    assert ssh_env.lab.boards[0].host not in stored and str(ssh_env.key) not in stored


def test_a_dead_board_does_not_spoil_the_others(ssh_env: SshEnv, ssh_lab: Lab, lab_targets: Path,
                                                tmp_path: Path) -> None:
    text = lab_targets.read_text() + targets_toml({
        "ghost": {"kind": "ssh", "host": ssh_lab.free_address(), "connect_timeout_s": 1},
        "nopython": ssh_env.table(ssh_lab.boards[0], python="/opt/missing/bin/python3",
                                  workdir=ssh_lab.workdir(f"nopy-{tmp_path.name}")),
        # The system python of the board: no numpy, no runtime.
        "bare": ssh_env.table(ssh_lab.boards[1], python="/usr/bin/python3",
                              workdir=ssh_lab.workdir(f"bare-{tmp_path.name}")),
    })
    lab_targets.write_text(text)
    run = harness(["run", "--targets", str(lab_targets), "--model", str(MODEL), "--json",
                   "--results", str(tmp_path / "results"), *QUICK], ssh_env)
    assert run.returncode == 1
    results = json_results(run.stdout)
    for name in ("pi", "jetson", "nano"):
        assert results[name]["complete"] is True, (name, results[name])
    for name in ("ghost", "nopython", "bare"):
        assert results[name]["complete"] is False and results[name]["error"], name
    assert "numpy" in results["bare"]["error"]["message"] and "/usr/bin/python3" in results["bare"]["error"]["message"]
    ghost = results["ghost"]["error"]["message"]
    assert any(why in ghost for why in ("no answer", "cannot reach", "connection refused")), ghost
    assert "/opt/missing/bin/python3" in results["nopython"]["error"]["message"]
    # The human table says which failed and why, too.
    table = harness(["show", str(next((tmp_path / "results").iterdir()))], ssh_env)
    assert "ghost" in table.stdout and "nopython" in table.stdout and "bare" in table.stdout


def test_ctrl_c_stops_every_board_and_keeps_samples(ssh_env: SshEnv, ssh_lab: Lab, lab_targets: Path,
                                                   tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--targets", str(lab_targets), "--model", str(MODEL),
         "--json", "--results", str(results), "--duration", "60", "--blocks", "200", "--warmup", "2",
         "--warmup-time", "0"],
        cwd=ROOT, env=child_env(ssh_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until every board has streamed samples, and its agent is running.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = list(results.rglob("benchmarks/*.jsonl"))
            if len(files) == 3 and all('"type":"samples"' in f.read_text() for f in files):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no samples from every board within 60 s")
        assert len(ssh_lab.processes("tflite_agent.py")) >= 3
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    # No agent (nor its wrapper) is left on any board.
    deadline = time.monotonic() + 10
    while ssh_lab.processes("tflite_agent.py") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ssh_lab.processes("tflite_agent.py") == []
    # Every board's samples so far are on disk, marked incomplete.
    for f in results.rglob("benchmarks/*.jsonl"):
        lines = [json.loads(line) for line in f.read_text().splitlines()]
        assert any(m.get("type") == "samples" for m in lines), f
    shown = harness(["show", "--results", str(results), "--json"], ssh_env)
    assert shown.returncode == 0, shown.stderr
    summary = json_results(shown.stdout)
    assert set(summary) == {"pi", "jetson", "nano"}
    for name, r in summary.items():
        assert r["complete"] is False and r["with_invoke"]["n"] > 0, (name, r)


def test_agent_killed_and_link_dropped_mid_run(ssh_env: SshEnv, ssh_lab: Lab, fresh_board: Any,
                                              tflite214_python: Path, litert_python: Path,
                                              tmp_path: Path) -> None:
    """pi's agent is SIGKILLed, flaky's network goes down; jetson finishes; nothing measured is lost."""
    require(ssh_lab.use_netns, f"dropping a link {NETNS_WHY}")
    b1, b2 = ssh_lab.boards[:2]
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml({
        "pi": ssh_env.table(b1, python=str(tflite214_python), workdir=ssh_lab.workdir(f"k-{tmp_path.name}")),
        "jetson": ssh_env.table(b2, python=str(litert_python), workdir=ssh_lab.workdir(f"j-{tmp_path.name}")),
        "flaky": ssh_env.table(fresh_board, python=str(litert_python), connect_timeout_s=2,
                               workdir=ssh_lab.workdir(f"f-{tmp_path.name}")),
    }))
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--targets", str(path), "--model", str(MODEL), "--json",
         "--results", str(results), "--duration", "4", "--blocks", "40", "--warmup", "2",
         "--warmup-time", "0"],
        cwd=ROOT, env=child_env(ssh_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = list(results.rglob("benchmarks/*.jsonl"))
            if len(files) == 3 and all('"type":"samples"' in f.read_text() for f in files):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no samples from every board within 60 s")
        workdir_k = f"k-{tmp_path.name}"
        victims = [pid for pid, cmd in ssh_lab.processes("tflite_agent.py") if workdir_k in cmd
                   and not cmd.startswith("sh ")]
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        fresh_board.link_down()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    r = json_results(out)
    assert r["jetson"]["complete"] is True
    assert r["pi"]["complete"] is False and "SIGKILL" in r["pi"]["error"]["message"]
    assert r["flaky"]["complete"] is False and "lost" in r["flaky"]["error"]["message"]
    for name in ("pi", "flaky"):
        assert r[name]["with_invoke"]["n"] > 0, name  # what arrived before the fault is kept
    # The board behind the dead link ends its agent on its own (sshd ClientAlive + stdin lifeline).
    deadline = time.monotonic() + 20
    while ssh_lab.processes(f"f-{tmp_path.name}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ssh_lab.processes(f"f-{tmp_path.name}") == []
    assert ssh_lab.processes(f"k-{tmp_path.name}") == []
