"""Fidelity and accuracy from the outputs that came back from the board: pure functions.

The evaluation pass (``harness run --eval``; PROTOCOL.md, eval mode) stores the raw outputs of
every sample as the board's runtime returned them (int8 stays int8) together with each output's
dtype, shape and quantization (the pass's ``model`` message). ``eval_outputs`` reads them back
from a stored Benchmark; nothing is recomputed on the host. Outputs are compared as real values:
codes are dequantized with each model's own output scale and zero point,
x = (q - zero_point) * scale, so an int8 variant and its float32 base are compared on one scale.

Definitions, all on output 0 (a classifier's scores; a model's first output), per sample:

- **cosine**: the cosine similarity of the variant's and the reference's flattened output 0 for
  each sample, then the mean over samples. Each sample weighs the same, as in top-1 agreement
  and accuracy: cosine over all samples concatenated would let a few samples with large outputs
  hide a variant that collapsed on the others, and a per-sample cosine does not change when a
  variant scales its outputs (a different output scale, a softmax temperature). Conventions: two
  zero vectors agree (1.0), a zero vector and another do not (0.0), and a sample with a value that
  is not finite (NaN, inf) in either output counts 0.0. Issue 10 calls a variant whose cosine is
  under 0.9 a collapse.
- **max_abs_error**: the largest |variant - reference| over every value of output 0 of every
  sample, in real units; None when a value is not finite.
- **top1_agreement**: the fraction of samples whose argmax of output 0 is the same in both; a
  sample with a value that is not finite never agrees. (Argmax is taken on real values; for codes
  it is the same as on the raw codes, since dequantizing is increasing.)
- **accuracy** (with labels): ``n`` samples, ``top1`` the fraction whose argmax of output 0 is the
  label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import MeasurementError
from harness.results.benchmark import Benchmark


@dataclass(frozen=True, eq=False)
class OutputSeries:
    """One output of the model for every sample: ``values`` (N, elements) exactly as the board
    sent them, in the output's own dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
    values: np.ndarray

    def real(self) -> np.ndarray:
        """The values as real numbers (float64): codes dequantized, floats widened."""
        v = self.values.astype(np.float64)
        if self.scale > 0 and np.dtype(self.dtype).kind in "iu":
            return (v - self.zero_point) * self.scale
        return v


@dataclass(frozen=True, eq=False)
class EvalOutputs:
    """The outputs of one model's evaluation pass on one board, read from the store."""

    target: str
    model: str
    model_sha256: str
    source: str  # the eval set: the --eval file's name, "inputs" or "random"
    set_sha256: str  # the samples before each model's conversion (harness.models.evalset)
    samples: int
    outputs: tuple[OutputSeries, ...]
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Fidelity:
    """A variant's outputs against its reference's on the same samples and board (module docstring)."""

    reference_sha256: str
    cosine: float
    max_abs_error: float | None
    top1_agreement: float

    def to_json(self) -> dict[str, Any]:
        return {"reference_sha256": self.reference_sha256, "cosine": self.cosine,
                "max_abs_error": self.max_abs_error, "top1_agreement": self.top1_agreement}


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy on the board: ``top1`` of ``n`` labelled samples."""

    n: int
    top1: float

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "top1": self.top1}


def _series(spec: dict[str, Any], values: list[Any], n: int, where: str) -> OutputSeries:
    shape = tuple(int(d) for d in spec.get("shape") or ())
    size = math.prod(shape)
    if len(values) != n * size:
        raise MeasurementError(f"{where}: output {spec.get('name')!r} has {len(values)} values for {n} "
                               f"samples of {size}")
    scale, zero_point = (spec.get("quantization") or [0.0, 0])[:2]
    array = np.array(values, dtype=np.dtype(spec["dtype"])).reshape(n, size)
    return OutputSeries(str(spec.get("name")), shape, str(spec["dtype"]), float(scale), int(zero_point), array)


def eval_outputs(b: Benchmark) -> EvalOutputs | None:
    """The stored outputs of ``b``'s evaluation pass, or None when it had none or it was cut short.

    Raises MeasurementError when the stored chunks do not hold every sample exactly once, in order.
    """
    rec = b.eval_pass
    if rec is None or rec.summary is None:
        return None
    where = f"{b.target}: evaluation of {b.model}"
    n = int(rec.summary["samples"])
    specs = list(rec.model_info.get("outputs") or [])
    values: list[list[Any]] = [[] for _ in specs]
    expected = 0
    for chunk in rec.chunks:
        if int(chunk["first"]) != expected or len(chunk["outputs"]) != len(specs):
            raise MeasurementError(f"{where}: an eval message starts at sample {chunk['first']} with "
                                   f"{len(chunk['outputs'])} outputs, expected sample {expected} with {len(specs)}")
        for held, got in zip(values, chunk["outputs"], strict=True):
            held.extend(got)
        expected += int(chunk["count"])
    if expected != n or not specs:
        raise MeasurementError(f"{where}: the board sent outputs of {expected} samples of {n}")
    labels = rec.eval_set.get("labels")
    if labels is not None and len(labels) != n:
        raise MeasurementError(f"{where}: {len(labels)} labels for {n} samples")
    return EvalOutputs(
        target=b.target, model=b.model, model_sha256=b.model_sha256, source=str(rec.eval_set.get("source")),
        set_sha256=str(rec.eval_set.get("set_sha256")), samples=n,
        outputs=tuple(_series(s, v, n, where) for s, v in zip(specs, values, strict=True)),
        labels=np.array(labels, dtype=np.int64) if labels is not None else None)


def _finite_rows(a: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(a), axis=1)


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine similarity of row i of ``a`` and row i of ``b`` (N x K), with the module's
    conventions for zero and non-finite rows. Each row is first divided by its largest magnitude
    (a cosine does not change), so no sum overflows, and a row against itself gives exactly 1."""
    ok = _finite_rows(a) & _finite_rows(b)
    a = np.where(ok[:, None], a, 0.0)
    b = np.where(ok[:, None], b, 0.0)
    peak_a = np.max(np.abs(a), axis=1, initial=0.0)
    peak_b = np.max(np.abs(b), axis=1, initial=0.0)
    zero_a, zero_b = peak_a == 0, peak_b == 0
    a = a / np.where(zero_a, 1.0, peak_a)[:, None]
    b = b / np.where(zero_b, 1.0, peak_b)[:, None]
    dot = np.sum(a * b, axis=1)
    norms = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    cos = np.clip(dot / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
    cos = np.where(zero_a & zero_b, 1.0, np.where(zero_a | zero_b, 0.0, cos))
    return np.where(ok, cos, 0.0)


def top1(a: np.ndarray) -> np.ndarray:
    """Argmax of each row; -1 for a row with a value that is not finite."""
    return np.where(_finite_rows(a), np.argmax(np.where(np.isfinite(a), a, 0.0), axis=1), -1)


def fidelity(variant: EvalOutputs, reference: EvalOutputs, reference_sha256: str) -> Fidelity:
    """``variant``'s output 0 against ``reference``'s on the same samples (module docstring).

    ``reference_sha256`` names the reference model in the result (its model_sha256). Raises
    MeasurementError when the two did not run the same samples (their eval sets differ) or their
    first outputs differ in size.
    """
    if variant.set_sha256 != reference.set_sha256 or variant.samples != reference.samples:
        raise MeasurementError(
            f"{variant.model} and {reference.model} were evaluated on different samples ({variant.samples} of "
            f"set {variant.set_sha256[:12]}, {reference.samples} of set {reference.set_sha256[:12]})",
            target=variant.target, hint="evaluate both in one run, with the same --eval file or seed")
    a, b = variant.outputs[0].real(), reference.outputs[0].real()
    if a.shape != b.shape:
        raise MeasurementError(f"output 0 of {variant.model} has {a.shape[1]} values per sample, "
                               f"{reference.model}'s {b.shape[1]}", target=variant.target)
    diff = np.abs(a - b)
    finite = bool(np.all(np.isfinite(diff)))
    t_a, t_b = top1(a), top1(b)
    return Fidelity(reference_sha256=reference_sha256, cosine=float(np.mean(cosine_per_sample(a, b))),
                    max_abs_error=float(np.max(diff, initial=0.0)) if finite else None,
                    top1_agreement=float(np.mean((t_a == t_b) & (t_a >= 0))))


def accuracy(outputs: EvalOutputs) -> Accuracy | None:
    """Top-1 accuracy against the labels (argmax of output 0), or None without labels."""
    if outputs.labels is None:
        return None
    return Accuracy(n=outputs.samples, top1=float(np.mean(top1(outputs.outputs[0].real()) == outputs.labels)))
