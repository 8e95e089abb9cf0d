"""From a raw Benchmark to the figures people read: the object of `harness run --json`.

The JSON contract (documented in README.md, "JSON output"); scripts and CI gates rely on it:
target, model, model_sha256, threads, runtime, init_ns, first_invoke_ns, inference_share, and
three blocks ``with_invoke``, ``without_invoke``, ``invoke``, each with n, median_ns, mean_ns,
p90_ns, p99_ns, stdev_ns (plus min_ns, max_ns). Everything else is added, never renamed.

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

from dataclasses import dataclass, replace
from typing import Any

from harness import stats
from harness.results.benchmark import SCHEMA_VERSION, Benchmark
from harness.results.findings import Finding, check

# Inference share thresholds for the verdict: above half the loop, the model is the lever; under a
# fifth, even an infinitely fast model saves less than 20 % of the loop.
MODEL_BOUND = 0.5
APP_BOUND = 0.2


@dataclass(frozen=True)
class BenchmarkSummary:
    benchmark: Benchmark
    with_invoke: stats.Summary | None
    without_invoke: stats.Summary | None
    invoke: stats.Summary | None
    stages: dict[str, float]  # median ns per stage of the with-Invoke loop
    inference_share: float | None
    findings: tuple[Finding, ...]
    invoke_median_ci: tuple[float, float] | None = None  # ns; from per-process medians, 2+ processes

    @property
    def verdict(self) -> str:
        if self.benchmark.error is not None and self.with_invoke is None:
            return f"failed: {self.benchmark.error.get('message', 'unknown error')}"
        return verdict(self.inference_share)

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
            "complete": b.complete, "error": b.error and {k: b.error.get(k) for k in ("code", "message", "file")},
            "pushed_bytes": b.pushed_bytes, "push_ns": b.push_ns,
            "emulated": b.emulated, "timer_resolution_ns": clock.get("resolution_ns"),
        }
        if "arena_used_bytes" in b.model_info:
            out["arena_used_bytes"] = b.model_info["arena_used_bytes"]
        return out


def verdict(share: float | None) -> str:
    """One line that answers "is inference the bottleneck here?"."""
    if share is None:
        return "no samples"
    pct = f"{100 * share:.0f} %"
    if share >= MODEL_BOUND:
        return f"inference is {pct} of the loop: a faster model pays off"
    if share >= APP_BOUND:
        return f"inference is {pct} of the loop: both the model and the rest of the application matter"
    return f"inference is {pct} of the loop: look at the rest of the application first"


def summarize(b: Benchmark) -> BenchmarkSummary:
    def maybe(mode: str, stage: str | None = None) -> stats.Summary | None:
        values = b.loop(mode) if stage is None else b.stage(stage, mode)
        if not values:
            return None
        return replace(stats.describe(values), median=process_median(b.by_process(mode, stage)))

    with_s, without_s, invoke_s = maybe("with"), maybe("without"), maybe("with", "invoke")
    stage_names = [s for s in (b.resolved_plan.get("stages") or []) if b.stage(s)]
    share = stats.share(with_s.median, without_s.median) if with_s and without_s and with_s.median else None
    return BenchmarkSummary(
        benchmark=b, with_invoke=with_s, without_invoke=without_s, invoke=invoke_s,
        stages={s: process_median(b.by_process("with", s)) for s in stage_names},
        inference_share=share, findings=tuple(check(b)) if b.blocks else (),
        invoke_median_ci=invoke_median_ci(b),
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
