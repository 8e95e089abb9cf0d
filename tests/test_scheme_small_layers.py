"""A converter's dynamic-range output is ``dynamic_int8``, not ``mixed``.

TensorFlow's converter (``Optimize.DEFAULT`` without calibration data) leaves every weight tensor
under 1024 elements in float32, by rule (``kWeightsMinNumElementsDefault`` in TFLite's
quantize_weights, ``tfl-min-elements-for-weights`` in the MLIR quantizer). ai-edge-quantizer's
``dynamic_legacy_wi8_afp32`` recipe applies the same rule (``min_weight_elements: 1024``), so the
models here are quantized with it, for real, from float models built op by op: a large conv
(1152 weights) followed by a fully connected layer just under or at the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from harness.models.analysis import ModelAnalysis, OpInfo, analyze
from harness.models.precision import SMALL_WEIGHTS
from tests.modelkit import I32, ModelBuilder, conv_options, run_litert


def conv_pool_fc(path: Path, fc_out: int) -> Path:
    """conv 3x3 8->16 (1152 weights) -> average pool to 1x1 -> reshape -> fully connected 16->fc_out."""
    b = ModelBuilder()
    x = b.tensor("input", [1, 8, 8, 8])
    c = b.tensor("conv", [1, 6, 6, 16])
    b.op(fb.BuiltinOperator.CONV_2D, [x, b.weights("conv/w", [16, 3, 3, 8]), b.weights("conv/b", [16])], [c],
         conv_options(1), fb.BuiltinOptions.Conv2DOptions)
    p = b.tensor("pool", [1, 1, 1, 16])
    po = fb.Pool2DOptionsT()
    po.padding, po.strideW, po.strideH, po.filterWidth, po.filterHeight = fb.Padding.VALID, 6, 6, 6, 6
    b.op(fb.BuiltinOperator.AVERAGE_POOL_2D, [c], [p], po, fb.BuiltinOptions.Pool2DOptions)
    r = b.tensor("flat", [1, 16])
    ro = fb.ReshapeOptionsT()
    ro.newShape = [1, 16]
    b.op(fb.BuiltinOperator.RESHAPE, [p, b.tensor("flat/shape", [2], np.array([1, 16], np.int32), I32)], [r],
         ro, fb.BuiltinOptions.ReshapeOptions)
    f = b.tensor("logits", [1, fc_out])
    w, bias = b.weights("fc/w", [fc_out, 16]), b.weights("fc/b", [fc_out])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [r, w, bias], [f], fb.FullyConnectedOptionsT(),
         fb.BuiltinOptions.FullyConnectedOptions)
    return b.write(path, [x], [f])


def legacy_dynamic(f32: Path, dest: Path, keep_float: str | None = None) -> Path:
    """``f32`` quantized as the TF converter's dynamic range does (ai-edge-quantizer's legacy
    recipe); ``keep_float`` names an op whose output tensor matches it, left unquantized on purpose."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(f32))
    q.load_quantization_recipe(recipe.dynamic_legacy_wi8_afp32())
    if keep_float:
        q.update_quantization_recipe(regex=keep_float, operation_name="*", algorithm_key="no_quantize")
    q.quantize().export_model(str(dest), overwrite=True)
    return dest


def _op(a: ModelAnalysis, op_type: str) -> OpInfo:
    return next(op for op in a.ops if op.type == op_type)


def test_threshold_is_the_converters(tmp_path: Path) -> None:
    """The quantizer's own rule, seen from outside: at 1024 weights the FC is quantized, at 1008 not."""
    assert SMALL_WEIGHTS == 1024
    at = analyze(legacy_dynamic(conv_pool_fc(tmp_path / "f64.tflite", 64), tmp_path / "q64.tflite"))
    under = analyze(legacy_dynamic(conv_pool_fc(tmp_path / "f63.tflite", 63), tmp_path / "q63.tflite"))
    assert _op(at, "FULLY_CONNECTED").precision == "dynamic_int8"
    assert _op(under, "FULLY_CONNECTED").precision == "float32"
    assert _op(under, "CONV_2D").precision == "dynamic_int8"
    assert at.scheme == at.scheme_detail == "dynamic_int8" and at.small_float_layers == ()


def test_converter_dynamic_range_output_is_dynamic_int8(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    path = legacy_dynamic(conv_pool_fc(tmp_path / "f.tflite", 10), tmp_path / "dynamic.tflite")
    run_litert(path)  # a model the runtime accepts
    a = analyze(path)
    fc = _op(a, "FULLY_CONNECTED")
    assert fc.precision == "float32" and fc.params == 160 + 10
    assert (a.scheme, a.scheme_detail) == ("dynamic_int8", "dynamic_int8")
    assert a.small_float_layers == (fc.index,)
    capsys.readouterr()
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scheme"] == data["scheme_detail"] == "dynamic_int8"
    assert data["small_float_layers"] == [fc.index]
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "quantization scheme: dynamic_int8" in out
    assert f"op {fc.index} FULLY_CONNECTED (160 weights)" in out


def test_two_large_layers_in_different_precisions_are_mixed(tmp_path: Path) -> None:
    path = legacy_dynamic(conv_pool_fc(tmp_path / "f.tflite", 100), tmp_path / "mixed.tflite",
                          keep_float="logits")
    run_litert(path)
    a = analyze(path)
    assert _op(a, "CONV_2D").precision == "dynamic_int8"
    assert _op(a, "FULLY_CONNECTED").precision == "float32"
    assert a.scheme == a.scheme_detail == "mixed" and a.small_float_layers == ()


def test_small_float_layer_in_a_full_integer_model_is_mixed(tmp_path: Path) -> None:
    """No converter leaves a layer float32 in a full-int8 model by size: that is a real mix."""
    i8 = fb.TensorType.INT8
    b = ModelBuilder()
    x = b.tensor("input", [1, 8, 8, 8], dtype=i8)
    c = b.tensor("conv", [1, 6, 6, 16], dtype=i8)
    b.op(fb.BuiltinOperator.CONV_2D, [x, b.tensor("w", [16, 3, 3, 8], np.ones((16, 3, 3, 8), np.int8), i8),
                                      b.tensor("b", [16], np.zeros(16, np.int32), I32)],
         [c], conv_options(1), fb.BuiltinOptions.Conv2DOptions)
    cf = b.tensor("conv_f", [1, 6, 6, 16])
    b.op(fb.BuiltinOperator.DEQUANTIZE, [c], [cf])
    r = b.tensor("flat", [36, 16])
    ro = fb.ReshapeOptionsT()
    ro.newShape = [36, 16]
    shape = b.tensor("flat/shape", [2], np.array([36, 16], np.int32), I32)
    b.op(fb.BuiltinOperator.RESHAPE, [cf, shape], [r], ro, fb.BuiltinOptions.ReshapeOptions)
    f = b.tensor("logits", [36, 4])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [r, b.weights("fc/w", [4, 16]), b.weights("fc/b", [4])], [f],
         fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    a = analyze(b.write(tmp_path / "int8_float_fc.tflite", [x], [f]))
    assert [op.precision for op in a.ops if op.type in ("CONV_2D", "FULLY_CONNECTED")] == ["int8", "float32"]
    assert a.scheme == "mixed" and a.small_float_layers == ()
