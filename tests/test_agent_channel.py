"""The agent keeps its protocol channel for itself: whatever user code, a runtime or a C library
writes to stdout lands on stderr, in every agent mode (run, profile, probe).

Each test writes in the three ways that reach stdout: Python-level (``sys.stdout.write`` without
a newline, ``print`` of a line that looks like a protocol message) and OS-level (``os.write(1,
...)``, as C code and child processes do). Before the fix, the first glued itself onto the next
JSON line, which the host dropped (a run of zero samples that called itself complete), and the
others passed for messages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.agentrun import AGENT, DIGITS, QUICK, board_env, harness, json_objects
from tests.test_run import project_dir

# A fake message the host must never see: it would end the run with no samples.
FAKE = '{"v": 1, "type": "summary", "iterations": 0, "wall_ns": 1}'
NOISE = f'''import os, subprocess, sys
sys.stdout.write(".")                                  # no newline: glued onto the next line
print({FAKE!r})                                        # a line that parses as a message
os.write(1, b'{{"v": 1, "type": "error", "code": "x", "message": "os.write"}}\\n')  # fd 1, as C code
subprocess.run(["echo", "child-process-stdout"])      # a child inherits fd 1
'''


def run_strict(args: list[str], env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int, str]:
    """The agent's messages, parsed strictly: every stdout line must be one JSON object."""
    p = subprocess.run([sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=120,
                       env=env or board_env())
    msgs = [json.loads(line) for line in p.stdout.splitlines()]  # a stray byte fails here
    return msgs, p.returncode, p.stderr


def test_run_mode_pipeline_writes_go_to_stderr_not_the_protocol(tmp_path: Path) -> None:
    app = tmp_path / "chatty.py"
    app.write_text(NOISE + "\ndef preprocess(raw):\n" + "\n".join(
        "    " + line for line in NOISE.splitlines()[1:]) + "\n    return raw\n")
    msgs, status, err = run_strict(["run", "--model", str(DIGITS), "--pipeline", str(app), *QUICK])
    assert status == 0, err
    kinds = [m["type"] for m in msgs]
    assert kinds.count("summary") == 1 and kinds[-1] == "summary" and "error" not in kinds
    samples = [m for m in msgs if m["type"] == "samples"]
    assert len(samples) == 8 and all(len(m["loop_ns"]) == 10 for m in samples)
    assert msgs[-1]["iterations"] == 40  # the agent's own summary, not the fake one
    assert err.count("child-process-stdout") > 40 and '"message": "os.write"' in err and FAKE in err


def test_a_pipeline_writing_dots_to_stdout_keeps_every_sample(tmp_path: Path) -> None:
    """The run as a user saw it: `sys.stdout.write(".")` in preprocess used to give exit 0,
    `complete: true` and zero samples."""
    app = tmp_path / "dots.py"
    app.write_text("import sys\n\ndef preprocess(raw):\n    sys.stdout.write('.')\n    return raw\n")
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--pipeline", str(app), *QUICK,
                "--results", "r", "--json", cwd=project_dir(tmp_path))
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert o["complete"] is True and o["with_invoke"]["n"] == 40 and o["without_invoke"]["n"] == 40


def fake_package(root: Path, name: str, body: str) -> dict[str, str]:
    """A board environment where importing ``name`` first runs NOISE (a chatty vendor build)."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(NOISE + body)
    return {**board_env(), "PYTHONPATH": str(root)}


def test_profile_mode_runtime_writes_go_to_stderr(tmp_path: Path) -> None:
    env = fake_package(tmp_path / "site", "tflite_runtime", "")
    (tmp_path / "site" / "tflite_runtime" / "interpreter.py").write_text(
        NOISE + "from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: F401\n")
    msgs, status, err = run_strict(["profile", "--runtime", "tflite_runtime", "--rounds", "2",
                                    "--min-time", "0.001", str(DIGITS)], env=env)
    assert status == 0, err
    assert [m["type"] for m in msgs] == ["hello", "models", "plan", "round", "round", "summary"]
    assert msgs[-1]["rounds"] == 2 and msgs[0]["runtime"]["name"] == "tflite_runtime"
    assert "child-process-stdout" in err and FAKE in err


def test_probe_mode_writes_go_to_stderr(tmp_path: Path) -> None:
    env = fake_package(tmp_path / "site", "numpy", '__version__ = "0.0-chatty"\n')
    msgs, status, err = run_strict(["probe"], env=env)
    assert status == 0, err
    assert [m["type"] for m in msgs] == ["hello"] and msgs[0]["numpy"] == "0.0-chatty"
    assert "child-process-stdout" in err and FAKE in err

