"""Helpers for killing the host mid-run: pipelines that get stuck, and watching a board empty.

A *stuck* pipeline runs normally for its first ``after`` preprocess calls (so samples reach the
store), then touches a marker file and never returns: it spins in Python (``SPIN``), or it holds
the GIL in one C call (``HOLD_GIL``), which no other thread of the agent can interrupt. Tests
then kill the host and time how long the board still runs anything of the agent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import psutil

SPIN = "while True:\n            pass"
# sum() over a range is one C call: the eval loop never runs, so it never hands the GIL over.
HOLD_GIL = "sum(range(10 ** 12))"
STUCK = {"spin": SPIN, "gil": HOLD_GIL}


def stuck_pipeline(path: Path, marker: Path, how: str, after: int = 0) -> Path:
    """Write a pipeline file at ``path`` that gets stuck (``how``: spin | gil) after ``after``
    preprocess calls, touching ``marker`` first; returns ``path``."""
    path.write_text(f"""calls = 0


def hold_gil(n):
    return sum(range(n))


def preprocess(raw):
    global calls
    calls += 1
    if calls > {after}:
        with open({str(marker)!r}, "w"):
            pass
        {STUCK[how]}
    return raw
""")
    return path


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


def gone_after(alive: Callable[[], list[int]], bound: float) -> float:
    """Seconds until ``alive()`` (pids) is empty; raises AssertionError naming them past ``bound``."""
    t0 = time.monotonic()
    while True:
        left = alive()
        elapsed = time.monotonic() - t0
        if not left:
            return elapsed
        if elapsed > bound:
            raise AssertionError(f"agent processes {left} still running {elapsed:.1f} s after the host died")
        time.sleep(0.05)


def local_agents(needle: str) -> list[int]:
    """Pids of live (not zombie) processes of the agent whose command line mentions ``needle``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(c.endswith("tflite_agent.py") for c in cmd) and any(needle in c for c in cmd):
            found.append(p.pid)
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL what a failed test left behind (by pid), so it does not spin on."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
