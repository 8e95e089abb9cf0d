"""Comparing two benchmarks: on which units, with which test, and whether they may be compared at all.

The unit of the test. Iterations within one run are correlated (drift, heat, caches, what else the
machine does), so a test over thousands of raw samples calls any difference significant. The
units here are independent enough to test:
- ``block-median``: each ABBA block's median of the metric (a block is (process, index):
  harness.results.benchmark.Block), so what changes between blocks is what the test sees;
- ``run-median``: each process's median (``harness run --processes N``), when both sides ran at
  least MIN_RUN_UNITS processes: it also sees what changes between processes (memory layout,
  cores, the machine's load), which block medians of one process cannot.

The test: Mann-Whitney U (harness.stats.mann_whitney_u), robust to a block an outside program
slowed down; Welch's t (harness.stats.welch_t) when there are too few units for Mann-Whitney
ever to reach significance (3 against 3: its smallest p is 0.1). The choice depends on the
numbers of units only, never on their values. The ratio is candidate / baseline of the medians
of the units (above 1: the candidate is slower), with its 95 % bootstrap interval
(harness.stats.ratio_interval).

Streams (`harness stream` runs) compare the same way, on their latency from the schedule
(``latency``: each window's median; ``p99``: each window's p99): a window is a tenth of the
stream's schedule (STREAM_WINDOWS), long enough apart that what the board did in one barely
predicts the next, where consecutive frames share every passing disturbance. A stream's facts add
``schedule`` (arrivals, rate, deadline, policy), which two streams must share unless it is the one
thing compared.

Identity: each side has facts (FACTS). A comparison compares one of them (its subject) and
refuses pairs that differ in any other, unless forced: comparing boards needs the same model and
threads, while a board's runtime, delegate and harness version are part of the board as deployed
and are shown, not refused (AS_DEPLOYED); comparing threads, models or variants needs everything
else equal. Two runs compared with each other (``by`` "run") compare the one fact they differ in
(none: a repeat, as a CI gate runs it), or a board as deployed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import stats
from harness.errors import ConfigError, HarnessError
from harness.results import store, stream_store
from harness.results.benchmark import SCHEMA_VERSION, Benchmark
from harness.results.stream import StreamRecord, window_latencies

if TYPE_CHECKING:
    from harness.models.recipes import Recipe

METRICS = {"invoke": "Invoke time", "loop": "loop time (with Invoke)",
           "latency": "latency from the schedule", "p99": "p99 latency from the schedule"}
STREAM_METRICS = ("latency", "p99")
STREAM_WINDOWS = 10  # units per stream: enough for Mann-Whitney (10 against 10: p down to 1e-5)
BY = ("run", "board", "threads", "variant")
# Below this many processes on a side, its process medians are too few to test (3 against 3 is
# the fewest Welch's t can use with a t quantile under 5: t975(2) = 4.3); block medians are used.
MIN_RUN_UNITS = 3
MIN_UNITS = 2  # per side, for any test or interval
FACTS = ("board", "model", "threads", "runtime", "delegate", "harness", "schedule")
SUBJECT = {"board": "board", "threads": "threads", "variant": "model"}  # "run": the fact that differs
AS_DEPLOYED = ("runtime", "delegate", "harness")  # part of a board as deployed: shown beside it

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Side:
    """One benchmark (or stream) as one side of a comparison, with the run it belongs to."""

    benchmark: Benchmark | StreamRecord
    run_id: str
    harness_version: str | None = None
    base_sha256: str | None = None  # a variant's: the model it was made from (its recipe file)

    def facts(self) -> dict[str, str | None]:
        """What this side is, fact by fact (None where the board did not say)."""
        b = self.benchmark
        board = b.hello.get("board") or {}
        xnnpack = b.model_info.get("xnnpack")
        return {
            "board": ", ".join(str(board[k]) for k in ("model", "cpu") if board.get(k)) or None,
            "model": f"{b.model} ({b.model_sha256[:12]})",
            "threads": str(b.threads),
            "runtime": " ".join(x for x in (b.runtime, b.runtime_version) if x) or None,
            "delegate": None if xnnpack is None else "xnnpack" if xnnpack else "none",
            "harness": self.harness_version,
            "schedule": b.schedule if isinstance(b, StreamRecord) else None,
        }

    def units(self, metric: str, unit: str) -> list[float]:
        """The values the test compares: one per block (block-median) or per process (run-median)
        of the with-Invoke blocks, of the Invoke stage (metric "invoke") or the whole loop; of a
        stream, one per window of its schedule, the window's median (or p99) latency."""
        if isinstance(self.benchmark, StreamRecord):
            trial = self.benchmark.main
            q = 99.0 if metric == "p99" else 50.0
            return [stats.percentile(w, q) for w in window_latencies(trial, STREAM_WINDOWS)] if trial else []
        stage = "invoke" if metric == "invoke" else None
        if unit == "run-median":
            return [stats.median(g) for g in self.benchmark.by_process("with", stage)]
        groups: dict[tuple[int, int], list[int]] = {}
        for blk in self.benchmark.blocks:
            values = blk.loop_ns if stage is None else blk.stages.get(stage, ())
            if blk.mode == "with" and values:
                groups.setdefault((blk.process, blk.index), []).extend(values)
        return [stats.median(v) for v in groups.values()]

    def processes(self, metric: str) -> int:
        if isinstance(self.benchmark, StreamRecord):
            return 0
        return len(self.benchmark.by_process("with", "invoke" if metric == "invoke" else None))

    def to_json(self, median_ns: float | None) -> dict[str, Any]:
        b = self.benchmark
        return {"target": b.target, "model": b.model, "threads": b.threads, "run_id": self.run_id,
                "model_sha256": b.model_sha256, "board": self.facts()["board"], "runtime": b.runtime,
                "runtime_version": b.runtime_version, "xnnpack": b.model_info.get("xnnpack"),
                "harness_version": self.harness_version, "emulated": b.emulated, "base_sha256": self.base_sha256,
                "median_ns": None if median_ns is None else round(median_ns)}


@dataclass(frozen=True)
class Pair:
    """What is compared with what: ``by`` one of BY."""

    by: str
    baseline: Side
    candidate: Side


@dataclass(frozen=True)
class Difference:
    """A fact in which the two sides differ, and what the comparison makes of it: "compared"
    (its subject), "as-deployed" (shown beside a board), "forced" (--force), or "refused"."""

    fact: str
    baseline: str | None
    candidate: str | None
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "baseline": self.baseline, "candidate": self.candidate, "status": self.status}


def differences(pair: Pair, force: bool = False) -> tuple[Difference, ...]:
    """Every fact the two sides differ in, each with its status (see Difference)."""
    base, cand = pair.baseline.facts(), pair.candidate.facts()
    differing = [f for f in FACTS if base[f] != cand[f]]
    subject = SUBJECT.get(pair.by)
    if pair.by == "run":
        subject = "board" if "board" in differing else differing[0] if len(differing) == 1 else None

    def status(fact: str) -> str:
        if fact == subject:
            return "compared"
        if subject == "board" and fact in AS_DEPLOYED:
            return "as-deployed"
        return "forced" if force else "refused"

    return tuple(Difference(f, base[f], cand[f], status(f)) for f in differing)


@dataclass(frozen=True)
class Comparison:
    """One candidate against its baseline on one metric. ``ratio`` = candidate / baseline of the
    medians of the units (None when a side has none, or the pair was refused); ``ratio_ci`` its
    95 % bootstrap interval and ``p_value`` the two-sided p of ``test``, both None with fewer
    than MIN_UNITS units on a side."""

    pair: Pair
    metric: str
    unit: str
    baseline_units: tuple[float, ...]
    candidate_units: tuple[float, ...]
    differences: tuple[Difference, ...]
    test: str | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    p_value: float | None = None

    @property
    def refused(self) -> bool:
        return any(d.status == "refused" for d in self.differences)

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < stats.ALPHA

    @property
    def verdict(self) -> str:
        """"refused", "too few units", "faster", "slower" or "no significant difference"."""
        if self.refused:
            return "refused"
        if self.p_value is None or self.ratio is None:
            return "too few units"
        if not self.significant:
            return "no significant difference"
        return "slower" if self.ratio >= 1 else "faster"

    def median(self, side: str) -> float | None:
        units = self.baseline_units if side == "baseline" else self.candidate_units
        return stats.median(units) if units else None

    def slower_than(self, pct: float) -> bool:
        """The regression gate: significantly slower, and by more than ``pct`` %."""
        return self.verdict == "slower" and self.ratio is not None and self.ratio > 1 + pct / 100

    def to_json(self) -> dict[str, Any]:
        p = self.pair
        return {
            "kind": "comparison", "schema_version": SCHEMA_VERSION, "by": p.by, "metric": self.metric,
            "baseline": p.baseline.to_json(self.median("baseline")),
            "candidate": p.candidate.to_json(self.median("candidate")),
            "ratio": self.ratio, "ratio_ci": list(self.ratio_ci) if self.ratio_ci else None,
            "p_value": self.p_value, "test": self.test, "unit": self.unit, "alpha": stats.ALPHA,
            "significant": self.significant, "verdict": self.verdict,
            "n_baseline": len(self.baseline_units), "n_candidate": len(self.candidate_units),
            "differences": [d.to_json() for d in self.differences],
        }


def choose_unit(pair: Pair, metric: str) -> str:
    """run-median when both sides ran at least MIN_RUN_UNITS processes, else block-median;
    window-median (window-p99) for streams."""
    if isinstance(pair.baseline.benchmark, StreamRecord):
        return "window-p99" if metric == "p99" else "window-median"
    fewest = min(pair.baseline.processes(metric), pair.candidate.processes(metric))
    return "run-median" if fewest >= MIN_RUN_UNITS else "block-median"


def choose_test(m: int, n: int) -> str:
    """Mann-Whitney U, unless its smallest possible p with m and n units is not below ALPHA."""
    return "mann-whitney-u" if stats.mann_whitney_min_p(m, n) < stats.ALPHA else "welch-t"


def compare(pair: Pair, metric: str = "invoke", force: bool = False) -> Comparison:
    """The comparison of ``pair`` on ``metric`` ("invoke" or "loop"); a refused pair is not
    measured (its ratio, interval and p are None)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    streams = [isinstance(side.benchmark, StreamRecord) for side in (pair.baseline, pair.candidate)]
    if streams[0] != streams[1]:
        raise ConfigError("a stream and a benchmark cannot be compared",
                          hint="compare runs of `harness run` with each other, and runs of `harness stream`")
    if streams[0] != (metric in STREAM_METRICS):
        allowed = STREAM_METRICS if streams[0] else tuple(m for m in METRICS if m not in STREAM_METRICS)
        raise ConfigError(f"--metric {metric} does not apply to {'streams' if streams[0] else 'benchmarks'}",
                          hint=f"use --metric {' or '.join(allowed)}")
    diffs = differences(pair, force)
    unit = choose_unit(pair, metric)
    base = tuple(pair.baseline.units(metric, unit))
    cand = tuple(pair.candidate.units(metric, unit))
    out = Comparison(pair, metric, unit, base, cand, diffs)
    if out.refused or not base or not cand or stats.median(base) <= 0:
        return out
    ratio = stats.median(cand) / stats.median(base)
    if len(base) < MIN_UNITS or len(cand) < MIN_UNITS:
        return Comparison(pair, metric, unit, base, cand, diffs, ratio=ratio)
    test = choose_test(len(base), len(cand))
    result = stats.mann_whitney_u(base, cand) if test == "mann-whitney-u" else stats.welch_t(base, cand)
    return Comparison(pair, metric, unit, base, cand, diffs, test, ratio,
                      stats.ratio_interval(base, cand), result.p_value)


def run_sides(path: Path, recipes: bool = False) -> list[Side]:
    """The benchmarks of the run in ``path`` as sides, in the run's matrix order (the order of
    `harness run`'s targets, models and threads; files are numbered as benchmarks start, which
    interleaves targets run in parallel). With ``recipes``, each variant's side names its base
    (variant_bases). A run of another kind is refused."""
    meta = store.load_meta(path)
    kind = store.run_kind(meta)
    if kind not in ("benchmark", "stream"):
        raise ConfigError(f"{path.name} is a {kind} run: harness compare compares benchmark and stream runs",
                          hint="pass the ids of runs made by `harness run` or `harness stream`")
    measured: list[Benchmark] | list[StreamRecord]
    meta, measured = stream_store.load_streams(path) if kind == "stream" else store.load_run(path)
    if not measured:
        raise ConfigError(f"{path} holds no {kind}s", hint="the run was stopped before its first one")
    return sides(meta, measured, str(meta.get("run_id") or path.name), variant_bases(path) if recipes else {})


def sides(meta: dict[str, Any], measured: Sequence[Benchmark | StreamRecord], run_id: str,
          bases: dict[str, str] | None = None) -> list[Side]:
    """The benchmarks (or streams) of one run (already loaded, with its run.json ``meta``) as
    sides, in the run's matrix order; ``bases``: each variant's base (variant_bases)."""
    matrix = [(m.get("target"), m.get("model"), m.get("threads")) for m in meta.get("matrix") or []]

    def order(b: Benchmark | StreamRecord) -> int:
        key = (b.target, b.model, b.threads)
        return matrix.index(key) if key in matrix else len(matrix)

    return [Side(b, run_id, meta.get("harness_version"), (bases or {}).get(b.model_sha256))
            for b in sorted(measured, key=order)]


def variant_bases(path: Path) -> dict[str, str]:
    """The base of each variant benchmarked in the run in ``path``: {variant sha256: base sha256}
    (variant_recipes)."""
    return {sha: recipe.base_sha256 for sha, recipe in variant_recipes(path).items()}


def variant_recipes(path: Path) -> dict[str, Recipe]:
    """The recipe of each variant benchmarked in the run in ``path``: {variant sha256: recipe},
    from the recipe file beside each model as it was run (harness.models.recipes.recipe_for on
    the header's ``model_path``). A recipe that is gone, stale or describes another file than the
    one benchmarked gives nothing (a warning when it cannot be read): that model has no base here."""
    from harness.models.recipes import recipe_for  # reads model files: only when variants are compared

    recipes: dict[str, Recipe] = {}
    for file in store.records(path, "benchmark"):
        try:
            with open(file, encoding="utf-8") as f:
                header = json.loads(f.readline())
            recipe = recipe_for(Path(header["model_path"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the file's own problems are reported when its benchmark loads
        except HarnessError as exc:
            log.warning("%s: compared without its recipe", exc)
            continue
        if recipe is not None and recipe.variant_sha256 == header.get("model_sha256"):
            recipes[recipe.variant_sha256] = recipe
    return recipes
