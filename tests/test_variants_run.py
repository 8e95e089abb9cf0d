"""`harness run --variants` as a user runs it: the shipped digits classifier quantized here, for
real, with harness.models.variants, then run on `local` (LiteRT) and `mcu-sim` (TFLite Micro)
with its real labelled test images, and a model large enough for ai-edge-quantizer to write its
weights outside the flatbuffer.

What is proved: each variant's accuracy on each board is what that board's runtime gives
(computed here independently); a variant whose weights were broken after quantizing is flagged
``accuracy_collapse``, never ranked as a speed-up, and the run exits 1; float16, hybrid and
per-channel weight-only models are unsupported on TFLite Micro with the reason while the rest of
the matrix runs; fidelity comes from the outputs stored from each board (TFLite Micro's and
LiteRT's differ in their last bits, and so do the two fidelities); a model with offset buffers is
repaired for TFLite Micro, said so, and agrees with its base there as on LiteRT, while TFLite
Micro on the file as written reads zeros.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from harness.models.files import sha256
from harness.models.micro import offset_buffers
from harness.models.recipes import recipe_path
from harness.models.variants import quantize
from harness.results import store
from harness.results.fidelity import eval_outputs, fidelity
from harness.results.summary import summarize
from harness.results.variants import VariantSet
from tests.agentrun import DIGITS, ROOT, harness, json_objects
from tests.modelkit import ModelBuilder, fb

DIGITS_TEST = DIGITS.with_name("digits_test.npz")
QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "30", "--blocks", "3"]
KINDS = ("float16", "dynamic_int8", "weight_only_int8", "int8")


def _calibration(directory: Path, x: np.ndarray) -> Path:
    path = directory / "calibration.npz"
    np.savez(path, x=x)
    return path


def broken_copy(variant: Path, name: str) -> Path:
    """A copy of ``variant`` whose last FULLY_CONNECTED layer's weights are all zero, with a
    recipe beside it (as a quantizer that lost a layer would leave it): it loads and runs."""
    model = flatbuffer_utils.read_model(str(variant))
    sg = model.subgraphs[0]
    fc = [op for op in sg.operators
          if model.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.FULLY_CONNECTED][-1]
    weights = model.buffers[sg.tensors[fc.inputs[1]].buffer]
    weights.data = np.zeros_like(weights.data)
    stem = variant.name.removesuffix(".int8.tflite")
    dest = variant.with_name(f"{stem}.{name}.tflite")
    flatbuffer_utils.write_model(model, str(dest))
    recipe = json.loads(recipe_path(variant).read_text())
    recipe["name"] = name
    recipe["variant"].update(file=dest.name, sha256=sha256(dest), size_bytes=dest.stat().st_size)
    recipe_path(dest).write_text(json.dumps(recipe))
    return dest


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float16, dynamic_int8, weight_only_int8, int8 and mixed-top3 of digits_cnn, and int8-broken."""
    out = tmp_path_factory.mktemp("digits-variants")
    calib = _calibration(out, np.load(DIGITS_TEST)["x"][:48])
    for kind in KINDS:
        quantize(DIGITS, kind, out, calibration=calib)
    quantize(DIGITS, "mixed", out, calibration=calib, top=3)
    broken_copy(out / "digits_cnn.int8.tflite", "int8-broken")
    return out


def by_row(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["target"], o["variant"]["name"] if o["variant"] else "base"): o for o in objs}


def codes(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """Real values as int8 codes, rounded half away from zero as TFLite's QUANTIZE rounds."""
    v = x / scale
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, -128, 127).astype(np.int8)


def litert_top1(model: Path, x: np.ndarray) -> np.ndarray:
    """Each sample's argmax with LiteRT, as the agent runs it."""
    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    top = []
    for sample in x:
        it.set_tensor(inp["index"], codes(sample, *inp["quantization"]) if inp["dtype"] == np.int8 else sample)
        it.invoke()
        top.append(int(np.argmax(it.get_tensor(out["index"]))))
    return np.array(top)


def tflm_top1(model: Path, x: np.ndarray) -> np.ndarray:
    """Each sample's argmax with TFLite Micro, as the emulated MCU runs it."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(str(model), arena_size=1 << 20)
    details = it.get_input_details(0)
    q = details["quantization_parameters"]
    top = []
    for sample in x:
        it.set_input(codes(sample, float(q["scales"][0]), int(q["zero_points"][0]))
                     if details["dtype"] == np.int8 else sample, 0)
        it.invoke()
        top.append(int(np.argmax(it.get_output(0))))
    return np.array(top)


@pytest.fixture(scope="module")
def digits_run(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    cwd = tmp_path_factory.mktemp("run")
    p = harness("run", "--targets", str(ROOT / "targets.toml"), "--target", "local", "--target", "mcu-sim",
                "--variants", str(digits_dir), "--eval", str(DIGITS_TEST), *QUICK, "--results", "r", "--json",
                cwd=cwd)
    return p, next((cwd / "r").iterdir())


def test_digits_variants_accuracy_on_both_boards_is_each_runtimes_own(digits_run: tuple[Any, Path],
                                                                      digits_dir: Path) -> None:
    p, _ = digits_run
    rows = by_row(json_objects(p.stdout))
    data = np.load(DIGITS_TEST)
    x, y = data["x"], data["y"]
    recorded = json.loads(DIGITS.with_name("models.json").read_text())["models"]["digits_cnn"]["accuracy"]
    for target in ("local", "mcu-sim"):
        base = rows[target, "base"]
        assert base["variant"] is None and base["flags"] == [] and base["accuracy"]["n"] == len(y)
        assert base["accuracy"]["top1"] == pytest.approx(recorded, abs=0.01)
        for name in ("int8", "mixed-top3"):
            o = rows[target, name]
            assert o["complete"] and o["variant"]["base_sha256"] == base["model_sha256"]
            assert o["variant"]["kind"] == name.split("-")[0] and o["variant"]["recipe"].endswith(".recipe.json")
            # a faithful variant is close to its base, and ranked with a speed-up and its interval
            assert abs(o["accuracy"]["top1"] - base["accuracy"]["top1"]) < 0.03 and o["flags"] == []
            lo, hi = o["speedup"]["ci"]
            assert lo < o["speedup"]["value"] < hi and o["speedup"]["units"] == "block"
            assert o["fidelity"]["reference_sha256"] == base["model_sha256"]
            assert o["fidelity"]["top1_agreement"] > 0.95 and o["fidelity"]["cosine"] > 0.99
    # each board's runtime, run here, gives what that board measured, variant by variant
    for name in ("int8", "mixed-top3"):
        model = digits_dir / f"digits_cnn.{name}.tflite"
        assert rows["local", name]["accuracy"]["top1"] == pytest.approx(np.mean(litert_top1(model, x[:, None]) == y))
        assert rows["mcu-sim", name]["accuracy"]["top1"] == pytest.approx(np.mean(tflm_top1(model, x[:, None]) == y))
    for kind in ("float16", "dynamic_int8", "weight_only_int8"):  # LiteRT runs them all
        o = rows["local", kind]
        model = digits_dir / f"digits_cnn.{kind}.tflite"
        assert o["complete"] and o["flags"] == [] and o["speedup"]["value"] > 0
        assert o["accuracy"]["top1"] == pytest.approx(np.mean(litert_top1(model, x[:, None]) == y))


def test_a_broken_variant_collapses_is_never_ranked_and_the_run_exits_1(digits_run: tuple[Any, Path]) -> None:
    p, run = digits_run
    assert p.returncode == 1, p.stderr
    assert "accuracy collapse against the float32 base on the same board: digits_cnn.int8-broken.tflite on " \
        "local, mcu-sim" in p.stderr and "benchmarks failed" not in p.stderr
    rows = by_row(json_objects(p.stdout))
    for target in ("local", "mcu-sim"):
        o = rows[target, "int8-broken"]
        assert o["complete"] and o["flags"] == ["accuracy_collapse"] and o["speedup"] is None
        assert o["accuracy"]["top1"] < 0.3  # one class for every image: about chance
    # the tables say it where the speed-up would be, with the figures under them; nothing is cut
    table = harness("show", str(run), cwd=run.parent)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    broken = [ln for ln in lines if ln.startswith("digits_cnn  int8-broken")]
    assert len(broken) == 2 and all("collapsed" in ln and "×" not in ln for ln in broken)
    assert sum(ln.startswith("collapsed: ") and "points below, more than 10" in ln for ln in lines) == 2
    tables = lines[:next(i for i, ln in enumerate(lines) if ln.startswith("* emulated"))]
    assert all(len(ln.rstrip()) <= 100 for ln in tables) and sum(ln.startswith("harness run ") for ln in tables) == 2
    # run.json keeps what it was judged with; a threshold as wide as the drop ranks it after all
    meta, benchmarks = store.load_run(run)
    assert meta["collapse_threshold"] == 10.0 and len(meta["variants"]) == 6
    summaries = [summarize(b) for b in benchmarks]
    lenient = replace(VariantSet.from_meta(meta), collapse_points=95.0).judge_all(summaries)
    assert all(j.collapse is None and j.speedup is not None for j in lenient
               if j.variant is not None and j.variant.name == "int8-broken")


def test_tflite_micro_refuses_what_it_cannot_run_and_the_matrix_goes_on(digits_run: tuple[Any, Path]) -> None:
    p, _ = digits_run
    rows = by_row(json_objects(p.stdout))
    reasons = {"float16": "float16 weights", "dynamic_int8": "hybrid (dynamic-range) ops",
               "weight_only_int8": "DEQUANTIZE applies one scale to every channel"}
    for kind, reason in reasons.items():
        o = rows["mcu-sim", kind]
        assert o["flags"] == ["unsupported"] and o["error"]["code"] == "unsupported_model"
        assert reason in o["error"]["message"] and "TFLite Micro" in o["error"]["message"]
        assert o["speedup"] is None and o["accuracy"] is None
        assert f"unsupported: mcu-sim: digits_cnn.{kind}.tflite cannot run on TFLite Micro" in p.stderr
    assert rows["mcu-sim", "int8"]["complete"] and rows["mcu-sim", "mixed-top3"]["complete"]


def test_fidelity_comes_from_the_outputs_each_board_sent(digits_run: tuple[Any, Path]) -> None:
    p, run = digits_run
    rows = by_row(json_objects(p.stdout))
    _, benchmarks = store.load_run(run)
    stored = {(b.target, b.model): b for b in benchmarks}
    for target in ("local", "mcu-sim"):
        base = eval_outputs(stored[target, "digits_cnn.tflite"])
        variant = eval_outputs(stored[target, "digits_cnn.int8.tflite"])
        assert base is not None and variant is not None
        assert rows[target, "int8"]["fidelity"] == fidelity(variant, base, base.model_sha256).to_json()
    # TFLite Micro's and LiteRT's float kernels differ in the last bits: so do the fidelities, which
    # one host-side recomputation would have made equal
    assert rows["local", "int8"]["fidelity"]["cosine"] != rows["mcu-sim", "int8"]["fidelity"]["cosine"]
    shown = harness("show", str(run), "--json", cwd=run.parent)
    assert by_row(json_objects(shown.stdout)) == rows  # recomputed from the stored run, identically


def big_mlp(path: Path) -> Path:
    """64 -> 1024 -> 256 -> 10 fully connected, random weights (1.3 MB in float32): its int8
    weights (322 KiB in buffers over 1 KiB) are more than ai-edge-quantizer keeps inline."""
    b = ModelBuilder()
    x = b.tensor("input", [1, 64])
    prev, width = x, 64
    for i, units in enumerate((1024, 256, 10)):
        y = b.tensor(f"fc{i}", [1, units])
        options = fb.FullyConnectedOptionsT()
        if units != 10:
            options.fusedActivationFunction = fb.ActivationFunctionType.RELU
        w = b.tensor(f"fc{i}/w", [units, width],
                     (b.rng.standard_normal((units, width)) / np.sqrt(width)).astype(np.float32))
        b.op(fb.BuiltinOperator.FULLY_CONNECTED, [prev, w, b.weights(f"fc{i}/b", [units])], [y], options,
             fb.BuiltinOptions.FullyConnectedOptions)
        prev, width = y, units
    s = b.tensor("probs", [1, 10])
    so = fb.SoftmaxOptionsT()
    so.beta = 1.0
    b.op(fb.BuiltinOperator.SOFTMAX, [prev], [s], so, fb.BuiltinOptions.SoftmaxOptions)
    return b.write(path, [x], [s])


def test_offset_buffers_are_repaired_for_tflite_micro(tmp_path: Path) -> None:
    base = big_mlp(tmp_path / "mlp.tflite")
    x = np.random.default_rng(7).standard_normal((40, 64)).astype(np.float32)
    quantize(base, "int8", tmp_path / "v", calibration=_calibration(tmp_path, x[:, None]))
    int8 = tmp_path / "v" / "mlp.int8.tflite"
    assert offset_buffers(int8) > 0  # the quantizer wrote them outside the flatbuffer
    # TFLite Micro on the file as written reads those weights as zeros: one answer for everything
    assert len(set(tflm_top1(int8, x[:10, None]))) == 1
    np.savez(tmp_path / "eval.npz", x=x[:, None])
    targets = tmp_path / "targets.toml"  # a fast emulated line: the float base is 1.3 MB to upload
    targets.write_text('[targets.local]\nkind = "local"\n\n[targets.mcu]\nkind = "serial"\nemulator = true\n'
                       'baud = 20000000\narena = "1MiB"\nmax_model = "2MiB"\n')
    p = harness("run", "--targets", str(targets), "--model", str(base), "--model", str(int8),
                "--eval", str(tmp_path / "eval.npz"), *QUICK, "--results", "r", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = by_row(json_objects(p.stdout))
    assert rows["mcu", "int8"]["flags"] == ["repaired_external_buffers"] and rows["local", "int8"]["flags"] == []
    assert rows["mcu", "base"]["flags"] == []  # written by the builder with its buffers inline
    agree = {t: rows[t, "int8"]["fidelity"]["top1_agreement"] for t in ("local", "mcu")}
    assert agree["mcu"] == pytest.approx(agree["local"], abs=0.1) and agree["mcu"] > 0.6
    assert rows["mcu", "int8"]["fidelity"]["cosine"] > 0.9 and rows["mcu", "int8"]["speedup"] is not None
    table = harness("show", "--results", "r", cwd=tmp_path)
    assert "repaired: mcu · mlp.int8 t1: 5 weight buffers stored outside the flatbuffer" in table.stdout
