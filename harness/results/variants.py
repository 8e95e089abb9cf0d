"""Variants against their float32 base, on the same board: pairing, speed-up, fidelity and the
collapse rules. Pure: summaries in, judgements out (tables and JSON are built from them).

A *variant* is a model with a recipe file (harness.models.recipes), which names its base by
sha256; a run that compares variants records, in run.json, ``variants`` (each variant's file
sha256, kind, name, base_sha256 and recipe path) and ``collapse_threshold`` (``VariantSet``),
so `harness show` judges a stored run exactly as `harness run` did. A variant's *base run* is
the benchmark of its base on the same target with the same thread count, in the same run.

- **Speed-up**: the base's median Invoke over the variant's (above 1: the variant is faster),
  with its 95 % interval (harness.stats.mean_ratio_interval) over independent units: the
  per-process medians of Invoke when both ran 2 processes or more (``--processes``), else the
  per-block medians of Invoke (a block is (process, index), harness.results.benchmark.Block).
- **Fidelity** (harness.results.fidelity) compares the outputs both returned from the board in
  their evaluation passes; **accuracy** is each one's own, against the eval set's labels.
- **Collapse** (flag ``accuracy_collapse``): with labels, an accuracy more than
  ``collapse_threshold`` points below the base's; without them, a top-1 agreement with the
  base under 50 % or a cosine similarity under 0.9. A collapsed variant has no speed-up: it is
  never ranked as one, and `harness run` exits 1.
- **Unsupported** (flag ``unsupported``): the board's runtime cannot run the model at all (error
  code ``unsupported_model``: harness.models.micro for TFLite Micro); a result of the matrix, not
  a failure of the run.
- **Repaired** (flag ``repaired_external_buffers``): the model was sent with its offset buffers
  inlined (a ``repair`` message in its record; harness.models.micro).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import stats
from harness.errors import MeasurementError
from harness.models.micro import UNSUPPORTED_CODE
from harness.results.benchmark import Benchmark
from harness.results.fidelity import Accuracy, Fidelity, fidelity
from harness.results.summary import BenchmarkSummary

log = logging.getLogger(__name__)

COLLAPSE = "accuracy_collapse"
UNSUPPORTED = "unsupported"
REPAIRED = "repaired_external_buffers"
FLAGS = (COLLAPSE, UNSUPPORTED, REPAIRED)
COLLAPSE_POINTS = 10.0  # default --collapse-threshold: accuracy points below the base
MIN_AGREEMENT = 0.5  # without labels: top-1 agreement with the base under this is a collapse
MIN_COSINE = 0.9  # ... and so is a mean cosine similarity under this


@dataclass(frozen=True)
class VariantInfo:
    """A variant file of the run: its sha256, and what its recipe says (kind, name, base)."""

    sha256: str
    kind: str
    name: str
    base_sha256: str
    recipe: str  # the recipe file's path

    def to_json(self) -> dict[str, Any]:
        """The ``variant`` object of `harness run --json`."""
        return {"kind": self.kind, "name": self.name, "base_sha256": self.base_sha256, "recipe": self.recipe}


@dataclass(frozen=True)
class VariantSet:
    """The variants of a run and the collapse threshold it judges them with."""

    infos: tuple[VariantInfo, ...] = ()
    collapse_points: float = COLLAPSE_POINTS

    def info(self, sha256: str) -> VariantInfo | None:
        return next((v for v in self.infos if v.sha256 == sha256), None)

    def is_base(self, sha256: str) -> bool:
        return any(v.base_sha256 == sha256 for v in self.infos)

    def as_meta(self) -> dict[str, Any]:
        """What run.json keeps of it."""
        return {"variants": [{"sha256": v.sha256, **v.to_json()} for v in self.infos],
                "collapse_threshold": self.collapse_points}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> VariantSet:
        """The set a run recorded in run.json (empty for runs without variants)."""
        infos = tuple(VariantInfo(str(v["sha256"]), str(v["kind"]), str(v["name"]), str(v["base_sha256"]),
                                  str(v["recipe"])) for v in meta.get("variants") or [])
        return cls(infos, float(meta.get("collapse_threshold") or COLLAPSE_POINTS))

    def judge(self, s: BenchmarkSummary, among: Sequence[BenchmarkSummary]) -> Judged:
        """``s`` judged against its base run among ``among`` (the run's summaries so far)."""
        b = s.benchmark
        info = self.info(b.model_sha256)
        base = None
        if info is not None:
            base = next((o for o in among if o.benchmark.target == b.target and o.benchmark.threads == b.threads
                         and o.benchmark.model_sha256 == info.base_sha256), None)
        fid = _fidelity(s, base) if base is not None else None
        acc, base_acc = s.accuracy, base.accuracy if base is not None else None
        collapsed = collapse(acc, base_acc, fid, self.collapse_points) if base is not None else None
        role = "variant" if info is not None else "base" if self.is_base(b.model_sha256) else None
        return Judged(summary=s, role=role, variant=info, base=base, fidelity=fid,
                      speedup=None if collapsed or base is None else speedup(base, s),
                      collapse=collapsed, unsupported=unsupported(b), repairs=repairs(b))

    def judge_all(self, summaries: Sequence[BenchmarkSummary]) -> list[Judged]:
        return [self.judge(s, summaries) for s in summaries]


@dataclass(frozen=True)
class Speedup:
    """Base median Invoke / variant median Invoke, its 95 % interval (None with fewer than 2
    units a side), and the units the interval came from ("process" or "block" medians)."""

    value: float
    ci: tuple[float, float] | None
    units: str
    n_base: int
    n_variant: int

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "units": self.units,
                "n": [self.n_base, self.n_variant]}


@dataclass(frozen=True)
class Judged:
    """One benchmark as the comparison sees it: its variant (None for a model without a
    recipe), its base run on the same board, and what was found."""

    summary: BenchmarkSummary
    role: str | None  # "variant", "base" (of a variant of the run), or None (neither)
    variant: VariantInfo | None
    base: BenchmarkSummary | None
    fidelity: Fidelity | None
    speedup: Speedup | None  # None when collapsed, without a base run, or without Invoke samples
    collapse: str | None  # why it counts as collapsed (the figures), or None
    unsupported: str | None  # why the board's runtime cannot run it, or None
    repairs: tuple[dict[str, Any], ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        found = {COLLAPSE: self.collapse is not None, UNSUPPORTED: self.unsupported is not None,
                 REPAIRED: any(r.get("what") == "external_buffers" for r in self.repairs)}
        return tuple(f for f in FLAGS if found[f])

    @property
    def accuracy_change(self) -> float | None:
        """The variant's accuracy minus its base's, in points (None unless both have one)."""
        acc, base = self.summary.accuracy, self.base.accuracy if self.base is not None else None
        return None if acc is None or base is None else 100 * (acc.top1 - base.top1)

    def to_json(self, run_id: str | None) -> dict[str, Any]:
        """The `harness run --json` object: the benchmark's, plus variant, fidelity, speedup and
        flags (accuracy is the benchmark's own)."""
        return {**self.summary.to_json(run_id), "variant": self.variant.to_json() if self.variant else None,
                "fidelity": self.fidelity.to_json() if self.fidelity else None,
                "speedup": self.speedup.to_json() if self.speedup else None, "flags": list(self.flags)}


def _fidelity(s: BenchmarkSummary, base: BenchmarkSummary) -> Fidelity | None:
    if s.eval_outputs is None or base.eval_outputs is None:
        return None
    try:
        return fidelity(s.eval_outputs, base.eval_outputs, base.benchmark.model_sha256)
    except MeasurementError as exc:  # not the same samples: no figure rather than a wrong one
        log.warning("%s: no fidelity for %s: %s", s.benchmark.target, s.benchmark.model, exc.message)
        return None


def collapse(acc: Accuracy | None, base_acc: Accuracy | None, fid: Fidelity | None,
             points: float = COLLAPSE_POINTS) -> str | None:
    """Why a variant counts as collapsed against its base on the same board, or None.

    With both accuracies: more than ``points`` below the base. Without: a top-1 agreement under
    MIN_AGREEMENT or a cosine under MIN_COSINE. Nothing to judge by (no eval pass): None.
    """
    if acc is not None and base_acc is not None:
        drop = 100 * (base_acc.top1 - acc.top1)
        if drop > points:
            return (f"accuracy {100 * acc.top1:.1f} % against {100 * base_acc.top1:.1f} % for the base: "
                    f"{drop:.1f} points below, more than {points:g}")
        return None
    if fid is None:
        return None
    if fid.top1_agreement < MIN_AGREEMENT:
        return f"top-1 agreement with the base {100 * fid.top1_agreement:.1f} %, under {100 * MIN_AGREEMENT:g} %"
    if fid.cosine < MIN_COSINE:
        return f"cosine similarity with the base {fid.cosine:.3f}, under {MIN_COSINE:g}"
    return None


def invoke_units(b: Benchmark, by_process: bool) -> list[float]:
    """The units of a speed-up interval: per-process medians of Invoke, or per-block ones."""
    if by_process:
        return [stats.median(g) for g in b.by_process("with", "invoke")]
    blocks: dict[tuple[int, int], list[int]] = {}
    for blk in b.blocks:
        if blk.mode == "with" and blk.stages.get("invoke"):
            blocks.setdefault((blk.process, blk.index), []).extend(blk.stages["invoke"])
    return [stats.median(v) for v in blocks.values()]


def speedup(base: BenchmarkSummary, variant: BenchmarkSummary) -> Speedup | None:
    """The variant's speed-up over its base (module docstring); None without Invoke samples."""
    if base.invoke is None or variant.invoke is None or not variant.invoke.median:
        return None
    value = base.invoke.median / variant.invoke.median
    by_process = min(len(base.benchmark.by_process("with", "invoke")),
                     len(variant.benchmark.by_process("with", "invoke"))) >= 2
    a, b = invoke_units(base.benchmark, by_process), invoke_units(variant.benchmark, by_process)
    return Speedup(value, stats.mean_ratio_interval(a, b, value), "process" if by_process else "block",
                   len(a), len(b))


def unsupported(b: Benchmark) -> str | None:
    """The reason the board's runtime cannot run the model, from its error (code unsupported_model)."""
    error = b.error or {}
    return str(error.get("message")) if error.get("code") == UNSUPPORTED_CODE else None


def repairs(b: Benchmark) -> tuple[dict[str, Any], ...]:
    """The ``repair`` messages of the record, each repair once (every process sends its own)."""
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for msg in b.extra:
        if msg.get("type") == "repair":
            seen.setdefault((msg.get("what"), msg.get("sha256")), msg)
    return tuple(seen.values())
