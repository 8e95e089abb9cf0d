"""The board agent, run for real: protocol, measurement structure, and its errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.agentrun import AGENT, DIGITS, KWS, QUICK, board_env, run_agent


def test_protocol_sequence_and_raw_samples() -> None:
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), *QUICK)
    assert status == 0
    kinds = [m["type"] for m in msgs]
    assert kinds[:5] == ["hello", "model", "plan", "first_invoke", "warmup"]
    assert kinds[-1] == "summary"
    assert all(m["v"] == 1 for m in msgs)
    hello = msgs[0]
    assert hello["runtime"]["name"] == "ai_edge_litert" and hello["runtime"]["version"]
    assert hello["board"]["cores"] >= 1 and hello["clock"]["resolution_ns"] >= 1
    samples = [m for m in msgs if m["type"] == "samples"]
    # 4 blocks x 2 modes, 10 iterations each, alternating ABBA
    assert [(m["block"], m["mode"]) for m in samples] == [
        (0, "with"), (0, "without"), (1, "without"), (1, "with"),
        (2, "with"), (2, "without"), (3, "without"), (3, "with")]
    for m in samples:
        assert len(m["loop_ns"]) == 10 and all(isinstance(x, int) and x > 0 for x in m["loop_ns"])
        assert ("invoke" in m["stages"]) == (m["mode"] == "with")
        for values in m["stages"].values():
            assert len(values) == 10
        # stages are disjoint parts of the iteration: they never exceed the whole loop
        for k in range(10):
            assert sum(v[k] for v in m["stages"].values()) <= m["loop_ns"][k]
    assert len(msgs[4]["loop_ns"]) >= 2  # warm-up kept, apart from the samples


def test_inputs_file_and_threads_and_no_xnnpack(tmp_path: Path) -> None:
    x = np.load(KWS.with_name("ds_cnn_kws_test.npz"))["x"][:5]
    np.save(tmp_path / "five.npy", x)
    msgs, status, _ = run_agent("run", "--model", str(KWS), "--inputs", str(tmp_path / "five.npy"),
                                "--threads", "2", "--xnnpack", "off", *QUICK)
    assert status == 0, msgs[-1]
    model = next(m for m in msgs if m["type"] == "model")
    assert model["threads"] == 2 and model["xnnpack"] is False
    assert next(m for m in msgs if m["type"] == "plan")["inputs"] == "five.npy"


@pytest.mark.parametrize("array, expected", [
    (np.zeros((3, 5), np.float32), "has shape (3, 5) but input"),
    (np.zeros((1, 8, 8, 1), np.float64), "has dtype float64 but input"),
])
def test_inputs_of_wrong_shape_or_dtype(tmp_path: Path, array: np.ndarray, expected: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), "--inputs", str(tmp_path / "bad.npy"), *QUICK)
    assert status == 1
    err = msgs[-1]
    assert err["type"] == "error" and err["code"] == "bad_inputs" and err["file"] == "bad.npy"
    assert expected in err["message"]


def test_pipeline_that_raises_names_file_line_and_function(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("def preprocess(raw):\n    return raw\n\ndef postprocess(outputs):\n"
                   "    raise ValueError('label file missing')\n")
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), "--pipeline", str(app), *QUICK)
    assert status == 1
    err = msgs[-1]
    assert err["code"] == "pipeline" and err["file"] == "app.py"
    assert "line 5 in postprocess" in err["message"] and "label file missing" in err["message"]


def test_not_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tflite"
    bad.write_text("this is not a model\n" * 10)
    msgs, status, _ = run_agent("run", "--model", str(bad), *QUICK)
    assert status == 1 and msgs[-1]["code"] == "bad_model" and "notes.tflite" in msgs[-1]["message"]


def test_unknown_runtime_is_reported_not_crashed() -> None:
    msgs, status, _ = run_agent("run", "--model", str(DIGITS), "--runtime", "tensorflow", *QUICK)
    assert status == 1 and msgs[-1]["code"] == "runtime_missing"
    assert "tensorflow" in msgs[-1]["message"] and "pip install" in msgs[-1]["message"]


def test_lifeline_stops_the_agent_when_the_host_goes_away() -> None:
    # Started in this test's own process group, as by hand: the watchdog stops the agent alone,
    # never the group of whoever started it (pytest, here).
    p = subprocess.Popen([sys.executable, str(AGENT), "run", "--model", str(DIGITS), "--duration", "60",
                          "--lifeline"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    assert b'"hello"' in p.stdout.readline()
    p.stdin.close()  # what a dropped connection looks like to the agent
    assert p.wait(timeout=10) == -signal.SIGTERM  # by its watchdog process


def test_heartbeat_timeout_stops_the_agent_when_the_link_goes_quiet() -> None:
    p = subprocess.Popen([sys.executable, str(AGENT), "run", "--model", str(DIGITS), "--duration", "60",
                          "--lifeline", "--heartbeat-timeout", "1.5"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)  # as the host starts it: the watchdog stops the group
    assert p.stdout is not None and p.stdin is not None
    assert b'"hello"' in p.stdout.readline()
    for _ in range(3):  # heartbeats keep it alive past its timeout...
        p.stdin.write(b"\n")
        p.stdin.flush()
        time.sleep(1.0)
    assert p.poll() is None
    t0 = time.monotonic()  # ...and their absence ends it, with stdin still open
    assert p.wait(timeout=15) == -signal.SIGTERM
    assert time.monotonic() - t0 < 10
    assert p.stderr is not None and b"no heartbeat" in p.stderr.read()
    p.stdin.close()


def test_probe_lists_runtimes() -> None:
    msgs, status, _ = run_agent("probe")
    assert status == 0 and msgs[0]["type"] == "hello"
    assert msgs[0]["runtimes"]["ai_edge_litert"] and msgs[0]["numpy"]


def test_agent_on_a_tflite_runtime_214_board(tflite214_python: Path) -> None:
    """A Raspberry-Pi-OS-like python: only numpy<2 and tflite-runtime 2.14, no harness, no LiteRT."""
    check = subprocess.run([str(tflite214_python), "-c", "import harness"], capture_output=True, cwd="/",
                           env=board_env())
    assert check.returncode != 0  # the agent cannot lean on harness there
    msgs, status, err = run_agent("run", "--model", str(DIGITS), *QUICK, python=str(tflite214_python))
    assert status == 0, err
    hello = msgs[0]
    assert hello["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}
    assert hello["runtimes"]["ai_edge_litert"] is None
    assert msgs[-1]["type"] == "summary"


def test_a_runtime_that_crashes_or_hangs_ends_in_one_clear_error(tmp_path: Path, tflite214_python: Path) -> None:
    """tflite-runtime 2.14 reads past the end of a truncated model: it dies with SIGSEGV/SIGBUS or
    spins, depending on what lies beyond the buffer. (The host refuses such files before pushing;
    this drives the agent past that check.) Either way: one error naming the target and the file,
    within the target's timeout, and no agent left running."""
    import threading

    import psutil

    from harness.config import LocalOptions, Target
    from harness.errors import AgentError, TransportError
    from harness.lab.drivers import open_driver
    from harness.plan import Job, Plan
    from tests import badmodels

    cut = tmp_path / "cut.tflite"
    badmodels.truncated(KWS, cut)
    driver = open_driver(Target(name="pi", kind="local",
                                options=LocalOptions(python=str(tflite214_python), timeout_s=10)))
    job = Job(target="pi", model=cut, model_sha256="0" * 64, threads=1,
              plan=Plan(warmup=2, warmup_time_s=0, iterations=40, blocks=4))
    seen: list[dict] = []
    with pytest.raises((AgentError, TransportError)) as err:
        driver.benchmark(job, seen.append, threading.Event())
    assert err.value.target == "pi" and "cut.tflite" in err.value.message and err.value.hint
    if isinstance(err.value, AgentError):
        assert err.value.code == "crashed" and "died with SIG" in err.value.message
    else:
        assert "no message from the agent for 10 s" in err.value.message
    assert [m["type"] for m in seen if m["type"] != "push"] == ["hello"]  # what came before is kept
    left = [p for p in psutil.process_iter(["cmdline"]) if str(cut) in " ".join(p.info["cmdline"] or [])]
    assert left == []
