"""`harness quantize`: the real ai-edge-quantizer on the shipped models, every kind, the schemes
`harness analyze` reports for them, mixed variants checked op by op by index against an analysis
of the exported file, layers ranked by a real stored profile, the one-line skips, recipe files."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils

from harness.cli import main
from harness.config import parse_targets
from harness.errors import ConfigError
from harness.models import variants
from harness.models.analysis import ModelAnalysis, OpInfo, TensorInfo, analyze
from harness.models.files import sha256
from harness.models.variants import LayerState, _check_int8, read_recipe, recipe_for, scope_regex
from harness.plan import ProfilePlan
from harness.results.layers import stored_profiles
from harness.scenarios.profile import run_profile
from tests.agentrun import DIGITS, KWS, MODELS, json_objects
from tests.badmodels import with_unknown_custom_op
from tests.modelkit import ModelBuilder

LAYERS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}  # the shipped models' weighted ops
CALIBRATION_SAMPLES = 48  # a few dozen samples calibrate these models; all 450 take a second more


def calibration_file(directory: Path, source: str = "digits_test.npz") -> Path:
    path = directory / f"calib-{source}"
    with np.load(MODELS / source) as data:
        np.savez(path, x=data["x"][:CALIBRATION_SAMPLES], y=data["y"][:CALIBRATION_SAMPLES])
    return path


def quantize(*args: str | Path) -> list[str]:
    return ["quantize", *map(str, args)]


def layers_of(a: ModelAnalysis) -> list[OpInfo]:
    return [op for op in a.ops if op.type in LAYERS and op.params > 0]


def heaviest(a: ModelAnalysis, k: int, weight: dict[int, float]) -> set[int]:
    return set(sorted((op.index for op in layers_of(a)), key=lambda i: (-weight[i], i))[:k])


def precision_by_base_op(base: ModelAnalysis, variant: ModelAnalysis) -> dict[int, str]:
    """Each base op's precision in the variant, found by its output tensor names (the quantizer
    inserts QUANTIZE and DEQUANTIZE ops, which shift the indices); every op the variant has
    beyond the base's must be one of those two."""
    by_names = {tuple(t.name for t in op.outputs): op for op in variant.ops}
    found = {op.index: by_names[tuple(t.name for t in op.outputs)] for op in base.ops}
    extra = {op.type for op in variant.ops} - {op.type for op in base.ops}
    assert extra <= {"QUANTIZE", "DEQUANTIZE"}, extra
    assert len(variant.ops) - len(base.ops) == sum(op.type in ("QUANTIZE", "DEQUANTIZE") for op in variant.ops)
    return {i: op.precision for i, op in found.items()}


@pytest.fixture(scope="module")
def digits_variants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Every kind of the digits model (mixed as the 3 heaviest layers), and mixed-except-top3."""
    out = tmp_path_factory.mktemp("variants")
    calib = calibration_file(out)
    made: dict[str, dict[str, Any]] = {}
    for extra in ([], ["--kinds", "mixed", "--mixed-invert"]):
        text = io.StringIO()  # capsys is per test; this fixture serves the module
        with contextlib.redirect_stdout(text):
            assert main(quantize(DIGITS, "--calibration", calib, "--mixed-top", "3", "--out", out, "--json",
                                 *extra)) == 0
        made.update({obj["name"]: obj for obj in json_objects(text.getvalue())})
    return out, made


def test_every_kind_of_the_digits_model_gets_the_scheme_analyze_reports(
        digits_variants: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    out, made = digits_variants
    assert sorted(made) == sorted(["float16", "dynamic_int8", "weight_only_int8", "int8", "mixed-top3",
                                   "mixed-except-top3"])
    expected = {"float16": ("float16", "float16"), "dynamic_int8": ("dynamic_int8", "dynamic_int8"),
                "weight_only_int8": ("dynamic_int8", "weight_only_int8"), "int8": ("int8", "int8"),
                "mixed-top3": ("mixed", "mixed"), "mixed-except-top3": ("mixed", "mixed")}
    base_sha, base_size = sha256(DIGITS), DIGITS.stat().st_size
    for name, obj in made.items():
        path = Path(obj["path"])
        assert path == out / f"digits_cnn.{name}.tflite" and path.is_file()
        assert Path(obj["recipe"]) == out / f"digits_cnn.{name}.recipe.json"
        a = analyze(path)  # the variant as harness analyze sees it, independently of the command
        assert (a.scheme, a.scheme_detail) == expected[name] == (obj["scheme"], obj["scheme_detail"])
        assert obj["kind"] == ("mixed" if name.startswith("mixed") else name)
        assert obj["size_bytes"] == path.stat().st_size < base_size and obj["sha256"] == sha256(path)
        assert obj["base_sha256"] == base_sha
    assert sha256(DIGITS) == base_sha  # the base is never touched


@pytest.mark.parametrize("name, invert", [("mixed-top3", False), ("mixed-except-top3", True)])
def test_a_mixed_variant_holds_exactly_the_layers_asked_for_in_int8(
        digits_variants: tuple[Path, dict[str, dict[str, Any]]], name: str, invert: bool) -> None:
    out, made = digits_variants
    base = analyze(DIGITS)
    top3 = heaviest(base, 3, {op.index: float(op.flops or 0) for op in base.ops})
    assert top3 == {1, 3, 5}  # conv2d_1_2, conv2d_2_1, dense_1: the digits model's heaviest by FLOPs
    variant = analyze(out / f"digits_cnn.{name}.tflite")
    precision = precision_by_base_op(base, variant)
    for op in layers_of(base):
        want = "int8" if (op.index in top3) != invert else "float32"
        assert precision[op.index] == want, (name, op.index, op.type, precision[op.index])
    if not invert:  # nothing but the three layers is int8: pooling, reshape and softmax stay float32
        assert {i for i, p in precision.items() if p == "int8"} == top3
    obj = made[name]
    assert obj["int8_layers"] == sorted(i for i, p in precision.items() if p == "int8" and i in
                                        {op.index for op in layers_of(base)})


def test_mixed_layers_by_index_and_a_non_layer_index_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = calibration_file(tmp_path)
    for bad, named in (("2", "op 2 (MAX_POOL_2D)"), ("0,99", "op 99")):
        with pytest.raises(SystemExit) as stop:
            main(quantize(DIGITS, "--calibration", calib, "--mixed-layers", bad, "--out", tmp_path))
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert named in err and "its layers are 0, 1, 3, 5, 6" in err
    assert list(tmp_path.glob("*.tflite")) == []  # a usage error makes nothing
    assert main(quantize(DIGITS, "--calibration", calib, "--kinds", "mixed", "--mixed-layers", "6,0",
                         "--mixed-invert", "--out", tmp_path, "--json")) == 0
    (obj,) = json_objects(capsys.readouterr().out)
    assert obj["name"] == "mixed-except-layers-0-6" and obj["int8_layers"] == [1, 3, 5]
    precision = precision_by_base_op(analyze(DIGITS), analyze(obj["path"]))
    assert [precision[i] for i in (0, 1, 3, 5, 6)] == ["float32", "int8", "int8", "int8", "float32"]


def test_by_time_ranks_the_layers_by_a_real_stored_profile(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "kws.tflite"
    shutil.copy(KWS, model)
    local = parse_targets('[targets.local]\nkind = "local"\n', "test-targets.toml")["local"]
    run = run_profile(local, model, tmp_path / "prefixes", tmp_path / "results", ProfilePlan(rounds=3))
    assert run.status == "complete"
    (record,) = stored_profiles(run.path)
    assert record.profile is not None
    times = {layer.index: layer.ns for layer in record.profile.layers}
    want = heaviest(analyze(model), 2, times)
    assert main(quantize(model, "--calibration", calibration_file(tmp_path, "ds_cnn_kws_test.npz"),
                         "--kinds", "mixed", "--mixed-top", "2", "--by-time", run.run_id,
                         "--results", tmp_path / "results", "--out", tmp_path / "out", "--json")) == 0
    (obj,) = json_objects(capsys.readouterr().out)
    assert obj["name"] == "mixed-top2-by-time" and set(obj["int8_layers"]) == want
    recipe = read_recipe(Path(obj["recipe"]))
    assert (recipe.by, recipe.top, recipe.profile_run, recipe.invert) == ("time", 2, run.run_id, False)
    # A profile of another model is refused, naming the run and the model
    assert main(quantize(DIGITS, "--calibration", calibration_file(tmp_path), "--kinds", "mixed",
                         "--mixed-top", "2", "--by-time", run.run_id, "--results", tmp_path / "results",
                         "--out", tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert f"profile run {run.run_id} has no profile of" in err and "digits_cnn.tflite" in err


def test_without_calibration_the_kinds_that_need_it_are_skipped_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(quantize(DIGITS, "--out", tmp_path, "--json")) == 0
    captured = capsys.readouterr()
    assert [o["name"] for o in json_objects(captured.out)] == ["float16", "dynamic_int8", "weight_only_int8"]
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "int8" in skipped[0] and "--calibration" in skipped[0]
    assert str(DIGITS) in skipped[0]
    # Nothing that can be made: exit 1, with the same line and one saying so
    assert main(quantize(DIGITS, "--kinds", "int8", "--out", tmp_path / "none")) == 1
    err = capsys.readouterr().err
    assert "skipped int8" in err and "--calibration" in err and "no variant" in err
    assert not (tmp_path / "none").exists() or list((tmp_path / "none").iterdir()) == []


def test_a_model_without_signature_gets_the_others_and_one_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = flatbuffer_utils.read_model(str(DIGITS))
    model.signatureDefs = []
    unsigned = tmp_path / "unsigned.tflite"
    flatbuffer_utils.write_model(model, str(unsigned))
    assert main(quantize(unsigned, "--calibration", calibration_file(tmp_path), "--mixed-top", "2",
                         "--out", tmp_path, "--json")) == 0
    captured = capsys.readouterr()
    assert [o["name"] for o in json_objects(captured.out)] == ["float16", "dynamic_int8", "weight_only_int8"]
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped int8 and mixed:")
    assert "unsigned.tflite has no signature" in skipped[0] and "fix:" in skipped[0]


def test_a_quantizer_failure_skips_that_kind_in_one_line(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """ai-edge-quantizer's calibration cannot run an op it does not know; the other kinds can."""
    model = with_unknown_custom_op(DIGITS, tmp_path / "custom.tflite")
    assert main(quantize(model, "--calibration", calibration_file(tmp_path), "--out", tmp_path, "--json")) == 0
    captured = capsys.readouterr()
    assert [o["name"] for o in json_objects(captured.out)] == ["float16", "dynamic_int8", "weight_only_int8"]
    (line,) = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert line.startswith("skipped int8: ai-edge-quantizer could not make the int8 variant of custom.tflite")
    assert "HarnessUnknownOp" in line and "fix: leave int8 out with --kinds" in line
    assert not (tmp_path / "custom.int8.tflite").exists() and not list(tmp_path.glob(".*.tmp"))
    # A model without a layer to cast: float16 would be the base again, so it is not made
    b = ModelBuilder()
    x, y = b.tensor("input", [1, 4]), b.tensor("probs", [1, 4])
    b.op(fb.BuiltinOperator.SOFTMAX, [x], [y], fb.SoftmaxOptionsT(), fb.BuiltinOptions.SoftmaxOptions)
    layerless = b.write(tmp_path / "softmax.tflite", [x], [y])
    assert main(quantize(layerless, "--kinds", "float16", "--out", tmp_path)) == 1
    err = capsys.readouterr().err
    assert "skipped float16: ai-edge-quantizer left softmax.tflite all float32" in err and "no variant" in err


def test_bad_input_gets_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, spectrogram=np.zeros((3, 49, 10, 1), np.float32))
    assert main(quantize(DIGITS, "--calibration", wrong, "--out", tmp_path)) == 1
    err = capsys.readouterr().err
    assert "wrong.npz" in err and "serving_default_image:0" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.glob("*.tflite")) == []  # a bad calibration file stops before anything is made
    assert main(quantize(DIGITS, "--kinds", "float16", "--out", tmp_path, "--json")) == 0
    already = json_objects(capsys.readouterr().out)[0]["path"]
    assert main(quantize(already, "--kinds", "dynamic_int8", "--out", tmp_path)) == 1
    assert "already quantized (scheme float16)" in capsys.readouterr().err


def test_the_table_fits_100_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the lines under the table name the folder: a short one, as usual
    assert main(quantize(MODELS / "mobilenet_v1_025_96.tflite", "--kinds", "float16,weight_only_int8")) == 0
    out = capsys.readouterr().out
    assert "weight_only_int8" in out and "0.53×" in out and "float16" in out
    assert "files: ./mobilenet_v1_025_96.<variant>.tflite, each with its .recipe.json" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"mobilenet_v1_025_96.{k}.{e}" for k in ("float16", "weight_only_int8") for e in ("recipe.json", "tflite")]
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 100


def test_the_recipe_round_trips_and_finds_the_base(digits_variants: tuple[Path, dict[str, dict[str, Any]]],
                                                  tmp_path: Path) -> None:
    out, made = digits_variants
    obj = made["mixed-top3"]
    recipe = recipe_for(Path(obj["path"]))
    assert recipe is not None and recipe == read_recipe(Path(obj["recipe"]))
    assert (recipe.kind, recipe.name, recipe.base_sha256, recipe.variant_sha256) == (
        "mixed", "mixed-top3", sha256(DIGITS), obj["sha256"])
    assert recipe.int8_layers == (1, 3, 5) and (recipe.by, recipe.top, recipe.invert) == ("flops", 3, False)
    assert recipe.scheme == "mixed" and recipe.variant_path == Path(obj["path"])
    assert recipe.locate_base() == DIGITS.resolve() and recipe.locate_base([KWS, DIGITS]) == DIGITS
    data = recipe.data
    assert data["quantizer"]["name"] == "ai-edge-quantizer" and data["quantizer"]["version"] == "0.10.0"
    assert data["calibration"]["samples"] == CALIBRATION_SAMPLES and data["calibration"]["sha256"]
    assert any(rule["regex"].startswith("^") for rule in data["quantizer"]["recipe"])
    assert recipe_for(DIGITS) is None  # a base model has no recipe
    # A recipe that cannot be used names its file
    copy = tmp_path / "digits_cnn.mixed-top3.tflite"
    shutil.copy(obj["path"], copy)
    bad = tmp_path / "digits_cnn.mixed-top3.recipe.json"
    for text, says in (("{not json", "not valid JSON"), ('{"recipe_version": 9}', "recipe_version 9"),
                       (json.dumps({**data, "base": {}}), "'base.path'")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(str(bad))) as caught:
            recipe_for(copy)
        assert says in str(caught.value)
    bad.write_text(json.dumps(data))
    assert recipe_for(copy) is not None
    copy.write_bytes(DIGITS.read_bytes())  # the variant replaced after quantizing: a stale recipe
    with pytest.raises(ConfigError, match="describes another file"):
        recipe_for(copy)


def test_an_anchored_rule_matches_one_op_and_not_ops_sharing_a_prefix() -> None:
    def op(index: int, *names: str) -> OpInfo:
        outs = tuple(TensorInfo(n, (1,), "float32", False) for n in names)
        return OpInfo(index, "CONV_2D", "compute", (), outs, 2, 1, 4, "float32")

    ops = [op(0, "conv"), op(1, "conv_1"), op(2, "a/conv"), op(3, "conv", "extra"), op(4, "x.y+z")]
    scopes = [";".join(t.name for t in o.outputs) + ";" for o in ops]  # as ai-edge-quantizer builds them
    for o in ops:
        assert [k for k, s in enumerate(scopes) if re.search(scope_regex(o), s)] == [o.index]
    assert re.search("conv;", scopes[2])  # the plain name would have matched op 2 too


def test_a_variant_off_its_request_is_named_layer_by_layer() -> None:
    """The check the command runs on every exported int8 and mixed variant (pure: the real
    quantizer has not been seen to miss, so its states are built here)."""
    states = [LayerState(0, 0, "CONV_2D", "float32"), LayerState(1, 2, "CONV_2D", "int8"),
              LayerState(3, 5, "FULLY_CONNECTED", "float32")]
    _check_int8("m.mixed-top2.tflite", analyze(DIGITS), states, [1])
    with pytest.raises(ConfigError) as caught:
        _check_int8("m.mixed-top2.tflite", analyze(DIGITS), states, [1, 3])
    assert caught.value.code == "layers_differ"
    assert "3 (FULLY_CONNECTED: float32, asked int8)" in str(caught.value) and "1 (" not in str(caught.value)


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Top-1 of every sample in LiteRT on the host, inputs and outputs converted with the model's
    own scale and zero point (a full int8 variant takes and gives int8)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    top = []
    for sample in x:
        data = sample[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            data = np.clip(np.round(data / scale + zero), -128, 127).astype(inp["dtype"])
        it.set_tensor(inp["index"], data)
        it.invoke()
        top.append(int(np.argmax(it.get_tensor(out["index"]))))
    return np.array(top)


def test_every_variant_runs_and_calibration_really_fed_the_int8_ones(
        digits_variants: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    """The calibration samples reached the quantizer under the right input name: calibrated on
    the digits, every variant agrees with float32 on held-out digits, while the control, int8
    calibrated on near-zero inputs (the wrong range), collapses towards chance."""
    _, made = digits_variants
    with np.load(MODELS / "digits_test.npz") as data:
        held_out = data["x"][CALIBRATION_SAMPLES:CALIBRATION_SAMPLES + 150]
    reference = _predict(DIGITS, held_out)
    for name, obj in made.items():
        agreement = float(np.mean(_predict(Path(obj["path"]), held_out) == reference))
        assert agreement >= 0.9, (name, agreement)
    dim = tmp_path / "dim.npz"
    np.savez(dim, x=(np.random.default_rng(0).random((16, 8, 8, 1)) * 0.05).astype(np.float32))
    control = variants.quantize(DIGITS, "int8", tmp_path, calibration=dim)
    assert float(np.mean(_predict(control.path, held_out) == reference)) < 0.5
