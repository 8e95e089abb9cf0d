"""Each helper in tests/badmodels.py makes the broken file it claims, and real runtimes refuse it;
the good models of tests/serialkit.py load in TFLite Micro.

Models are loaded in a child process: a runtime that crashes on a bad flatbuffer (tflite-runtime
2.14 segfaults on truncated files) must fail one test, not kill the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.tools import flatbuffer_utils

import harness
from tests import badmodels
from tests.serialkit import fc_model, sub_model

SRC = Path(harness.__file__).resolve().parent / "example_models" / "digits_cnn.tflite"

# Runs under the test's Python (ai-edge-litert) or a board venv (tflite-runtime, Python >= 3.8).
_LOAD = r"""
import json, sys
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    from tflite_runtime.interpreter import Interpreter
stage = "create"
try:
    interp = Interpreter(model_path=sys.argv[1])
    stage = "allocate"
    interp.allocate_tensors()
    stage = "loaded"
    print(json.dumps({"stage": stage}))
except Exception as exc:
    print(json.dumps({"stage": stage, "type": type(exc).__name__, "message": str(exc)}))
"""


def _load_in_child(model: Path, python: str = sys.executable) -> tuple[int, dict[str, str]]:
    """(return code, outcome) of loading ``model`` in a fresh interpreter process."""
    proc = subprocess.run([python, "-c", _LOAD, str(model)], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else {}


def test_not_a_model_is_refused_cleanly(tmp_path: Path) -> None:
    path = badmodels.not_a_model(tmp_path / "notes.tflite")
    assert path.suffix == ".tflite" and path.read_text().startswith("this is a text file")
    code, outcome = _load_in_child(path)
    assert code == 0, "LiteRT crashed instead of raising"
    assert outcome["stage"] == "create" and outcome["type"] == "ValueError"
    assert "not a valid Flatbuffer" in outcome["message"]


def test_truncated_is_a_prefix_and_litert_raises_cleanly(tmp_path: Path) -> None:
    path = badmodels.truncated(SRC, tmp_path / "cut.tflite")
    data, full = path.read_bytes(), SRC.read_bytes()
    assert len(data) == int(len(full) * badmodels.TRUNCATED_FRACTION)
    assert full.startswith(data)
    code, outcome = _load_in_child(path)
    # LiteRT 2.3 verifies the flatbuffer before use: a clean ValueError, no crash.
    assert code == 0, "LiteRT crashed instead of raising"
    assert outcome["stage"] == "create" and outcome["type"] == "ValueError"
    assert "not a valid Flatbuffer" in outcome["message"]


def test_unknown_custom_op_is_in_the_model_and_refused(tmp_path: Path) -> None:
    path = badmodels.with_unknown_custom_op(SRC, tmp_path / "custom.tflite")
    model = flatbuffer_utils.read_model(str(path))
    op = model.subgraphs[0].operators[0]
    code = model.operatorCodes[op.opcodeIndex]
    assert code.customCode in (badmodels.UNKNOWN_CUSTOM_OP, badmodels.UNKNOWN_CUSTOM_OP.encode())
    # Only that one op changed: the rest of the graph is intact.
    original = flatbuffer_utils.read_model(str(SRC))
    assert len(model.subgraphs[0].operators) == len(original.subgraphs[0].operators)

    rc, outcome = _load_in_child(path)
    assert rc == 0, "LiteRT crashed instead of raising"
    assert outcome["stage"] in {"create", "allocate"} and outcome["type"] == "RuntimeError"
    assert "unresolved custom op" in outcome["message"]
    assert badmodels.UNKNOWN_CUSTOM_OP in outcome["message"]


def test_the_source_model_itself_loads(tmp_path: Path) -> None:
    code, outcome = _load_in_child(SRC)
    assert (code, outcome) == (0, {"stage": "loaded"})


@pytest.mark.parametrize("fraction", [0.05, 0.6, 0.99])
def test_truncated_never_loads_on_tflite_runtime_214(tmp_path: Path, tflite214_python: Path,
                                                       fraction: float) -> None:
    """tflite-runtime 2.14 has no verifier: most cuts SEGFAULT the process, some raise.

    Seen on this machine: 5 % and 60 % -> SIGSEGV; 90 % and 99 % -> ValueError. A board agent on
    such a runtime cannot catch this, so the host must check size and sha256 after upload.
    """
    path = badmodels.truncated(SRC, tmp_path / "cut.tflite", fraction)
    code, outcome = _load_in_child(path, str(tflite214_python))
    killed_by_signal = code < 0  # e.g. -11, SIGSEGV
    assert killed_by_signal or outcome.get("stage") in {"create", "allocate"}, (code, outcome)


def test_unknown_custom_op_is_refused_by_tflite_runtime_214(tmp_path: Path, tflite214_python: Path) -> None:
    path = badmodels.with_unknown_custom_op(SRC, tmp_path / "custom.tflite")
    code, outcome = _load_in_child(path, str(tflite214_python))
    assert code == 0
    assert outcome["type"] == "RuntimeError" and "unresolved custom op" in outcome["message"]


def test_serialkit_fc_models_load_in_tflite_micro() -> None:
    from tflite_micro.python.tflite_micro import runtime

    for data in (fc_model(), fc_model(int8=True)):
        it = runtime.Interpreter.from_bytes(data, arena_size=20000)
        it.set_input(np.zeros(it.get_input_details(0)["shape"], dtype=it.get_input_details(0)["dtype"]), 0)
        it.invoke()
        assert it.get_output(0).shape == (1, 4)
    assert len(fc_model(pad_bytes=5000)) > 5000
    it = runtime.Interpreter.from_bytes(sub_model(), arena_size=20000)
    it.set_input(np.full((1, 4), 5.0, np.float32), 0)
    it.set_input(np.full((1, 4), 2.0, np.float32), 1)
    it.invoke()
    np.testing.assert_array_equal(it.get_output(0), np.full((1, 4), 3.0, np.float32))
