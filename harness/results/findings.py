"""Checks that say when a result should not be trusted as it stands, and what would help.

Pure functions over a Benchmark. Each Finding is a value: stored with the results and rendered as a
warning (hyperfine-style) that names the option or setting that fixes it. Thresholds, and why:
- sigma over 10 % of the median: the pyperf rule of thumb for an unstable benchmark (one finding,
  which tells rare outliers -- p90 within 1.5x the median, max beyond 3x -- from a broad spread);
- a first timed iteration over 2x the median: warm-up did not reach the steady state;
- temperature moving 5 degrees C or more: enough on small boards to trigger throttling;
- any change of CPU frequency: the samples came from different clocks;
- --until-stable stopped by --max-duration: the interval asked for was not reached.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import stats
from harness.results.benchmark import Benchmark

UNSTABLE_REL_STDEV = 0.10
FIRST_ITERATION_FACTOR = 2.0
TEMPERATURE_DRIFT_C = 5.0
FEW_SAMPLES = 30
TIMER_TICKS = 100
OUTLIER_P90 = 1.5  # p90 under 1.5x the median while some sample passes 3x it:
OUTLIER_MAX = 3.0  # the spread comes from a few outliers, not from the bulk of the samples
APP_SHARE = 0.2  # a median under this many clock ticks is dominated by the timer's resolution


@dataclass(frozen=True)
class Finding:
    """``message`` and ``hint`` stand alone (JSON). ``title`` names the kind of warning, the same for
    every row it concerns, and ``detail`` is this row's figure: tables print one line per title
    that lists the rows with their details. Neither is stored: findings are recomputed on read."""

    code: str
    message: str
    hint: str
    title: str = ""  # empty: the message is the title
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


def check(b: Benchmark) -> list[Finding]:
    found: list[Finding] = []
    loops = {mode: b.loop(mode) for mode in ("with", "without")}
    unstable = _instability(loops["with"], loops["without"], b.stage("invoke"))
    if unstable:
        found.append(unstable)
    with_loop = loops["with"]
    if with_loop:
        first, med = b.blocks[0].loop_ns[0] if b.blocks[0].loop_ns else 0, stats.median(with_loop)
        if med and first > FIRST_ITERATION_FACTOR * med:
            found.append(Finding(
                "first_iteration", f"the first timed iteration took {first / med:.1f}× the median",
                "increase --warmup or --warmup-time",
                f"first timed iteration over {FIRST_ITERATION_FACTOR:g}× the median", f"{first / med:.1f}×"))
        if len(with_loop) < FEW_SAMPLES:
            found.append(Finding("few_samples", f"only {len(with_loop)} samples per mode",
                                 "raise --iterations or --duration",
                                 f"fewer than {FEW_SAMPLES} samples per mode", f"{len(with_loop)}"))
        resolution = (b.hello.get("clock") or {}).get("resolution_ns") or 1
        invoke = b.stage("invoke")
        if invoke and stats.median(invoke) < TIMER_TICKS * resolution:
            found.append(Finding(
                "timer_resolution", f"the median Invoke is under {TIMER_TICKS} ticks of the board's "
                f"{resolution} ns timer", "figures this small are coarse; compare bigger models",
                f"Invoke under {TIMER_TICKS} timer ticks", f"{resolution} ns tick"))
    if with_loop and loops["without"] and stats.median(loops["without"]) > stats.median(with_loop):
        found.append(Finding(
            "noise_dominates", "the loop without Invoke was slower than the loop with it: noise "
            "dominates the inference time", "run longer (--duration) or on a quieter board",
            "noise dominates: the loop without Invoke was slower than with it"))
    temps = [t for t in ([blk.temp_c for blk in b.blocks] + [_start(b, "temp_c")]) if t is not None]
    if temps and max(temps) - min(temps) >= TEMPERATURE_DRIFT_C:
        found.append(Finding(
            "temperature", f"board temperature moved from {min(temps):.0f} to {max(temps):.0f} °C "
            "during the run", "cool the board (heatsink, fan), or shorten --duration",
            f"temperature moved {TEMPERATURE_DRIFT_C:g} °C or more", f"{min(temps):.0f}→{max(temps):.0f} °C"))
    freqs = {f for f in ([blk.freq_khz for blk in b.blocks] + [_start(b, "freq_khz")]) if f}
    if len(freqs) > 1:
        governor = (b.hello.get("board") or {}).get("governor") or "unknown"
        found.append(Finding(
            "frequency", f"CPU frequency changed during the run ({min(freqs) / 1000:.0f}–"
            f"{max(freqs) / 1000:.0f} MHz, governor {governor})",
            "set the governor to performance: sudo cpupower frequency-set -g performance",
            "CPU frequency changed", f"{min(freqs) / 1000:.0f}–{max(freqs) / 1000:.0f} MHz, {governor}"))
    if b.timed_complete and not b.complete and b.error is None:  # stopped in a pass after the timings
        found.append(Finding(
            "incomplete", "the pass after the timings (evaluation or power) did not finish; the timings "
            "are whole", "rerun it for the accuracy or energy figures", "pass cut short", ""))
    elif not b.timed_complete:  # a failed pass alone has its own error line
        planned = sum(p.resolved_plan.get("iterations") or 0 for p in b.processes)
        found.append(Finding(
            "incomplete", f"the run was cut short: {len(with_loop)} of {planned or '?'} samples per "
            "mode were measured", "rerun it; what was measured is kept",
            "cut short", f"{len(with_loop)} of {planned or '?'} samples"))
    if b.stopped_by == "max_duration":
        found.append(_not_stable(b))
    return found


def _not_stable(b: Benchmark) -> Finding:
    """--until-stable ran out of time: how wide the interval still is."""
    ci = stats.mean_interval([stats.median(g) for g in b.by_process("with", "invoke")])
    width = f"±{100 * (ci[1] - ci[0]) / (ci[0] + ci[1]):.1f} %" if ci and ci[0] + ci[1] else "unknown"
    return Finding(
        "not_stable", f"the interval of the median Invoke is {width} after {len(b.processes)} processes, "
        f"not the ±{b.plan.get('until_stable_pct'):g} % of --until-stable: --max-duration "
        f"{b.plan.get('max_duration_s'):g} s was reached",
        "raise --max-duration, accept a wider --until-stable, or quiet the board")


def _instability(with_loop: list[int], without_loop: list[int], invoke: list[int]) -> Finding | None:
    """One finding for σ > 10 % of the median, saying whether rare outliers or a broad spread cause it."""
    parts = [("loop with Invoke", with_loop), ("Invoke", invoke)]
    if with_loop and without_loop and stats.median(without_loop) > APP_SHARE * stats.median(with_loop):
        parts.append(("loop without Invoke", without_loop))  # only when it is a real part of the loop
    summaries = [(label, stats.describe(v)) for label, v in parts if len(v) > 1]
    bad = [(label, s) for label, s in summaries if s.rel_stdev > UNSTABLE_REL_STDEV]
    if not bad:
        return None
    spread = ", ".join(f"{100 * s.rel_stdev:.0f} % ({label})" for label, s in bad)
    label, worst = max(bad, key=lambda item: item[1].rel_stdev)
    title = f"unstable (σ over {100 * UNSTABLE_REL_STDEV:.0f} % of the median)"
    if worst.p90 < OUTLIER_P90 * worst.median and worst.max > OUTLIER_MAX * worst.median:
        return Finding(
            "unstable", f"σ is {spread} of the median, from rare outliers (max {worst.max / worst.median:.0f}× "
            "the median, while p90 stays close): something else interrupted the board",
            "medians are robust to this; for clean tails close other programs or pin the board's CPUs",
            f"{title}, from rare outliers", f"σ {100 * worst.rel_stdev:.0f} %, max {worst.max / worst.median:.0f}×")
    return Finding(
        "unstable", f"σ is {spread} of the median, and p99 is {worst.p99 / worst.median:.1f}× the median",
        "run longer (--duration), close other programs, or set the CPU governor to performance",
        f"{title}, a broad spread", f"σ {100 * worst.rel_stdev:.0f} %, p99 {worst.p99 / worst.median:.1f}×")


def _start(b: Benchmark, key: str) -> float | None:
    board = b.hello.get("board") or {}
    value = board.get(key)
    return float(value) if isinstance(value, (int, float)) else None
