"""Board-side Python environments for the tests, built once per machine.

A "Raspberry Pi OS" board: a venv made with the system Python that holds only ``numpy<2`` and
``tflite-runtime==2.14.0`` -- no ai-edge-litert, no harness. It lives under /var/tmp so that a
plain SSH test user can run it too (root's pyenv Python sits in /root, mode 0700).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

VENV_ROOT = Path(os.environ.get("HARNESS_TEST_VENVS", "/var/tmp/harness-test-venvs"))
TFLITE214 = ("numpy<2", "tflite-runtime==2.14.0")


def _base_python() -> str:
    # The system Python is readable by every user; fall back to ours off Debian.
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def board_venv(name: str = "tflite214", packages: tuple[str, ...] = TFLITE214) -> Path:
    """Path of the venv's python, creating the venv on first use (about 5 s)."""
    venv = VENV_ROOT / name
    python = venv / "bin" / "python"
    stamp = venv / ".harness-ready"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(VENV_ROOT, 0o755)
    with open(VENV_ROOT / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist or two sessions may race here
        if stamp.exists() and stamp.read_text() == "\n".join(packages):
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *packages], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
        stamp.write_text("\n".join(packages))
    return python
