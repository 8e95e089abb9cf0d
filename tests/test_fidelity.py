"""Fidelity, accuracy and the eval set, as pure functions: exact fixtures and hypothesis properties.

The board side (the outputs really coming back from local and mcu-sim) is tests/test_eval_pass.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device_agents.linux.tflite_agent import INPUT_POOL, EvalChunks, random_input
from harness.errors import ConfigError, MeasurementError
from harness.models import evalset
from harness.models.evalset import InputSpec
from harness.results.benchmark import from_lines
from harness.results.fidelity import (
    EvalOutputs,
    OutputSeries,
    accuracy,
    cosine_per_sample,
    eval_outputs,
    fidelity,
    top1,
)
from harness.results.summary import summarize


def outputs(values: Any, *, dtype: str = "float32", scale: float = 0.0, zero_point: int = 0,
            labels: list[int] | None = None, set_sha256: str = "s") -> EvalOutputs:
    v = np.array(values, dtype=dtype)
    series = OutputSeries("y", (1, v.shape[1]), dtype, scale, zero_point, v)
    return EvalOutputs(target="t", model="m.tflite", model_sha256="ab" * 32, source="e.npz", set_sha256=set_sha256,
                       samples=len(v), outputs=(series,),
                       labels=np.array(labels) if labels is not None else None)


# ------------------------------------------------------------------ exact fixtures

def test_cosine_per_sample_and_its_conventions() -> None:
    a = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0], [3, 4], [np.nan, 1]], float)
    b = np.array([[1, 0], [1, 0], [-1, -1], [0, 0], [2, 0], [4, 3], [1, 1]], float)
    assert cosine_per_sample(a, b).tolist() == [1.0, 0.0, -1.0, 1.0, 0.0, 24 / 25, 0.0]


def test_fidelity_by_hand() -> None:
    variant = outputs([[1, 2, 3], [0, 1, 0]])
    reference = outputs([[1, 2, 3], [1, 0, 0]])
    f = fidelity(variant, reference, "cd" * 32)
    assert f.to_json() == {"reference_sha256": "cd" * 32, "cosine": 0.5, "max_abs_error": 1.0, "top1_agreement": 0.5}


def test_int8_outputs_are_dequantized_with_their_own_scale_and_zero_point() -> None:
    codes = outputs([[-128, 0, 127]], dtype="int8", scale=0.5, zero_point=-128)
    assert codes.outputs[0].real().tolist() == [[0.0, 64.0, 127.5]]
    # the same real values as float32: nothing between them
    f = fidelity(codes, outputs([[0.0, 64.0, 127.5]]), "r")
    assert (f.cosine, f.max_abs_error, f.top1_agreement) == (1.0, 0.0, 1.0)


def test_accuracy_by_hand_and_without_labels() -> None:
    got = accuracy(outputs([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], labels=[1, 0, 0, 0]))
    assert got is not None and got.to_json() == {"n": 4, "top1": 0.75}
    assert accuracy(outputs([[0.1, 0.9]])) is None


def test_non_finite_outputs_never_agree_and_have_no_max_error() -> None:
    f = fidelity(outputs([[np.inf, 0], [1, 0]]), outputs([[1, 0], [1, 0]]), "r")
    assert (f.cosine, f.max_abs_error, f.top1_agreement) == (0.5, None, 0.5)
    assert top1(np.array([[np.nan, 1.0], [0.0, 2.0]])).tolist() == [-1, 1]


def test_different_samples_are_refused() -> None:
    with pytest.raises(MeasurementError, match="different samples"):
        fidelity(outputs([[1, 0]], set_sha256="a"), outputs([[1, 0]], set_sha256="b"), "r")
    with pytest.raises(MeasurementError, match="values per sample"):
        fidelity(outputs([[1, 0]]), outputs([[1, 0, 0]]), "r")


# ------------------------------------------------------------------ properties

rows = st.integers(1, 12)
width = st.integers(1, 8)
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@st.composite
def matrices(draw: st.DrawFn, n: int | None = None, k: int | None = None) -> np.ndarray:
    shape = (n or draw(rows), k or draw(width))
    return draw(hnp.arrays(np.float64, shape, elements=finite))


@given(matrices())
def test_a_thing_agrees_with_itself(a: np.ndarray) -> None:
    assert cosine_per_sample(a, a).tolist() == [1.0] * len(a)
    f = fidelity(outputs(a, dtype="float64"), outputs(a, dtype="float64"), "r")
    assert (f.cosine, f.max_abs_error, f.top1_agreement) == (1.0, 0.0, 1.0)


@given(matrices(), st.floats(1e-3, 1e3))
def test_cosine_ignores_scale_and_flips_with_sign(a: np.ndarray, c: float) -> None:
    nonzero = np.max(np.abs(a), axis=1) > 0
    assert np.allclose(cosine_per_sample(a, c * a)[nonzero], 1.0)
    assert np.allclose(cosine_per_sample(a, -a)[nonzero], -1.0)


@given(st.data())
def test_cosine_is_symmetric_and_bounded(data: st.DataObject) -> None:
    a = data.draw(matrices())
    b = data.draw(matrices(*a.shape))
    ab, ba = cosine_per_sample(a, b), cosine_per_sample(b, a)
    assert np.array_equal(ab, ba) and np.all((ab >= -1) & (ab <= 1))


@given(st.data(), st.floats(1e-4, 10), st.integers(-128, 127), st.floats(1e-4, 10), st.integers(-128, 127))
def test_top1_does_not_depend_on_the_output_scale(data: st.DataObject, s1: float, z1: int, s2: float,
                                                  z2: int) -> None:
    codes = data.draw(hnp.arrays(np.int8, (data.draw(rows), data.draw(width))))
    labels = data.draw(st.lists(st.integers(0, codes.shape[1] - 1), min_size=len(codes), max_size=len(codes)))
    one = outputs(codes, dtype="int8", scale=s1, zero_point=z1, labels=labels)
    two = outputs(codes, dtype="int8", scale=s2, zero_point=z2, labels=labels)
    assert fidelity(one, two, "r").top1_agreement == 1.0
    assert accuracy(one) == accuracy(two)
    assert np.array_equal(top1(one.outputs[0].real()), np.argmax(codes, axis=1))


@given(st.data())
def test_fidelity_does_not_depend_on_the_sample_order(data: st.DataObject) -> None:
    a = data.draw(matrices())
    b = data.draw(matrices(*a.shape))
    perm = np.array(data.draw(st.permutations(range(len(a)))))
    f = fidelity(outputs(a, dtype="float64"), outputs(b, dtype="float64"), "r")
    g = fidelity(outputs(a[perm], dtype="float64"), outputs(b[perm], dtype="float64"), "r")
    assert g.max_abs_error == f.max_abs_error and g.top1_agreement == f.top1_agreement
    assert math.isclose(g.cosine, f.cosine, abs_tol=1e-12)


# ------------------------------------------------------------------ from the store

def _record(chunks: list[dict[str, Any]], labels: list[int] | None, summary: bool = True) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {"type": "eval_set", "source": "e.npz", "file": "m.npz", "samples": 3, "set_sha256": "s", "labels": labels},
        {"type": "hello", "mode": "eval"},
        {"type": "model", "outputs": [{"name": "y", "shape": [1, 2], "dtype": "int8", "quantization": [0.5, 1]},
                                      {"name": "z", "shape": [1], "dtype": "float32", "quantization": [0.0, 0]}]},
        *({"type": "eval", **c} for c in chunks)]
    if summary:
        lines.append({"type": "eval_summary", "samples": 3, "wall_ns": 5})
    return lines


HEADER = {"target": "t", "model": "m.tflite", "model_sha256": "ab" * 32, "threads": 1,
          "plan": {"eval": {"source": "e.npz", "path": "e.npz", "samples": None}}}
CHUNKS = [{"first": 0, "count": 2, "outputs": [[1, 5, 3, -1], [0.5, 0.25]]},
          {"first": 2, "count": 1, "outputs": [[-128, 127], [2.0]]}]


def test_stored_chunks_become_outputs_and_accuracy() -> None:
    lines = [{"type": "hello", "board": {}}, {"type": "summary"}, *_record(CHUNKS, [1, 0, 0])]
    b = from_lines(HEADER, lines)
    assert b.hello == {"type": "hello", "board": {}}  # the pass's hello is not a process's
    got = eval_outputs(b)
    assert got is not None and got.samples == 3 and got.source == "e.npz"
    assert got.outputs[0].values.tolist() == [[1, 5], [3, -1], [-128, 127]]
    assert got.outputs[0].real().tolist() == [[0.0, 2.0], [1.0, -1.0], [-64.5, 63.0]]
    assert got.outputs[1].values.dtype == np.float32 and got.outputs[1].values.tolist() == [[0.5], [0.25], [2.0]]
    assert accuracy(got) is not None and accuracy(got).top1 == pytest.approx(2 / 3)  # type: ignore[union-attr]
    as_json = summarize(b).to_json()
    assert as_json["eval"] == {"source": "e.npz", "samples": 3}
    assert as_json["accuracy"] == {"n": 3, "top1": 2 / 3}


def test_a_pass_cut_short_or_inconsistent_gives_no_figures() -> None:
    cut = from_lines(HEADER, _record(CHUNKS[:1], None, summary=False))
    assert eval_outputs(cut) is None and not cut.complete
    assert summarize(cut).to_json()["accuracy"] is None
    gap = from_lines(HEADER, _record([CHUNKS[1]], None))
    with pytest.raises(MeasurementError, match="expected sample 0"):
        eval_outputs(gap)
    assert summarize(gap).to_json()["eval"] is None  # logged, not a crash of `harness show`


def test_eval_chunks_are_bounded_and_cover_every_sample() -> None:
    sent: list[dict[str, Any]] = []
    chunks = EvalChunks(2, sent.append, now=lambda: 0.0)  # a clock that stands still: only size cuts
    for k in range(5000):
        chunks.add([[k] * 3, [float(k)]])
    chunks.flush()
    assert all(sum(map(len, m["outputs"])) <= 16384 for m in sent)
    assert [m["first"] for m in sent] == [sum(x["count"] for x in sent[:i]) for i in range(len(sent))]
    assert sum(m["count"] for m in sent) == 5000 and sent[-1]["outputs"][1][-1] == 4999.0
    # a slow model: a message per EVAL_CHUNK_S however few values it holds
    t = [0.0]
    slow: list[dict[str, Any]] = []
    chunks = EvalChunks(1, slow.append, now=lambda: t[0])
    for k in range(3):
        t[0] += 1.5
        chunks.add([[k]])
    assert [m["first"] for m in slow] == [0, 1, 2]


# ------------------------------------------------------------------ the eval set

def test_quantize_rounds_half_away_from_zero_and_clips() -> None:
    spec = InputSpec("x", (4,), "int8", 1.0, 0)
    assert evalset.quantize(np.array([-0.5, 0.5, 1.5, 2.5]), spec).tolist() == [-1, 1, 2, 3]
    assert evalset.quantize(np.array([1000.0, -1000.0]), InputSpec("x", (2,), "int8", 0.5, 3)).tolist() == [127, -128]
    assert evalset.quantize(np.array([0.0, 1.0]), InputSpec("x", (2,), "uint8", 1 / 255, 0)).tolist() == [0, 255]


def test_one_real_valued_set_reaches_a_float_and_an_int8_model_alike() -> None:
    real = np.array([[[0.0, 0.25]], [[0.5, 1.0]]], np.float32)
    eset = evalset.EvalSet("e.npz", ("img",), (real,), (None,))
    as_float = evalset.for_model(eset, [InputSpec("img", (1, 2), "float32")], "base")
    as_int8 = evalset.for_model(eset, [InputSpec("img", (1, 2), "int8", 1 / 255, -128)], "variant")
    assert as_float["img"].tobytes() == real.tobytes()
    assert as_int8["img"].dtype == np.int8 and as_int8["img"].tolist() == [[[-128, -64]], [[0, 127]]]
    # codes (random draws for an int8-only model) reach a float model as their real values
    codes = evalset.EvalSet("random", ("img",), (as_int8["img"],), ((1 / 255, -128),))
    assert np.allclose(evalset.for_model(codes, [InputSpec("img", (1, 2), "float32")], "m")["img"],
                       (as_int8["img"].astype(float) + 128) / 255)
    assert evalset.for_model(codes, [InputSpec("img", (1, 2), "int8", 1 / 255, -128)], "m")["img"] is as_int8["img"]
    with pytest.raises(ConfigError, match="takes float32"):  # integers from a file are never guessed as reals
        evalset.for_model(evalset.EvalSet("f", ("img",), (as_int8["img"],), (None,)),
                          [InputSpec("img", (1, 2), "float32")], "m")


def test_random_sets_are_the_timed_loops_inputs() -> None:
    specs = [InputSpec("a", (1, 3), "float32"), InputSpec("b", (2,), "int8", 0.1, 0)]
    got = evalset.random_set(specs, 7, INPUT_POOL)
    rng = np.random.default_rng(7)  # what tflite_agent.setup draws for the same model and --seed
    pool = [[random_input({"name": s.name, "shape": list(s.shape), "dtype": s.dtype}, rng, np) for s in specs]
            for _ in range(INPUT_POOL)]
    for i in range(2):
        assert np.array_equal(got.columns[i], np.stack([p[i] for p in pool]))
    assert got.codes == (None, (0.1, 0)) and got.sha256() == evalset.random_set(specs, 7, INPUT_POOL).sha256()
    assert got.sha256() != evalset.random_set(specs, 8, INPUT_POOL).sha256()


def test_eval_files_x_y_by_name_one_hot_and_their_errors(tmp_path: Path) -> None:
    spec = [InputSpec("img", (1, 2), "float32")]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.savez(tmp_path / "xy.npz", x=x, y=np.array([1, 0, 1]))
    got = evalset.load(tmp_path / "xy.npz", spec, "xy.npz")
    assert got.samples == 3 and got.columns[0].shape == (3, 1, 2) and got.labels.tolist() == [1, 0, 1]  # type: ignore[union-attr]
    np.savez(tmp_path / "named.npz", img=x[:, None], y=np.eye(2)[[0, 1, 1]])
    named = evalset.load(tmp_path / "named.npz", spec, "named.npz", limit=2)
    assert named.samples == 2 and named.labels.tolist() == [0, 1]  # type: ignore[union-attr]
    np.savez(tmp_path / "short.npz", x=x, y=np.array([1, 0]))
    with pytest.raises(ConfigError, match="2 labels for 3 samples") as err:
        evalset.load(tmp_path / "short.npz", spec, "short.npz")
    assert err.value.code == "bad_inputs"
    np.save(tmp_path / "wide.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ConfigError, match=r"wide.npy has shape \(3, 5\) but input 'img' needs \(1, 2\)"):
        evalset.load(tmp_path / "wide.npy", spec, "wide.npy")


def test_written_samples_are_reproducible_and_keep_every_name(tmp_path: Path) -> None:
    arrays = {"file": np.zeros((2, 3), np.int8), "serving_default_image:0": np.ones((2, 1), np.float32)}
    evalset.write(arrays, tmp_path / "a.npz")
    evalset.write(arrays, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = np.load(tmp_path / "a.npz")
    assert sorted(back.keys()) == sorted(arrays) and back["file"].dtype == np.int8


@settings(max_examples=50)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=20), st.floats(1e-3, 1.0),
       st.integers(-128, 127))
def test_quantized_samples_are_the_nearest_code(values: list[float], scale: float, zp: int) -> None:
    spec = InputSpec("x", (len(values),), "int8", scale, zp)
    q = evalset.quantize(np.array(values), spec).astype(int)
    for v, code in zip(values, q, strict=True):
        ideal = v / scale + zp
        if -128 <= ideal <= 127:
            assert abs(code - ideal) <= 0.5 + 1e-9
        else:
            assert code == (127 if ideal > 127 else -128)
