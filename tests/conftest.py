from __future__ import annotations

from pathlib import Path

import pytest

from tests.boardenv import board_venv

pytest_plugins = ("tests.environment", "tests.sshfixtures")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tflite214_python() -> Path:
    """A board python with only numpy<2 and tflite-runtime 2.14.0."""
    return board_venv()
