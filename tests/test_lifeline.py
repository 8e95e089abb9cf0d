"""Nothing left running on a board (this machine as the board): the agent's watchdog process,
and `harness run` / `harness analyze --profile` killed with SIGKILL, SIGTERM or SIGHUP while the
user's pipeline spins in Python or holds the GIL. Real agents, real runtime, real models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.agentrun import AGENT, DIGITS, MOBILENET, board_env
from tests.hostkill import gone_after, kill_all, local_agents, stuck_pipeline, wait_for

# Locally there are no heartbeats: the host's death closes the agent's stdin at once, and the
# watchdog needs its SIGTERM grace (1 s) at most. The rest is slack for a loaded 2-core machine.
LOCAL_BOUND_S = 5.0
# A plan whose first blocks finish before preprocess call 80 gets stuck: samples are on disk.
PLAN = ["--warmup", "2", "--warmup-time", "0", "--iterations", "400", "--blocks", "20"]
STUCK_AFTER = 80


def test_the_stuck_pipeline_really_holds_the_gil(tmp_path: Path) -> None:
    """The premise of the GIL tests: while hold_gil runs, another thread of the process cannot."""
    app = stuck_pipeline(tmp_path / "app.py", tmp_path / "stuck", "gil")
    probe = f"""
import importlib.util, json, threading, time
spec = importlib.util.spec_from_file_location("app", {str(app)!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
ticks = 0
def tick():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.001)
threading.Thread(target=tick, daemon=True).start()
time.sleep(0.05)
def during(work):
    before, t0 = ticks, time.perf_counter()
    work()
    return ticks - before, time.perf_counter() - t0
print(json.dumps(during(lambda: app.hold_gil(3 * 10 ** 7))))
def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
print(json.dumps(during(lambda: spin(0.3))))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    (held, held_s), (spun, spun_s) = map(json.loads, out.stdout.splitlines())
    assert held_s > 0.1 and held <= 2, (held, held_s)  # ~1 ms ticks: none got in
    assert spun >= 10, (spun, spun_s)  # the same thread runs fine beside Python code (~50 ticks)


def start_agent(*args: str) -> subprocess.Popen[bytes]:
    """The agent as the local transport starts it: its own session, stdin, stdout, stderr piped."""
    return subprocess.Popen([sys.executable, str(AGENT), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env=board_env())


def test_a_silent_host_stops_an_agent_that_holds_the_gil(tmp_path: Path) -> None:
    """Heartbeats stop but stdin stays open (a host behind a dead link), while the pipeline holds
    the GIL: no thread of the agent can run, its watchdog process still ends it."""
    marker = tmp_path / "stuck"
    app = stuck_pipeline(tmp_path / "app.py", marker, "gil")
    agent = start_agent("run", "--model", str(DIGITS), "--pipeline", str(app), "--lifeline",
                        "--heartbeat-timeout", "2")
    try:
        wait_for(marker.exists, 60, "the pipeline got stuck")
        elapsed = gone_after(lambda: local_agents(str(tmp_path)), 2 + LOCAL_BOUND_S)
        assert agent.stderr is not None and b"no heartbeat" in agent.stderr.read()
        assert agent.wait(5) < 0  # killed (SIGTERM, then SIGKILL), never a status of its own
        print(f"gone {elapsed:.2f} s after the marker (timeout 2 s)")
    finally:
        kill_all(local_agents(str(tmp_path)))
        agent.kill()
        agent.wait()


def test_profile_mode_is_watched_too(tmp_path: Path) -> None:
    """The host vanishes (its ends of all three pipes close) during a long profile round, in which
    the agent writes nothing: its watchdog ends it, long before the round would."""
    model = tmp_path / "watched.tflite"
    shutil.copy(MOBILENET, model)
    # One model, 200,000 Invokes per turn: the warm-up round alone takes about a minute, silently.
    agent = start_agent("profile", "--rounds", "1", "--slices", "1", "--min-per-slice", "200000",
                        "--lifeline", str(model))
    try:
        assert agent.stdout is not None and agent.stdin is not None and agent.stderr is not None
        for line in agent.stdout:
            if json.loads(line)["type"] == "plan":
                break
        for pipe in (agent.stdin, agent.stdout, agent.stderr):
            pipe.close()
        elapsed = gone_after(lambda: local_agents(str(tmp_path)), LOCAL_BOUND_S)
        print(f"profile agent gone {elapsed:.2f} s after its host")
    finally:
        kill_all(local_agents(str(tmp_path)))
        agent.kill()
        agent.wait()


def test_user_code_never_reads_the_heartbeats_and_the_watchdog_leaves_with_the_agent(tmp_path: Path) -> None:
    """The watchdog owns stdin: a pipeline that reads stdin reads end of file at once (it cannot
    swallow the host's heartbeats, nor block on them); after a normal run nothing is left."""
    app = tmp_path / "reads_stdin.py"
    app.write_text("import sys\n\nSEEN = sys.stdin.read()\n\n\ndef preprocess(raw):\n"
                   "    assert SEEN == '', SEEN\n    return raw\n")
    agent = start_agent("run", "--model", str(DIGITS), "--pipeline", str(app), "--warmup", "2",
                        "--warmup-time", "0", "--iterations", "20", "--blocks", "2", "--lifeline",
                        "--heartbeat-timeout", "30")
    try:
        assert agent.stdin is not None and agent.stdout is not None and agent.stderr is not None
        agent.stdin.write(b"\n")  # a heartbeat, which only the watchdog may read
        agent.stdin.flush()
        guard = threading.Timer(60, agent.kill)  # an agent blocked on its stdin fails, not hangs
        guard.start()
        out = agent.stdout.read()  # to the end: the agent's exit (stdin stays open meanwhile)
        guard.cancel()
        assert agent.wait(60) == 0, agent.stderr.read()
        assert json.loads(out.splitlines()[-1])["type"] == "summary"
        assert local_agents(str(tmp_path)) == []  # the watchdog ended with the agent, reaped
        agent.stdin.close()
    finally:
        kill_all(local_agents(str(tmp_path)))
        agent.kill()
        agent.wait()


# --- the host killed -------------------------------------------------------------------------

def harness_run(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    """`harness run` on the local board with a pipeline that gets stuck (``how``) after its first
    blocks; returns the host process once the pipeline is stuck, and the results directory."""
    (tmp_path / "targets.toml").write_text('[targets.local]\nkind = "local"\n')
    marker = tmp_path / "stuck"
    app = stuck_pipeline(tmp_path / "app.py", marker, how, after=STUCK_AFTER)
    results = tmp_path / "r"
    host = subprocess.Popen([sys.executable, "-m", "harness", "run", "--target", "local", "--model", str(DIGITS),
                             "--pipeline", str(app), *PLAN, "--results", str(results), "--json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for(lambda: marker.exists() or host.poll() is not None, 90, "the pipeline got stuck")
    assert host.poll() is None, host.communicate()
    wait_for(lambda: '"type":"samples"' in record(results).read_text(), 30, "samples reached the store")
    return host, results


def record(results: Path) -> Path:
    (path,) = results.glob("*/benchmarks/*.jsonl")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("how", ["spin", "gil"])
def test_a_killed_host_leaves_no_agent_on_the_board(tmp_path: Path, how: str) -> None:
    host, results = harness_run(tmp_path, how)
    try:
        assert local_agents(str(tmp_path))
        host.kill()  # SIGKILL: nothing of harness runs after this
        host.communicate(timeout=30)
        elapsed = gone_after(lambda: local_agents(str(tmp_path)), LOCAL_BOUND_S)
        print(f"{how}: agents gone {elapsed:.2f} s after SIGKILL of the host")
        assert any(m["type"] == "samples" for m in lines(record(results)))  # what was measured stays
    finally:
        kill_all(local_agents(str(tmp_path)))
        if host.poll() is None:
            host.kill()
            host.communicate()


@pytest.mark.parametrize(("how", "sig"), [("spin", signal.SIGTERM), ("gil", signal.SIGTERM),
                                          ("gil", signal.SIGHUP)])
def test_sigterm_and_sighup_stop_the_run_like_ctrl_c(tmp_path: Path, how: str, sig: signal.Signals) -> None:
    host, results = harness_run(tmp_path, how)
    try:
        host.send_signal(sig)
        out, err = host.communicate(timeout=60)
        assert host.returncode == 128 + sig, err
        assert "interrupted" in err and "harness show" in err
        elapsed = gone_after(lambda: local_agents(str(tmp_path)), LOCAL_BOUND_S)
        print(f"{how}: agents gone {elapsed:.2f} s after harness exited on {sig.name}")
        (run_json,) = results.glob("*/run.json")
        meta = json.loads(run_json.read_text())
        assert meta["status"] == "interrupted" and meta["signal"] == sig.name, meta
        stored = lines(record(results))
        assert any(m["type"] == "samples" for m in stored)
        assert stored[-1]["type"] == "end" and stored[-1]["complete"] is False
        assert stored[-1]["reason"] == "interrupted"
        (obj,) = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
        assert obj["complete"] is False and obj["with_invoke"]["n"] > 0  # what was measured is shown
    finally:
        kill_all(local_agents(str(tmp_path)))
        if host.poll() is None:
            host.kill()
            host.communicate()


def test_sigterm_stops_a_profile_like_ctrl_c(tmp_path: Path) -> None:
    model = tmp_path / "terminate-me.tflite"
    shutil.copy(MOBILENET, model)
    (tmp_path / "targets.toml").write_text('[targets.local]\nkind = "local"\n')
    host = subprocess.Popen([sys.executable, "-m", "harness", "analyze", str(model), "--profile", "local",
                             "--rounds", "5000", "--results", "r"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, COLUMNS="200"))
    try:
        rounds = lambda: [p for p in (tmp_path / "r").glob("*/profiles/*.jsonl")  # noqa: E731
                          if p.read_text().count('"type":"round"') >= 2]
        wait_for(lambda: bool(rounds()) or host.poll() is not None, 90, "rounds arrived")
        assert host.poll() is None, host.communicate()
        host.send_signal(signal.SIGTERM)
        out, err = host.communicate(timeout=60)
        assert host.returncode == 143, err
        assert "interrupted" in err and "layers add up" in out
        gone_after(lambda: local_agents(str(tmp_path)), LOCAL_BOUND_S)
        (run_json,) = (tmp_path / "r").glob("*/run.json")
        meta = json.loads(run_json.read_text())
        assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM", meta
        assert lines(rounds()[0])[-1]["reason"] == "interrupted"
    finally:
        kill_all(local_agents(str(tmp_path)))
        if host.poll() is None:
            host.kill()
            host.communicate()


def test_ctrl_c_names_its_signal_in_run_json(tmp_path: Path) -> None:
    host, results = harness_run(tmp_path, "spin")
    try:
        os.killpg(host.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = host.communicate(timeout=60)
        assert host.returncode == 130, err
        (run_json,) = results.glob("*/run.json")
        meta = json.loads(run_json.read_text())
        assert meta["status"] == "interrupted" and meta["signal"] == "SIGINT", meta
        assert local_agents(str(tmp_path)) == []  # the host stopped its agent itself
    finally:
        kill_all(local_agents(str(tmp_path)))
        if host.poll() is None:
            host.kill()
            host.communicate()
