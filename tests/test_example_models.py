"""The shipped example models are what models.json says they are, on the real LiteRT runtime.

Every model is loaded with ai_edge_litert's Interpreter; shapes, dtypes, signatures, sizes and
hashes are checked against the manifest, and accuracy is recomputed on the shipped test files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import harness

MODELS_DIR = Path(harness.__file__).resolve().parent / "example_models"
MANIFEST = json.loads((MODELS_DIR / "models.json").read_text())
NAMES = sorted(MANIFEST["models"])
SHIPPED_LIMIT_BYTES = 3 * 1024 * 1024  # the repo carries these files; keep them small


def _interpreter(entry: dict[str, Any]) -> Interpreter:
    interp = Interpreter(model_path=str(MODELS_DIR / entry["file"]))
    interp.allocate_tensors()
    return interp


def _accuracy(interp: Interpreter, x: np.ndarray, y: np.ndarray) -> float:
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    correct = 0
    for sample, label in zip(x, y, strict=True):
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == label)
    return correct / len(y)


def test_manifest_lists_exactly_the_shipped_models() -> None:
    assert MANIFEST["manifest_version"] == 1
    assert set(NAMES) == {"digits_cnn", "ds_cnn_kws", "mobilenet_v1_025_96"}
    shipped = {p.name for p in MODELS_DIR.glob("*.tflite")}
    assert shipped == {MANIFEST["models"][n]["file"] for n in NAMES}


def test_shipped_files_are_small() -> None:
    total = sum(p.stat().st_size for p in MODELS_DIR.iterdir() if p.suffix in {".tflite", ".npz", ".json"})
    assert total < SHIPPED_LIMIT_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_file_hash_and_size_match_manifest(name: str) -> None:
    entry = MANIFEST["models"][name]
    data = (MODELS_DIR / entry["file"]).read_bytes()
    assert len(data) == entry["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    test_data = (MODELS_DIR / entry["test_file"]).read_bytes()
    assert hashlib.sha256(test_data).hexdigest() == entry["test_file_sha256"]


@pytest.mark.parametrize("name", NAMES)
def test_io_matches_manifest(name: str) -> None:
    entry = MANIFEST["models"][name]
    interp = _interpreter(entry)
    (inp,) = interp.get_input_details()
    (out,) = interp.get_output_details()
    assert inp["name"] == entry["input"]["name"]
    assert inp["shape"].tolist() == entry["input"]["shape"]
    assert inp["shape"][0] == 1  # batch 1, fixed shape: what a board runs
    assert np.dtype(inp["dtype"]).name == entry["input"]["dtype"] == "float32"
    assert out["name"] == entry["output"]["name"]
    assert out["shape"].tolist() == entry["output"]["shape"] == [1, len(entry["labels"])]
    assert np.dtype(out["dtype"]).name == entry["output"]["dtype"] == "float32"
    sig = entry["signature"]
    assert interp.get_signature_list()[sig["key"]] == {"inputs": sig["inputs"], "outputs": sig["outputs"]}
    plain = Interpreter(model_path=str(MODELS_DIR / entry["file"]),
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    assert sorted({op["op_name"] for op in plain._get_ops_details()}) == entry["ops"]


@pytest.mark.parametrize("name", NAMES)
def test_test_file_fits_the_model(name: str) -> None:
    entry = MANIFEST["models"][name]
    with np.load(MODELS_DIR / entry["test_file"]) as npz:
        x, y = npz["x"], npz["y"]
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (entry["test_samples"], *entry["input"]["shape"][1:])
    assert y.shape == (entry["test_samples"],)
    assert set(np.unique(y)) <= set(range(len(entry["labels"])))
    low, high = entry["input"]["range"]
    assert low <= float(x.min()) and float(x.max()) <= high


@pytest.mark.parametrize("name", NAMES)
def test_accuracy_on_test_file_matches_manifest(name: str) -> None:
    entry = MANIFEST["models"][name]
    with np.load(MODELS_DIR / entry["test_file"]) as npz:
        x, y = npz["x"], npz["y"]
    accuracy = _accuracy(_interpreter(entry), x, y)
    # Another CPU may take another XNNPACK kernel path and flip one borderline sample.
    assert abs(accuracy - entry["accuracy"]) <= 1.5 / len(y)
    assert accuracy > 1.5 / len(entry["labels"])  # clearly better than chance: the weights mean something


def test_digits_cnn_is_accurate_on_real_data() -> None:
    entry = MANIFEST["models"]["digits_cnn"]
    with np.load(MODELS_DIR / "digits_test.npz") as npz:
        x, y = npz["x"], npz["y"]
    assert len(y) >= 300  # a quarter of the 1,797 scikit-learn digits
    assert _accuracy(_interpreter(entry), x, y) >= 0.9


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_probabilities(name: str) -> None:
    entry = MANIFEST["models"][name]
    interp = _interpreter(entry)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    with np.load(MODELS_DIR / entry["test_file"]) as npz:
        interp.set_tensor(inp["index"], npz["x"][:1])
    interp.invoke()
    probs = interp.get_tensor(out["index"])[0]
    assert np.all(probs >= 0) and abs(float(probs.sum()) - 1.0) < 1e-4


def test_provenance_is_honest() -> None:
    models = MANIFEST["models"]
    assert "scikit-learn digits" in models["digits_cnn"]["trained_on"]
    for name in ("ds_cnn_kws", "mobilenet_v1_025_96"):
        assert models[name]["trained_on"].startswith("synthetic")


# TFLite Micro can abort() the whole process on a model it dislikes, so it runs in a child.
_TFLM_ACCURACY = r"""
import json, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
models_dir, manifest = sys.argv[1], json.loads(sys.argv[2])
result = {}
for name, entry in manifest.items():
    interp = runtime.Interpreter.from_file(models_dir + "/" + entry["file"], arena_size=2_000_000)
    with np.load(models_dir + "/" + entry["test_file"]) as npz:
        x, y = npz["x"], npz["y"]
    correct = 0
    for sample, label in zip(x, y):
        interp.set_input(sample[None], 0)
        interp.invoke()
        correct += int(np.argmax(interp.get_output(0)[0]) == label)
    result[name] = correct / len(y)
print(json.dumps(result))
"""


def test_models_run_on_tflite_micro_with_the_same_accuracy() -> None:
    """The microcontroller runtime (reference kernels) gets what LiteRT got: same ops, same answers."""
    proc = subprocess.run([sys.executable, "-c", _TFLM_ACCURACY, str(MODELS_DIR), json.dumps(MANIFEST["models"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    accuracy = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, entry in MANIFEST["models"].items():
        assert abs(accuracy[name] - entry["accuracy"]) <= 1.5 / entry["test_samples"], name
