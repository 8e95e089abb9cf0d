"""The evaluation pass on real boards: `local` (the Linux agent, LiteRT) and `mcu-sim` (the emulated
MCU, TFLite Micro), with the shipped digits classifier, its real test images and labels, and an
int8 copy of it made here with ai-edge-quantizer.

What is proved: accuracy on each board is what the board's own runtime gives on the same samples
(run here, independently); the stored outputs are the board's, bit for bit, and not a host
recomputation (TFLite Micro and LiteRT differ in the last bits of every digits output, and the
stored outputs of each board match its own runtime only); a board whose runtime is tampered with
changes the fidelity, which a host recomputation never would; the int8 copy, given the same
real-valued samples quantized with its own input scale, agrees closely with the float model.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from harness.config import LocalOptions, Target
from harness.lab.drivers.linux import LinuxAgentDriver
from harness.lab.transports import open_transport
from harness.models.files import sha256
from harness.plan import EvalPlan, Job, Plan
from harness.results import store
from harness.results.benchmark import Benchmark, from_lines
from harness.results.fidelity import EvalOutputs, eval_outputs, fidelity
from harness.scenarios.benchmark import prepare_eval, run_eval
from tests.agentrun import DIGITS, ROOT, harness, json_objects

DIGITS_TEST = DIGITS.with_name("digits_test.npz")
QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "20", "--blocks", "2"]
RECORDED = json.loads(DIGITS.with_name("models.json").read_text())["models"]["digits_cnn"]["accuracy"]


@pytest.fixture(scope="module")
def int8_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_cnn in full static int8 (int8 inputs and outputs), calibrated on 20 of the samples."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(DIGITS))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    x = np.load(DIGITS_TEST)["x"]
    calibration = q.calibrate({"serving_default": [{"image": x[i:i + 1]} for i in range(430, 450)]})
    path = tmp_path_factory.mktemp("int8") / "digits_int8.tflite"
    q.quantize(calibration).export_model(str(path))
    return path


def quantized(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The test's own input quantization (x >= 0 here, so floor(v + 0.5) rounds half away from 0)."""
    return np.clip(np.floor(x / scale + 0.5) + zero_point, -128, 127).astype(np.int8)


def litert_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    """Output 0 of every sample with LiteRT as the agent runs it (default op resolver: XNNPACK)."""
    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    if inp["dtype"] == np.int8:
        x = quantized(x, *inp["quantization"])
    rows = []
    for sample in x:
        it.set_tensor(inp["index"], sample[None])
        it.invoke()
        rows.append(it.get_tensor(out["index"]).reshape(-1))
    return np.stack(rows)


def tflm_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    """Output 0 of every sample with TFLite Micro, as the emulated MCU runs it."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(str(model), arena_size=2 * 1024 * 1024)
    details = it.get_input_details(0)
    if details["dtype"] == np.int8:
        q = details["quantization_parameters"]
        x = quantized(x, float(q["scales"][0]), int(q["zero_points"][0]))
    rows = []
    for sample in x:
        it.set_input(sample[None], 0)
        it.invoke()
        rows.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(rows)


class Run:
    """One `harness run --eval` of the float and the int8 digits on local and mcu-sim."""

    def __init__(self, objects: list[dict[str, Any]], results: Path, cwd: Path) -> None:
        self.objects = objects
        self.results = results
        self.cwd = cwd
        (self.path,) = [p for p in results.iterdir() if p.is_dir()]
        _, self.benchmarks = store.load_run(self.path)

    def bench(self, target: str, model: str) -> Benchmark:
        return next(b for b in self.benchmarks if b.target == target and b.model == model)

    def outputs(self, target: str, model: str) -> EvalOutputs:
        got = eval_outputs(self.bench(target, model))
        assert got is not None
        return got


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, int8_digits: Path) -> Run:
    cwd = tmp_path_factory.mktemp("evalrun")
    p = harness("run", "--targets", str(ROOT / "targets.toml"), "--target", "local", "--target", "mcu-sim",
                "--model", str(DIGITS), "--model", str(int8_digits), "--eval", str(DIGITS_TEST), *QUICK,
                "--results", str(cwd / "results"), "--json", cwd=cwd)
    assert p.returncode == 0, p.stderr
    return Run(json_objects(p.stdout), cwd / "results", cwd)


def test_accuracy_on_each_board_is_its_runtimes_own(run: Run, int8_digits: Path) -> None:
    data = np.load(DIGITS_TEST)
    x, y = data["x"], data["y"]
    by_cell = {(o["target"], o["model"]): o for o in run.objects}
    assert len(by_cell) == 4
    expected = {}
    for model in (DIGITS, int8_digits):
        expected["local", model.name] = np.mean(np.argmax(litert_outputs(model, x), axis=1) == y)
        expected["mcu-sim", model.name] = np.mean(np.argmax(tflm_outputs(model, x), axis=1) == y)
    for cell, o in by_cell.items():
        assert o["complete"] is True and o["error"] is None, o["error"]
        assert o["eval"] == {"source": "digits_test.npz", "samples": 450}
        assert o["accuracy"] == {"n": 450, "top1": expected[cell]}, cell
    assert by_cell["local", "digits_cnn.tflite"]["accuracy"]["top1"] == pytest.approx(RECORDED, abs=1e-6)
    assert by_cell["mcu-sim", "digits_cnn.tflite"]["accuracy"]["top1"] == pytest.approx(RECORDED, abs=0.01)
    assert by_cell["mcu-sim", int8_digits.name]["accuracy"]["top1"] > RECORDED - 0.03


def test_stored_outputs_came_from_the_boards_runtime_bit_for_bit(run: Run, int8_digits: Path) -> None:
    x = np.load(DIGITS_TEST)["x"]
    lite, micro = litert_outputs(DIGITS, x), tflm_outputs(DIGITS, x)
    assert np.all(np.any(lite != micro, axis=1))  # the two runtimes differ in every sample
    on_local = run.outputs("local", DIGITS.name).outputs[0].values
    on_mcu = run.outputs("mcu-sim", DIGITS.name).outputs[0].values
    assert on_local.dtype == on_mcu.dtype == np.float32
    assert np.array_equal(on_local, lite) and np.array_equal(on_mcu, micro)
    # the int8 copy: codes as the runtime returned them, not dequantized, on both boards
    for target, reference in (("local", litert_outputs), ("mcu-sim", tflm_outputs)):
        got = run.outputs(target, int8_digits.name).outputs[0]
        assert got.values.dtype == np.int8 and got.scale > 0
        assert np.array_equal(got.values, reference(int8_digits, x))


def test_int8_copy_agrees_with_the_float_model_on_the_same_samples(run: Run, int8_digits: Path) -> None:
    for target in ("local", "mcu-sim"):
        base, variant = run.outputs(target, DIGITS.name), run.outputs(target, int8_digits.name)
        assert variant.set_sha256 == base.set_sha256  # one real-valued set, quantized for the variant
        f = fidelity(variant, base, base.model_sha256)
        assert f.reference_sha256 == sha256(DIGITS)
        assert f.cosine > 0.97 and f.top1_agreement > 0.97, (target, f)
        assert f.max_abs_error is not None and 0 < f.max_abs_error < 1
    # what each board was fed is kept with the run: real values for the float model, int8 codes
    # (the same samples through the variant's own input scale) for the copy
    fed = {p.name.split("-")[0]: np.load(p) for p in (run.path / "eval").glob("*.npz")}
    base_x = fed["digits_cnn"]["serving_default_image:0"]
    (variant_x,) = [fed["digits_int8"][k] for k in fed["digits_int8"]]
    scale, zp = Interpreter(model_path=str(int8_digits)).get_input_details()[0]["quantization"]
    assert base_x.dtype == np.float32 and np.array_equal(base_x[:, 0], np.load(DIGITS_TEST)["x"])
    assert variant_x.dtype == np.int8 and np.array_equal(variant_x, quantized(base_x, scale, zp))


def test_the_pass_comes_after_every_timed_block_and_show_recomputes_it(run: Run) -> None:
    for file in (run.path / "benchmarks").glob("*.jsonl"):
        kinds = [json.loads(line)["type"] for line in file.read_text().splitlines()]
        start = kinds.index("eval_set")
        assert "samples" not in kinds[start:] and kinds.count("samples") == 4  # 2 blocks x 2 modes
        assert set(kinds[start + 1:]) <= {"push", "hello", "model", "eval", "eval_summary", "end"}
        assert kinds[-2:] == ["eval_summary", "end"]
    mcu = run.bench("mcu-sim", DIGITS.name)
    assert mcu.eval_pass is not None and mcu.eval_pass.hello["mode"] == "eval"
    assert "push" not in [m["type"] for m in _pass_lines(run, mcu)]  # the loaded model was reused
    shown = harness("show", run.path.name, "--results", str(run.results), "--json", cwd=run.cwd)
    assert shown.returncode == 0, shown.stderr
    def cell(o: dict[str, Any]) -> tuple[str, str]:
        return o["target"], o["model"]

    # recomputed from the stored outputs identically (in store order: the boards ran side by side)
    assert sorted(json_objects(shown.stdout), key=cell) == sorted(run.objects, key=cell)


def _pass_lines(run: Run, b: Benchmark) -> list[dict[str, Any]]:
    file = next(f for f in (run.path / "benchmarks").glob(f"*-{b.target}-*{Path(b.model).stem}*.jsonl"))
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    start = next(i for i, m in enumerate(lines) if m["type"] == "eval_set")
    return lines[start:]


# ------------------------------------------------------------------ a board that computes garbage

TAMPER = """
    # A board whose runtime silently computes garbage: its outputs come back in reverse class order.
    import ai_edge_litert.interpreter as _it
    _get = _it.Interpreter.get_tensor
    def get_tensor(self, index, *args):
        value = _get(self, index, *args)
        if index in [d["index"] for d in self.get_output_details()]:
            value = value[..., ::-1].copy()
        return value
    _it.Interpreter.get_tensor = get_tensor
"""


@pytest.fixture()
def tampered_python(tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(TAMPER))
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    yield str(wrapper)


def _evaluate_on(python: str, job: Job) -> Benchmark:
    """The evaluation pass alone, through the runner's own path (run_eval) on a local board."""
    target = Target(name="local", kind="local", options=LocalOptions(python=python, timeout_s=60))
    driver = LinuxAgentDriver(target, open_transport(target), python)
    lines: list[dict[str, Any]] = []
    try:
        run_eval(driver, job, lines.append, threading.Event())
    finally:
        driver.close()
    header = {"target": "local", "model": job.model.name, "model_sha256": job.model_sha256, "threads": 1,
              "plan": job.plan.as_dict()}
    return from_lines(header, lines)


def test_a_tampered_board_changes_the_fidelity(tmp_path: Path, tampered_python: str) -> None:
    plan = Plan(seed=5, eval=EvalPlan("file", DIGITS_TEST, samples=60))
    (job,), refused = prepare_eval([Job("local", DIGITS, sha256(DIGITS), 1, plan)], tmp_path / "eval")
    assert not refused and job.eval is not None and job.eval.samples == 60
    honest = eval_outputs(_evaluate_on(sys.executable, job))
    again = eval_outputs(_evaluate_on(sys.executable, job))
    garbage = eval_outputs(_evaluate_on(tampered_python, job))
    assert honest is not None and again is not None and garbage is not None
    same = fidelity(again, honest, job.model_sha256)
    assert (same.cosine, same.max_abs_error, same.top1_agreement) == (1.0, 0.0, 1.0)
    broken = fidelity(garbage, honest, job.model_sha256)
    assert broken.top1_agreement < 0.2 and broken.cosine < 0.5, broken
    # the samples and the model are the host's and unchanged: only the board's answers differ
    assert garbage.set_sha256 == honest.set_sha256
    assert np.array_equal(garbage.outputs[0].values, honest.outputs[0].values[:, ::-1])


def test_an_eval_file_that_does_not_fit_a_model_fails_that_benchmark_alone(tmp_path: Path) -> None:
    kws = DIGITS.with_name("ds_cnn_kws.tflite")
    p = harness("run", "--targets", str(ROOT / "targets.toml"), "--target", "local", "--model", str(DIGITS),
                "--model", str(kws), "--eval", str(DIGITS_TEST), *QUICK, "--results", str(tmp_path / "r"), "--json",
                cwd=tmp_path)
    assert p.returncode == 1
    by_model = {o["model"]: o for o in json_objects(p.stdout)}
    assert by_model[DIGITS.name]["complete"] and by_model[DIGITS.name]["accuracy"]["n"] == 450
    error = by_model[kws.name]["error"]
    assert error["code"] == "bad_inputs" and by_model[kws.name]["with_invoke"] is None
    assert "digits_test.npz" in error["message"] and "ds_cnn_kws" in error["message"] and error["hint"]
