"""harness.models.analysis on tiny models written in the test, checked against hand-computed counts.

The models are real .tflite flatbuffers built with the schema's object API (tests/modelkit.py, no
TensorFlow); each is also loaded and invoked by LiteRT, so the shapes the counts rely on are ones
a runtime accepts. The quantized variants come from ai-edge-quantizer recipes, as a user would
make them. Predictions from these counts are tested in tests/test_prediction.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.models.analysis import SCHEME_DETAILS, SCHEMES, analyze, analyze_model, contract_scheme
from tests.modelkit import (
    I32,
    VARIANTS,
    ModelBuilder,
    conv_options,
    make_variant,
    one_conv,
    one_depthwise,
    one_fc,
    run_litert,
    small_cnn,
)

# --- hand-computed counts --------------------------------------------------------------------

def test_one_conv_counts_match_hand_computation(tmp_path: Path) -> None:
    path = one_conv(tmp_path / "conv.tflite")
    assert run_litert(path) == [(1, 4, 4, 8)]
    (op,) = analyze(path).ops
    # 10x10x3 input, 8 filters of 3x3x3, stride 2 VALID -> 4x4x8 outputs of 27 MACs each.
    assert op.type == "CONV_2D" and op.kind == "compute"
    assert op.macs == 4 * 4 * 8 * 3 * 3 * 3 == 3456
    assert op.flops == 6912
    assert op.params == 8 * 27 + 8
    assert op.weight_bytes == (8 * 27 + 8) * 4
    assert op.precision == "float32"


def test_one_depthwise_counts_match_hand_computation(tmp_path: Path) -> None:
    path = one_depthwise(tmp_path / "dw.tflite")
    assert run_litert(path) == [(1, 10, 10, 4)]
    (op,) = analyze(path).ops
    # 10x10x4 outputs (SAME, stride 1), each one 3x3 window of its own channel: 9 MACs.
    assert op.type == "DEPTHWISE_CONV_2D"
    assert op.macs == 10 * 10 * 4 * 9 == 3600
    assert op.flops == 7200
    assert op.params == 36 + 4


def test_one_fully_connected_counts_match_hand_computation(tmp_path: Path) -> None:
    path = one_fc(tmp_path / "fc.tflite")
    assert run_litert(path) == [(1, 7)]
    a = analyze(path)
    (op,) = a.ops
    assert op.type == "FULLY_CONNECTED"
    assert op.macs == 7 * 20 == 140 and op.flops == 280
    assert (op.params, a.total_params) == (147, 147)
    assert a.total_flops == 280 and a.total_macs == 140


def test_small_cnn_counts_every_rule(tmp_path: Path) -> None:
    path = small_cnn(tmp_path / "cnn.tflite")
    assert run_litert(path) == [(1, 10)]
    a = analyze(path)
    by_type = {op.type: op for op in a.ops}
    assert [op.type for op in a.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                                        "FULLY_CONNECTED", "SOFTMAX"]
    assert by_type["CONV_2D"].macs == 8 * 8 * 8 * 27
    assert by_type["DEPTHWISE_CONV_2D"].macs == 4 * 4 * 8 * 9
    assert by_type["AVERAGE_POOL_2D"].macs == 2 * 2 * 8 * 4  # one MAC-equivalent per window element
    assert by_type["RESHAPE"].flops == 0 and by_type["RESHAPE"].kind == "shape"
    assert by_type["RESHAPE"].params == 0  # its int32 shape constant is not a parameter
    assert by_type["FULLY_CONNECTED"].macs == 320
    assert by_type["SOFTMAX"].flops == 5 * 10 and by_type["SOFTMAX"].macs == 25
    assert a.total_flops == sum(op.flops for op in a.ops)
    assert a.uncounted_ops == () and a.scheme == "float32"


@settings(max_examples=30, deadline=None)
@given(h=st.integers(3, 12), c=st.integers(1, 5), oc=st.integers(1, 6), k=st.sampled_from([1, 3]),
       stride=st.integers(1, 3))
def test_conv_count_property(tmp_path_factory: pytest.TempPathFactory, h: int, c: int, oc: int, k: int,
                             stride: int) -> None:
    path = one_conv(tmp_path_factory.mktemp("conv") / "c.tflite", h=h, w=h + 1, c=c, oc=oc, k=k, stride=stride)
    (op,) = analyze(path).ops
    oh, ow = (h - k) // stride + 1, (h + 1 - k) // stride + 1
    assert op.macs == oh * ow * oc * k * k * c
    assert op.flops == 2 * op.macs


# --- quantization schemes --------------------------------------------------------------------

@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small CNN in every scheme, made with ai-edge-quantizer recipes (about 1 s in all)."""
    d = tmp_path_factory.mktemp("variants")
    f32 = small_cnn(d / "float32.tflite")
    return {"float32": f32, **{s: make_variant(f32, s, d / f"{s}.tflite") for s in VARIANTS}}


# variant -> (contract scheme, finer scheme_detail)
EXPECTED_SCHEMES = {
    "float32": ("float32", "float32"), "float16": ("float16", "float16"),
    "dynamic_int8": ("dynamic_int8", "dynamic_int8"),
    "weight_only_int8": ("dynamic_int8", "weight_only_int8"),  # the contract's family, the finer label kept
    "int8": ("int8", "int8"), "int16x8": ("int16x8", "int16x8"), "mixed": ("mixed", "mixed"),
}


@pytest.mark.parametrize("variant", sorted(EXPECTED_SCHEMES))
def test_scheme_detection(variants: dict[str, Path], variant: str) -> None:
    path = variants[variant]
    run_litert(path)  # a model the runtime accepts, not just a flatbuffer
    a = analyze(path)
    assert (a.scheme, a.scheme_detail) == EXPECTED_SCHEMES[variant]
    assert a.scheme in SCHEMES and a.scheme_detail in SCHEME_DETAILS
    data = a.to_json()
    assert (data["scheme"], data["scheme_detail"]) == EXPECTED_SCHEMES[variant]
    float_macs = analyze(variants["float32"]).total_macs
    if variant != "mixed":  # mixed adds QUANTIZE/DEQUANTIZE work; the rest compute the same thing
        assert a.total_macs == float_macs


def test_every_emitted_scheme_is_one_of_the_contracts_six(variants: dict[str, Path]) -> None:
    """Scripts switch on ``scheme``: whatever the finer label, it is one of the issue's six."""
    assert SCHEMES == ("float32", "float16", "dynamic_int8", "int8", "int16x8", "mixed")
    assert {analyze(path).scheme for path in variants.values()} <= set(SCHEMES)
    assert {contract_scheme(detail) for detail in SCHEME_DETAILS} == set(SCHEMES)
    assert contract_scheme("uint8") == "int8"
    for detail in ("weight_only_int8", "dynamic_int4", "weight_only_int4"):
        assert contract_scheme(detail) == "dynamic_int8"


def test_view_shows_both_schemes_when_they_differ(variants: dict[str, Path]) -> None:
    from rich.console import Console

    from harness.render.analysis import analysis_lines, analysis_renderable

    a = analyze(variants["weight_only_int8"])
    assert ("quantization scheme: dynamic_int8 (weight-only int8: weights dequantized once, float32 kernels)"
            in analysis_lines(a))
    console = Console(record=True, width=200)
    console.print(analysis_renderable(a))
    assert "dynamic_int8 (weight_only_int8)" in console.export_text()  # the totals row


def test_mixed_lists_the_layers_in_each_precision(variants: dict[str, Path]) -> None:
    a = analyze(variants["mixed"])
    groups = a.layers_by_precision
    conv = next(op.index for op in a.ops if op.type == "CONV_2D")
    fc = next(op.index for op in a.ops if op.type == "FULLY_CONNECTED")
    assert conv in groups["int8"] and fc in groups["float32"]
    assert "float32->int8" in groups and "int8->float32" in groups


def test_float16_weights_are_attributed_to_their_consumer(variants: dict[str, Path]) -> None:
    a = analyze(variants["float16"])
    dequants = [op for op in a.ops if op.type == "DEQUANTIZE"]
    assert dequants and all(op.flops == 0 and op.params == 0 for op in dequants)
    conv = next(op for op in a.ops if op.type == "CONV_2D")
    assert conv.precision == "float16"
    assert conv.params == 8 * 27 + 8
    assert conv.weight_bytes == 8 * 27 * 2 + 8 * 4  # fp16 filter, float32 bias
    assert a.total_params == analyze(variants["float32"]).total_params


def test_int8_shrinks_weight_bytes(variants: dict[str, Path]) -> None:
    f32, i8 = analyze(variants["float32"]), analyze(variants["int8"])
    assert i8.total_params == f32.total_params
    assert i8.total_weight_bytes < f32.total_weight_bytes / 2  # int8 weights, int32 biases


# --- bad input -------------------------------------------------------------------------------

def test_custom_and_unruled_ops_are_unknown_not_zero(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("input", [1, 6, 6, 2])
    y = b.tensor("custom_out", [1, 6, 6, 2])
    b.op(fb.BuiltinOperator.CUSTOM, [x], [y], custom="MyMagicOp")
    z = b.tensor("resized", [1, 12, 12, 2])
    size = b.tensor("size", [2], np.array([12, 12], np.int32), I32)
    b.op(fb.BuiltinOperator.RESIZE_BILINEAR, [y, size], [z], fb.ResizeBilinearOptionsT(),
         fb.BuiltinOptions.ResizeBilinearOptions)
    w = b.tensor("sum", [1, 12, 12, 2])
    b.op(fb.BuiltinOperator.ADD, [z, z], [w], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    a = analyze(b.write(tmp_path / "custom.tflite", [x], [w]))
    custom, resize, add = a.ops
    assert custom.type == "CUSTOM:MyMagicOp" and custom.kind == "unknown"
    assert custom.flops is None and custom.macs is None
    assert resize.kind == "unknown" and resize.flops is None and "RESIZE_BILINEAR" in resize.note
    assert add.flops == 12 * 12 * 2  # one FLOP per output element
    assert a.uncounted_ops == (0, 1)
    assert a.total_flops == add.flops
    data = a.to_json()
    assert data["ops"][0]["flops"] is None and data["uncounted_ops"] == [0, 1]


def test_dynamic_batch_is_assumed_one_and_said(tmp_path: Path) -> None:
    a = analyze(small_cnn(tmp_path / "dyn.tflite", batch_signature=True))
    assert a.inputs[0].shape == (1, 8, 8, 3)
    assert any("'input'" in s and "[-1, 8, 8, 3]" in s and "assumed [1, 8, 8, 3]" in s for s in a.assumptions)
    assert a.ops[0].macs == 8 * 8 * 8 * 27


def test_not_a_model_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tflite"
    bad.write_text("hello, I am not a flatbuffer")
    with pytest.raises(ConfigError, match="notes.tflite is not a TFLite model"):
        analyze(bad)
    with pytest.raises(ConfigError, match="missing.tflite") as err:
        analyze(tmp_path / "missing.tflite")
    assert err.value.hint


def test_truncated_model_names_the_file(tmp_path: Path) -> None:
    whole = small_cnn(tmp_path / "whole.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ConfigError, match="cut.tflite"):
        analyze(cut)


# --- the JSON contract -----------------------------------------------------------------------

def test_json_contract(tmp_path: Path) -> None:
    data = json.loads(json.dumps(analyze(small_cnn(tmp_path / "cnn.tflite")).to_json()))
    for key in ("total_macs", "total_flops", "total_params", "scheme", "ops"):
        assert key in data
    assert data["total_flops"] == 2 * data["total_macs"]
    assert [op["index"] for op in data["ops"]] == list(range(len(data["ops"])))
    for op in data["ops"]:
        assert {"index", "type", "macs", "flops", "params", "precision"} <= set(op)
        assert op["flops"] == 2 * op["macs"]


def test_analyze_model_in_memory_matches_file(tmp_path: Path) -> None:
    path = small_cnn(tmp_path / "cnn.tflite")
    from_file = analyze(path)
    in_memory = analyze_model(flatbuffer_utils.read_model(str(path)))
    assert [op.flops for op in in_memory.ops] == [op.flops for op in from_file.ops]


def test_shipped_example_models_are_analysed() -> None:
    models = sorted((Path(__file__).resolve().parents[1] / "harness" / "example_models").glob("*.tflite"))
    assert [m.stem for m in models] == ["digits_cnn", "ds_cnn_kws", "mobilenet_v1_025_96"]  # all committed
    for path in models:
        a = analyze(path)
        assert a.ops, path
        assert a.scheme in SCHEMES and a.scheme_detail in SCHEME_DETAILS, path
        assert a.total_flops > 0, path
        for op in a.ops:
            assert op.flops is None or op.flops == 2 * op.macs


# --- the human view --------------------------------------------------------------------------

def test_view_shows_every_op_and_unknown_as_unknown(tmp_path: Path) -> None:
    from rich.console import Console

    from harness.render.analysis import analysis_lines, analysis_renderable, analysis_table

    b = ModelBuilder()
    x = b.tensor("input", [1, 4])
    y = b.tensor("out", [1, 4])
    b.op(fb.BuiltinOperator.CUSTOM, [x], [y], custom="Mystery")
    a = analyze(b.write(tmp_path / "m.tflite", [x], [y]))
    assert analysis_table(a).row_count == len(a.ops) + 1  # plus the totals row
    console = Console(record=True, width=160)
    console.print(analysis_renderable(a))
    text = console.export_text()
    assert "CUSTOM:Mystery" in text and "unknown" in text
    assert any("FLOPs unknown for 1 op(s) (0)" in line for line in analysis_lines(a))


def test_view_groups_layers_by_precision(variants: dict[str, Path]) -> None:
    from harness.render.analysis import analysis_lines

    lines = analysis_lines(analyze(variants["mixed"]))
    assert "quantization scheme: mixed" in lines
    assert any(line.strip().startswith("int8: ops ") for line in lines)


# --- the command -----------------------------------------------------------------------------

def test_cli_analyze_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    path = small_cnn(tmp_path / "cnn.tflite")
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_flops"] == analyze(path).total_flops and data["scheme"] == "float32"
    assert data["scheme_detail"] == "float32"
    assert [op["type"] for op in data["ops"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]


def test_cli_analyze_table_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["analyze", str(small_cnn(tmp_path / "cnn.tflite"))]) == 0
    out = capsys.readouterr().out
    assert "AVERAGE_POOL_2D" in out and "quantization scheme: float32" in out
    bad = tmp_path / "readme.tflite"
    bad.write_text("text")
    assert main(["analyze", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "readme.tflite is not a TFLite model" in captured.err


def test_cli_analyze_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.m0]\nkind = "serial"\nport = "loop://"\nram = "1KiB"\nflash = "64KiB"\n'
                       '[targets.pi]\nkind = "local"\n')
    int8 = make_variant(small_cnn(tmp_path / "f.tflite"), "int8", tmp_path / "int8.tflite")
    capsys.readouterr()  # the quantizer's own report
    assert main(["analyze", str(int8), "--fits", "--targets", str(targets), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in data["fits_on"]] == ["m0"]  # microcontrollers only, by default
    assert data["fits_on"][0]["fits_ram"] is False and data["fits_on"][0]["fits_flash"] is True
    assert data["arena"]["arena_bytes"] > 1024


def test_int8_model_with_float_io_is_int8_not_mixed(tmp_path: Path) -> None:
    """The TF converter's full-int8 models often keep float I/O: QUANTIZE in, DEQUANTIZE out.
    Conversions at the boundary do not make a model mixed."""
    i8 = fb.TensorType.INT8
    b = ModelBuilder()
    x = b.tensor("input", [1, 4, 4, 2])
    xq = b.tensor("input_q", [1, 4, 4, 2], dtype=i8)
    y = b.tensor("conv", [1, 2, 2, 3], dtype=i8)
    out = b.tensor("output", [1, 2, 2, 3])
    w = b.tensor("w", [3, 3, 3, 2], np.ones((3, 3, 3, 2), np.int8), i8)
    bias = b.tensor("b", [3], np.zeros(3, np.int32), I32)
    b.op(fb.BuiltinOperator.QUANTIZE, [x], [xq])
    b.op(fb.BuiltinOperator.CONV_2D, [xq, w, bias], [y], conv_options(1), fb.BuiltinOptions.Conv2DOptions)
    b.op(fb.BuiltinOperator.DEQUANTIZE, [y], [out])
    a = analyze(b.write(tmp_path / "int8_float_io.tflite", [x], [out]))
    assert [op.precision for op in a.ops] == ["float32->int8", "int8", "int8->float32"]
    assert a.scheme == a.scheme_detail == "int8"
    assert a.ops[0].flops == 2 * 32 and a.ops[2].flops == 2 * 12  # scale and zero point per element
    assert a.ops[1].params == 54 + 3 and a.ops[1].weight_bytes == 54 + 12
