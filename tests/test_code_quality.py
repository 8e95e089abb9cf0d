"""The house rules that tools can check (pyproject.toml): ruff's rule list (C901 included), mypy on
harness/ and device_agents/, and the oldest Python each side must run on: 3.10 for the host,
3.8 for the code that runs on boards."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sysconfig.get_path("scripts"))


def test_ruff() -> None:
    p = subprocess.run([str(SCRIPTS / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy() -> None:
    p = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def _vermin(target: str, files: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / "vermin"), f"-t={target}", "--violations", "--no-tips",
                           "--eval-annotations", *files], capture_output=True, text=True)


def test_host_code_runs_on_python_310() -> None:
    """The host, its tests and its benchmarks (the suite runs on the host's Python, too)."""
    files = sorted(str(p) for d in ("harness", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))
    p = _vermin("3.10-", files)
    assert p.returncode == 0, p.stdout + p.stderr


def test_device_agents_run_on_python_38() -> None:
    p = _vermin("3.8-", sorted(str(p) for p in (ROOT / "device_agents").rglob("*.py")))
    assert p.returncode == 0, p.stdout + p.stderr



def test_the_board_probe_runs_on_python_35() -> None:
    """`harness doctor` sends board_probe.py to boards whose python may be too old for the agent:
    it must still run there, to report *that* it is old instead of dying with a SyntaxError."""
    probe = ROOT / "device_agents" / "linux" / "board_probe.py"
    p = subprocess.run([str(SCRIPTS / "vermin"), "-t=3.5-", "--violations", "--no-tips", "--eval-annotations",
                        str(probe)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
