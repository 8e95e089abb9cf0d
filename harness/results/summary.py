"""From a raw Benchmark to the figures people read: the object of `harness run --json`.

The JSON contract (documented in README.md, "JSON output"); scripts and CI gates rely on it:
target, model, model_sha256, threads, runtime, init_ns, first_invoke_ns, inference_share, and
three blocks ``with_invoke``, ``without_invoke``, ``invoke``, each with n, median_ns, mean_ns,
p90_ns, p99_ns, stdev_ns (plus min_ns, max_ns). Everything else is added, never renamed.
With an evaluation pass (``--eval``): ``eval`` (its source and sample count) and ``accuracy``
(``n``, ``top1``: harness.results.fidelity, from the outputs stored from the board), null without
labels; ``fidelity`` needs a reference and comes with the variant comparison.

The inference share carries its 95 % interval from the ABBA blocks (stats.block_share_halfwidth)
and the Amdahl bound: loop with Invoke / loop without it, the most any model could gain.

A benchmark of several processes (``--processes``, ``--until-stable``): each median (of the loops,
of Invoke, of each stage) is the mean of the per-process medians, so every process weighs the
same, as in pyperf. A pooled median would not do: processes settle at different speeds (a few %
apart, often in two or three clusters), and the median of their pooled samples falls in the gap
between clusters, moving with their proportion. ``invoke_median_ci`` is the 95 % Student-t
interval of that mean over the per-process medians (harness.stats.mean_interval); it is null with
one process, whose own samples cannot tell how the next process would differ. The other figures
(mean, p90, p99, stdev, min, max, n) are over the pooled samples.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from harness import stats
from harness.errors import MeasurementError
from harness.results.benchmark import SCHEMA_VERSION, Benchmark
from harness.results.fidelity import Accuracy, EvalOutputs, accuracy, eval_outputs
from harness.results.findings import Finding, check

log = logging.getLogger(__name__)

# Inference share thresholds for the verdict: above half the loop, the model is the lever; under a
# fifth, even an infinitely fast model saves less than 20 % of the loop.
MODEL_BOUND = 0.5
APP_BOUND = 0.2
# A median is one of the samples, so it is quantized to the board's clock tick, and one tick of
# error in the loop without Invoke moves the bound with / without by 1 / (its ticks). Under this
# many ticks that is over 25 %: the loop without Invoke is below what the timer resolves, and
# the bound is null.
MIN_BOUND_TICKS = 4


@dataclass(frozen=True)
class BenchmarkSummary:
    benchmark: Benchmark
    with_invoke: stats.Summary | None
    without_invoke: stats.Summary | None
    invoke: stats.Summary | None
    stages: dict[str, float]  # median ns per stage of the with-Invoke loop
    inference_share: float | None
    findings: tuple[Finding, ...]
    inference_share_ci: tuple[float, float] | None = None  # 95 %, from the blocks; None under 2 blocks
    max_speedup_from_model: float | None = None  # with / without; None under MIN_BOUND_TICKS
    invoke_median_ci: tuple[float, float] | None = None  # ns; from per-process medians, 2+ processes
    eval_outputs: EvalOutputs | None = None  # the evaluation pass's outputs, as the board sent them
    accuracy: Accuracy | None = None  # top-1 against the eval set's labels, on the board

    @property
    def verdict(self) -> str:
        if self.benchmark.error is not None and self.with_invoke is None:
            return f"failed: {self.benchmark.error.get('message', 'unknown error')}"
        return verdict(self.inference_share, self.inference_share_ci, self.max_speedup_from_model)

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s of Invoke: the model's FLOPs (host analysis) over the median Invoke."""
        flops = self.benchmark.model_facts.get("flops")
        if not flops or self.invoke is None or not self.invoke.median:
            return None
        return float(flops) / self.invoke.median  # FLOPs per ns = GFLOP/s

    @property
    def throughput_ips(self) -> float | None:
        """Loop iterations per second, with Invoke (1 / median)."""
        return 1e9 / self.with_invoke.median if self.with_invoke and self.with_invoke.median else None

    def to_json(self, run_id: str | None = None) -> dict[str, Any]:
        b = self.benchmark
        board = b.hello.get("board") or {}
        clock = b.hello.get("clock") or {}
        rss = [r for p in b.processes if (r := (p.summary or {}).get("max_rss_kb")) is not None]
        out: dict[str, Any] = {
            "kind": "benchmark", "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "target": b.target, "model": b.model, "model_sha256": b.model_sha256, "threads": b.threads,
            "runtime": b.runtime, "runtime_version": b.runtime_version,
            "xnnpack": b.model_info.get("xnnpack"),
            "board": {k: board.get(k) for k in ("model", "cpu", "cores", "machine", "governor")},
            "init_ns": b.model_info.get("init_ns"), "first_invoke_ns": b.first_invoke_ns,
            "inference_share": self.inference_share,
            "inference_share_ci": list(self.inference_share_ci) if self.inference_share_ci else None,
            "max_speedup_from_model": self.max_speedup_from_model,
            "with_invoke": self.with_invoke.to_json() if self.with_invoke else None,
            "without_invoke": self.without_invoke.to_json() if self.without_invoke else None,
            "invoke": self.invoke.to_json() if self.invoke else None,
            "stages_median_ns": {k: round(v) for k, v in self.stages.items()},
            "throughput_ips": self.throughput_ips,
            "model_flops": b.model_facts.get("flops"), "scheme": b.model_facts.get("scheme"),
            "gflops": self.gflops,
            "warmup_n": sum(len(p.warmup_ns) for p in b.processes),
            "blocks": len({(blk.process, blk.index) for blk in b.blocks}),
            "max_rss_kb": max(rss) if rss else None,  # the largest process's
            "processes": len(b.processes), "stopped_by": b.stopped_by,
            "invoke_median_ci": [round(x) for x in self.invoke_median_ci] if self.invoke_median_ci else None,
            "verdict": self.verdict,
            "findings": [f.to_json() for f in self.findings],
            "complete": b.complete, "error": b.error and {k: b.error.get(k) for k in ("code", "message", "file", "hint")},
            "pushed_bytes": b.pushed_bytes, "push_ns": b.push_ns,
            "emulated": b.emulated, "timer_resolution_ns": clock.get("resolution_ns"),
            "eval": ({"source": self.eval_outputs.source, "samples": self.eval_outputs.samples}
                     if self.eval_outputs else None),
            "accuracy": self.accuracy.to_json() if self.accuracy else None,
            "place": b.place, "place_tags": b.place_tags, "pool": b.pool, "moved_from": list(b.moved_from),
        }
        if "arena_used_bytes" in b.model_info:
            out["arena_used_bytes"] = b.model_info["arena_used_bytes"]
        return out


def speedup(x: float) -> str:
    """A speed-up for people: 1.04×, 1.8×, 25×."""
    if math.isinf(x):
        return "∞×"
    return f"{x:.2f}×" if x < 1.1 else f"{x:.1f}×" if x < 10 else f"{x:.0f}×"


def share_text(share: float, ci: tuple[float, float] | None) -> str:
    """"88 % ± 2 %": the share, and the larger side of its interval, to the same precision."""
    if ci is None:
        return f"{100 * share:.0f} %"
    half = 100 * max(share - ci[0], ci[1] - share)
    digits = 0 if half >= 0.95 else 1 if half >= 0.095 else 2  # one significant digit, to 0.01 %
    spread = f"{half:.{digits}f} %" if half >= 0.005 else "<0.01 %"
    return f"{100 * share:.{digits}f} % ± {spread}"


def advice(share: float | None, max_speedup: float | None) -> str:
    """What the share means for the application (the verdict without the share itself)."""
    if share is None:
        return "no samples"
    if share <= 0:
        return "no inference time is measurable: the loop without Invoke took as long as with it"
    bound = (f"at most {speedup(max_speedup)}" if max_speedup is not None else
             "no upper bound: the loop without Invoke is below the timer's resolution")
    twice = f"a model 2× faster makes the loop {speedup(stats.amdahl(share, 2.0))} faster"
    if share >= MODEL_BOUND:
        return f"{twice}; {bound}"
    if share >= APP_BOUND:
        return f"{twice}, {bound}: the rest of the application matters as much"
    if max_speedup is None:
        return "look at the rest of the application first"
    return f"look at the rest of the application first: any model makes the loop {bound} faster"


def verdict(share: float | None, ci: tuple[float, float] | None = None,
            max_speedup: float | None = None) -> str:
    """One line that answers "is inference the bottleneck here?", with the share's uncertainty and
    Amdahl's figures: what a 2× faster model gains, and what an infinitely fast one could."""
    if share is None or share <= 0:
        return advice(share, max_speedup)
    return f"inference is {share_text(share, ci)} of the loop: {advice(share, max_speedup)}"


def _blocks(b: Benchmark) -> tuple[list[float], list[float]]:
    """Median loop time of each block's with-Invoke half and of its without-Invoke half, for the
    blocks that have both (a run cut short may end after one half). A block is (process, index):
    block indices restart in each process."""
    halves: dict[tuple[int, int, str], list[int]] = {}
    for blk in b.blocks:
        halves.setdefault((blk.process, blk.index, blk.mode), []).extend(blk.loop_ns)
    keys = sorted((p, i) for p, i, mode in halves if mode == "with" and halves.get((p, i, "without")))
    pairs = [(stats.median(halves[p, i, "with"]), stats.median(halves[p, i, "without"]))
             for p, i in keys if halves[p, i, "with"]]
    return [w for w, _ in pairs if w > 0], [o for w, o in pairs if w > 0]


def share_ci(b: Benchmark, share: float) -> tuple[float, float] | None:
    """The 95 % interval of ``share`` from the blocks: centred on ``share`` (from the pooled medians,
    the figure it is printed with), the half-width of stats.block_share_halfwidth, the top clipped
    at 1 (no loop takes negative time without Invoke); None with fewer than 2 complete blocks."""
    half = stats.block_share_halfwidth(*_blocks(b))
    return None if half is None else (share - half, min(1.0, share + half))


def max_speedup(b: Benchmark, with_median: float, without_median: float) -> float | None:
    """Amdahl's bound: with / without (medians), or None when the loop without Invoke is under
    MIN_BOUND_TICKS ticks of the board's clock."""
    resolution = (b.hello.get("clock") or {}).get("resolution_ns") or 1
    if without_median < MIN_BOUND_TICKS * resolution:
        return None
    return with_median / without_median


def summarize(b: Benchmark) -> BenchmarkSummary:
    def maybe(mode: str, stage: str | None = None) -> stats.Summary | None:
        values = b.loop(mode) if stage is None else b.stage(stage, mode)
        if not values:
            return None
        return replace(stats.describe(values), median=process_median(b.by_process(mode, stage)))

    with_s, without_s, invoke_s = maybe("with"), maybe("without"), maybe("with", "invoke")
    try:
        outputs = eval_outputs(b)
    except MeasurementError as exc:  # stored outputs that do not add up: no figure from them
        log.warning("%s: %s", b.target, exc)
        outputs = None
    stage_names = [s for s in (b.resolved_plan.get("stages") or []) if b.stage(s)]
    share = stats.share(with_s.median, without_s.median) if with_s and without_s and with_s.median else None
    return BenchmarkSummary(
        benchmark=b, with_invoke=with_s, without_invoke=without_s, invoke=invoke_s,
        stages={s: process_median(b.by_process("with", s)) for s in stage_names},
        inference_share=share, findings=tuple(check(b)) if b.blocks else (),
        inference_share_ci=share_ci(b, share) if share is not None else None,
        max_speedup_from_model=(max_speedup(b, with_s.median, without_s.median)
                                if share is not None and with_s and without_s else None),
        invoke_median_ci=invoke_median_ci(b),
        eval_outputs=outputs, accuracy=accuracy(outputs) if outputs else None,
    )


def process_median(groups: list[list[int]]) -> float:
    """The median of a benchmark's samples: of the one process's samples, or with several the
    mean of the per-process medians (see the module docstring). ``groups`` is not empty."""
    medians = [stats.median(g) for g in groups]
    return medians[0] if len(medians) == 1 else stats.mean(medians)


def invoke_median_ci(b: Benchmark) -> tuple[float, float] | None:
    """The 95 % interval of the median Invoke, in ns, from the per-process medians (None with
    fewer than 2 processes that measured Invoke)."""
    return stats.mean_interval([stats.median(g) for g in b.by_process("with", "invoke")])
