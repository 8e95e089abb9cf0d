from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.boardenv import board_venv

pytest_plugins = ("tests.environment", "tests.sshfixtures")

ROOT = Path(__file__).resolve().parents[1]

# labgrid (the lab extra) replaces pyserial's serial package, so its tests run in a venv of their
# own (tests/lab_venv.sh), which tests/test_lab_install.py drives from the main one; there, that
# driver is the one left out.
LAB = importlib.util.find_spec("labgrid") is not None
collect_ignore_glob = ["test_lab_install.py"] if LAB else ["test_labgrid_*.py"]


@pytest.fixture(scope="session")
def tflite214_python() -> Path:
    """A board python with only numpy<2 and tflite-runtime 2.14.0."""
    return board_venv()
