"""Tiny real .tflite models for the tests, written with the flatbuffer schema's object API.

No TensorFlow: ``ModelBuilder`` writes a one-subgraph model with a ``serving_default``
signature, op by op; the ``one_*`` and ``small_cnn`` helpers use it to make models whose FLOPs
the tests count by hand, and ``make_variant`` quantizes one with an ai-edge-quantizer recipe, as a
user would. ``run_litert`` invokes a model once, so a test knows the runtime accepts it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils

os.environ.setdefault("TQDM_DISABLE", "1")  # ai-edge-quantizer's progress bars
F32, I32 = fb.TensorType.FLOAT32, fb.TensorType.INT32


class ModelBuilder:
    """Writes a one-subgraph TFLite model with a ``serving_default`` signature."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [fb.BufferT()]  # buffer 0 is the empty one by convention
        self.ops: list[Any] = []
        self.codes: list[tuple[int, str | None]] = []
        self.rng = np.random.default_rng(0)

    def tensor(self, name: str, shape: list[int], data: np.ndarray | None = None, dtype: int = F32,
               signature: list[int] | None = None) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, 0
        if signature is not None:
            t.shapeSignature = list(signature)
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def weights(self, name: str, shape: list[int]) -> int:
        return self.tensor(name, shape, self.rng.standard_normal(shape).astype(np.float32) * 0.3)

    def op(self, code: int, inputs: list[int], outputs: list[int], options: Any = None,
           options_type: int = 0, custom: str | None = None) -> None:
        key = (code, custom)
        if key not in self.codes:
            self.codes.append(key)
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(key), list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def write(self, path: Path, inputs: list[int], outputs: list[int]) -> Path:
        codes = []
        for code, custom in self.codes:
            c = fb.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            c.customCode = custom
            codes.append(c)
        sg = fb.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = self.tensors, inputs, outputs, self.ops, "main"

        def tmap(i: int) -> Any:
            m = fb.TensorMapT()
            m.name, m.tensorIndex = self.tensors[i].name, i
            return m

        sig = fb.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [tmap(i) for i in inputs], [tmap(i) for i in outputs]
        model = fb.ModelT()
        model.version, model.operatorCodes, model.subgraphs = 3, codes, [sg]
        model.buffers, model.signatureDefs, model.description = self.buffers, [sig], "harness test model"
        flatbuffer_utils.write_model(model, str(path))
        return path


def conv_options(stride: int, padding: int = fb.Padding.VALID) -> Any:
    o = fb.Conv2DOptionsT()
    o.padding, o.strideW, o.strideH, o.dilationWFactor, o.dilationHFactor = padding, stride, stride, 1, 1
    return o


def depthwise_options(stride: int, multiplier: int = 1) -> Any:
    o = fb.DepthwiseConv2DOptionsT()
    o.padding, o.strideW, o.strideH, o.depthMultiplier = fb.Padding.SAME, stride, stride, multiplier
    o.dilationWFactor = o.dilationHFactor = 1
    return o


def one_conv(path: Path, h: int = 10, w: int = 10, c: int = 3, oc: int = 8, k: int = 3, stride: int = 2) -> Path:
    b = ModelBuilder()
    x = b.tensor("input", [1, h, w, c])
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    y = b.tensor("conv", [1, oh, ow, oc])
    b.op(fb.BuiltinOperator.CONV_2D, [x, b.weights("conv/w", [oc, k, k, c]), b.weights("conv/b", [oc])],
         [y], conv_options(stride), fb.BuiltinOptions.Conv2DOptions)
    return b.write(path, [x], [y])


def one_depthwise(path: Path) -> Path:
    b = ModelBuilder()
    x = b.tensor("input", [1, 10, 10, 4])
    y = b.tensor("dw", [1, 10, 10, 4])
    b.op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [x, b.weights("dw/w", [1, 3, 3, 4]), b.weights("dw/b", [4])],
         [y], depthwise_options(1), fb.BuiltinOptions.DepthwiseConv2DOptions)
    return b.write(path, [x], [y])


def one_fc(path: Path) -> Path:
    b = ModelBuilder()
    x = b.tensor("input", [1, 20])
    y = b.tensor("fc", [1, 7])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [x, b.weights("fc/w", [7, 20]), b.weights("fc/b", [7])], [y],
         fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    return b.write(path, [x], [y])


def small_cnn(path: Path, batch_signature: bool = False) -> Path:
    """conv 3x3 (8x8x3 -> 8x8x8, SAME, relu) -> depthwise 3x3 stride 2 -> avg pool 2x2 -> reshape
    -> fully connected 32 -> 10 -> softmax: every counting rule the issue names, in one model."""
    b = ModelBuilder()
    x = b.tensor("input", [1, 8, 8, 3], signature=[-1, 8, 8, 3] if batch_signature else None)
    c = b.tensor("conv", [1, 8, 8, 8])
    opt = conv_options(1, fb.Padding.SAME)
    opt.fusedActivationFunction = fb.ActivationFunctionType.RELU
    b.op(fb.BuiltinOperator.CONV_2D, [x, b.weights("conv/w", [8, 3, 3, 3]), b.weights("conv/b", [8])], [c],
         opt, fb.BuiltinOptions.Conv2DOptions)
    d = b.tensor("dw", [1, 4, 4, 8])
    b.op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [c, b.weights("dw/w", [1, 3, 3, 8]), b.weights("dw/b", [8])],
         [d], depthwise_options(2), fb.BuiltinOptions.DepthwiseConv2DOptions)
    p = b.tensor("pool", [1, 2, 2, 8])
    po = fb.Pool2DOptionsT()
    po.padding, po.strideW, po.strideH, po.filterWidth, po.filterHeight = fb.Padding.VALID, 2, 2, 2, 2
    b.op(fb.BuiltinOperator.AVERAGE_POOL_2D, [d], [p], po, fb.BuiltinOptions.Pool2DOptions)
    r = b.tensor("flat", [1, 32])
    ro = fb.ReshapeOptionsT()
    ro.newShape = [1, 32]
    b.op(fb.BuiltinOperator.RESHAPE, [p, b.tensor("flat/shape", [2], np.array([1, 32], np.int32), I32)], [r],
         ro, fb.BuiltinOptions.ReshapeOptions)
    f = b.tensor("logits", [1, 10])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [r, b.weights("fc/w", [10, 32]), b.weights("fc/b", [10])], [f],
         fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    s = b.tensor("probs", [1, 10])
    so = fb.SoftmaxOptionsT()
    so.beta = 1.0
    b.op(fb.BuiltinOperator.SOFTMAX, [f], [s], so, fb.BuiltinOptions.SoftmaxOptions)
    return b.write(path, [x], [s])


def deep_cnn(path: Path, blocks: int = 16, size: int = 24, channels: int = 16, lrn_after: int | None = None) -> Path:
    """A residual stack of 4 + 3 x ``blocks`` ops (16 blocks: 52), millisecond-scale like a real
    model and with tiny ops among big ones: stem conv 3x3 (size x size x 3 -> ``channels``), then per
    block depthwise 3x3, conv 1x1 (relu) and ADD of the block's input; then mean pool, reshape, fully
    connected 10. ``lrn_after=i`` puts a LOCAL_RESPONSE_NORMALIZATION (which XNNPACK does not take)
    after block i, so XNNPACK splits the model into two delegate partitions around it."""
    b = ModelBuilder()
    x = b.tensor("input", [1, size, size, 3])
    h = b.tensor("stem", [1, size, size, channels])
    opt = conv_options(1, fb.Padding.SAME)
    opt.fusedActivationFunction = fb.ActivationFunctionType.RELU
    b.op(fb.BuiltinOperator.CONV_2D, [x, b.weights("stem/w", [channels, 3, 3, 3]),
                                      b.weights("stem/b", [channels])], [h], opt, fb.BuiltinOptions.Conv2DOptions)
    for i in range(blocks):
        shape = [1, size, size, channels]
        d, c, s = (b.tensor(f"b{i}/{n}", shape) for n in ("dw", "pw", "add"))
        b.op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [h, b.weights(f"b{i}/dw/w", [1, 3, 3, channels]),
                                                    b.weights(f"b{i}/dw/b", [channels])],
             [d], depthwise_options(1), fb.BuiltinOptions.DepthwiseConv2DOptions)
        b.op(fb.BuiltinOperator.CONV_2D, [d, b.weights(f"b{i}/pw/w", [channels, 1, 1, channels]),
                                          b.weights(f"b{i}/pw/b", [channels])],
             [c], opt, fb.BuiltinOptions.Conv2DOptions)
        b.op(fb.BuiltinOperator.ADD, [c, h], [s], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
        h = s
        if lrn_after == i:
            n = b.tensor(f"b{i}/lrn", shape)
            lo = fb.LocalResponseNormalizationOptionsT()
            lo.radius, lo.bias, lo.alpha, lo.beta = 2, 1.0, 1e-4, 0.75
            b.op(fb.BuiltinOperator.LOCAL_RESPONSE_NORMALIZATION, [h], [n], lo,
                 fb.BuiltinOptions.LocalResponseNormalizationOptions)
            h = n
    m = b.tensor("mean", [1, channels])
    mo = fb.ReducerOptionsT()
    mo.keepDims = False
    b.op(fb.BuiltinOperator.MEAN, [h, b.tensor("mean/axes", [2], np.array([1, 2], np.int32), I32)], [m],
         mo, fb.BuiltinOptions.ReducerOptions)
    r = b.tensor("flat", [1, channels])
    ro = fb.ReshapeOptionsT()
    ro.newShape = [1, channels]
    b.op(fb.BuiltinOperator.RESHAPE, [m, b.tensor("flat/shape", [2], np.array([1, channels], np.int32), I32)],
         [r], ro, fb.BuiltinOptions.ReshapeOptions)
    f = b.tensor("logits", [1, 10])
    b.op(fb.BuiltinOperator.FULLY_CONNECTED, [r, b.weights("fc/w", [10, channels]), b.weights("fc/b", [10])],
         [f], fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    return b.write(path, [x], [f])


def run_litert(path: Path) -> list[tuple[int, ...]]:
    """Invoke the model once in LiteRT; the output shapes the runtime computed."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.ones(d["shape"], d["dtype"]))
    it.invoke()
    return [tuple(it.get_tensor(d["index"]).shape) for d in it.get_output_details()]


VARIANTS = ("float16", "dynamic_int8", "weight_only_int8", "int8", "int16x8", "mixed")


def make_variant(f32: Path, scheme: str, dest: Path) -> Path:
    """``f32`` (a small_cnn) quantized into ``scheme`` with ai-edge-quantizer, written to ``dest``."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe

    q = quantizer.Quantizer(str(f32))
    if scheme == "float16":
        q.add_weight_only_config(".*", "*", 16, qtyping.QuantGranularity.TENSORWISE,
                                 algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif scheme == "mixed":
        # Only the first conv (the regex is searched in its output tensor name, "conv;").
        q.add_static_config("conv;", "*", 8, 8)
    else:
        q.load_quantization_recipe({
            "dynamic_int8": recipe.dynamic_wi8_afp32, "weight_only_int8": recipe.weight_only_wi8_afp32,
            "int8": recipe.static_wi8_ai8, "int16x8": recipe.static_wi8_ai16}[scheme]())
    rng = np.random.default_rng(1)
    calibration = {"serving_default": [{"input": rng.standard_normal((1, 8, 8, 3)).astype(np.float32)}
                                       for _ in range(4)]}
    result = q.quantize(q.calibrate(calibration) if q.need_calibration else None)
    result.export_model(str(dest), overwrite=True)
    return dest
