"""Findings and verdicts are pure functions of a Benchmark: synthetic samples pin their thresholds."""

from __future__ import annotations

import dataclasses
import math

import pytest

from harness.results.benchmark import Benchmark, Block
from harness.results.findings import check
from harness.results.summary import summarize, verdict


def bench(with_ns: list[int], without_ns: list[int], *, temps=(None, None), freqs=(None, None),
          board: dict | None = None, complete: bool = True) -> Benchmark:
    blocks = (
        Block("with", 0, tuple(with_ns), {"invoke": tuple(x - 10 for x in with_ns)}, temps[0], freqs[0]),
        Block("without", 0, tuple(without_ns), {}, temps[1], freqs[1]),
    )
    return Benchmark(target="t", model="m.tflite", model_sha256="0" * 64, threads=1, plan={},
                     hello={"board": board or {}, "clock": {"resolution_ns": 1}},
                     resolved_plan={"iterations": len(with_ns), "stages": ["invoke"]},
                     blocks=blocks, summary={"iterations": len(with_ns)} if complete else None)


def codes(b: Benchmark) -> set[str]:
    return {f.code for f in check(b)}


STEADY = [1000 + (i % 7) for i in range(200)]


def test_a_steady_run_has_no_findings() -> None:
    assert codes(bench(STEADY, [100] * 200)) == set()


def test_rare_outliers_and_broad_spread_are_told_apart() -> None:
    outliers = list(STEADY)
    outliers[50] = outliers[150] = 200_000  # two interruptions: σ huge, p99 untouched
    (f,) = [f for f in check(bench(outliers, [100] * 200)) if f.code == "unstable"]
    assert "rare outliers" in f.message
    broad = [1000 + 300 * (i % 5) for i in range(200)]
    (f,) = [f for f in check(bench(broad, [100] * 200)) if f.code == "unstable"]
    assert "p99 is" in f.message and "--duration" in f.hint


def test_first_iteration_temperature_frequency_and_incomplete() -> None:
    first = [5000] + STEADY[1:]
    assert "first_iteration" in codes(bench(first, [100] * 200))
    assert "temperature" in codes(bench(STEADY, [100] * 200, temps=(50.0, 56.0)))
    assert "temperature" not in codes(bench(STEADY, [100] * 200, temps=(50.0, 53.0)))
    f = check(bench(STEADY, [100] * 200, freqs=(600_000, 1_500_000), board={"governor": "ondemand"}))
    assert any(x.code == "frequency" and "ondemand" in x.message and "performance" in x.hint for x in f)
    assert "incomplete" in codes(bench(STEADY, [100] * 200, complete=False))


def test_a_failed_or_stopped_pass_after_whole_timings_is_not_called_a_cut_short_run() -> None:
    whole = dataclasses.replace(bench(STEADY, [100] * 200), target_facts={"power": "ina3221"})
    assert whole.timed_complete and not whole.complete  # the power pass never came
    (f,) = [f for f in check(whole) if f.code == "incomplete"]
    assert "timings are whole" in f.message and "cut short" not in f.message
    failed = dataclasses.replace(whole, error={"code": "power_unavailable", "message": "no INA3221 monitor"})
    assert "incomplete" not in codes(failed)  # its error line says what failed
    short = dataclasses.replace(bench(STEADY, [100] * 200, complete=False), error={"code": "link_lost"})
    (f,) = [f for f in check(short) if f.code == "incomplete"]
    assert f.message.startswith("the run was cut short: 200 of 200")


def test_noise_dominates_when_without_is_slower() -> None:
    assert "noise_dominates" in codes(bench(STEADY, [1100] * 200))


def test_verdict_thresholds_share_and_amdahl() -> None:
    assert verdict(0.84, (0.82, 0.86), 6.25) == (
        "inference is 84 % ± 2 % of the loop: a model 2× faster makes the loop 1.7× faster; at most 6.2×")
    assert verdict(0.3, None, 1.43) == ("inference is 30 % of the loop: a model 2× faster makes the loop "
                                        "1.2× faster, at most 1.4×: the rest of the application matters as much")
    assert verdict(0.09, (0.085, 0.095), 1.0989) == (
        "inference is 9.0 % ± 0.5 % of the loop: look at the rest of the application first: any model "
        "makes the loop at most 1.10× faster")
    assert verdict(0.999, (0.9985, 0.9995), None) == (
        "inference is 99.90 % ± 0.05 % of the loop: a model 2× faster makes the loop 2.0× faster; "
        "no upper bound: the loop without Invoke is below the timer's resolution")
    assert verdict(0.9994, (0.99939, 0.99941), 1667).startswith("inference is 99.94 % ± <0.01 % of the loop")
    assert verdict(-0.02, (-0.05, 0.01), 0.98).startswith("no inference time is measurable")
    assert verdict(None) == "no samples"
    s = summarize(bench([1000] * 50, [160] * 50))
    assert s.inference_share == 0.84 and s.to_json()["inference_share"] == 0.84
    # one block: the interval cannot be estimated from blocks, and says so with null
    assert s.inference_share_ci is None and s.to_json()["inference_share_ci"] is None
    assert s.to_json()["max_speedup_from_model"] == 6.25


def abba(with_medians: list[int], without_medians: list[int], resolution_ns: int = 1) -> Benchmark:
    """Blocks in ABBA order whose halves have known medians (5 samples each, spread around them)."""
    blocks = []
    for i, (w, o) in enumerate(zip(with_medians, without_medians, strict=True)):
        halves = [Block("with", i, tuple(w + d for d in (-1, 0, 0, 0, 1)), {}, None, None),
                  Block("without", i, tuple(o + d for d in (-1, 0, 0, 0, 1)), {}, None, None)]
        blocks += halves if i % 2 == 0 else halves[::-1]
    return Benchmark(target="t", model="m.tflite", model_sha256="0" * 64, threads=1, plan={},
                     hello={"clock": {"resolution_ns": resolution_ns}}, blocks=tuple(blocks),
                     summary={"iterations": 5 * len(with_medians)})


def test_share_interval_and_amdahl_bound_from_blocks_with_known_medians() -> None:
    # per-block shares 0.85, 0.8, 0.8, 0.75; pooled medians 100 and 20: share 0.8, bound 5×
    s = summarize(abba([100, 100, 100, 100], [15, 20, 20, 25]))
    half = 3.182446 * math.sqrt(0.005 / 3) / 2  # t(0.975, 3) × sd / √4
    assert s.inference_share == pytest.approx(0.8)
    assert s.inference_share_ci == pytest.approx((0.8 - half, 0.8 + half))
    assert s.max_speedup_from_model == pytest.approx(5.0)
    o = s.to_json()
    assert o["inference_share_ci"] == pytest.approx([0.8 - half, 0.8 + half])
    assert o["verdict"] == ("inference is 80 % ± 6 % of the loop: a model 2× faster makes the loop 1.7× "
                            "faster; at most 5.0×")
    # an interval reaching past 1 is clipped there: no loop takes negative time without Invoke
    s = summarize(abba([100, 100, 100], [1, 5, 9]))
    assert s.inference_share_ci is not None and s.inference_share_ci[1] == 1.0
    # the loop without Invoke under 4 ticks of a 10 ns clock: median 20 ns is 2 ticks, no bound
    assert summarize(abba([100, 100], [20, 20], resolution_ns=10)).max_speedup_from_model is None
    assert summarize(abba([100, 100], [40, 40], resolution_ns=10)).max_speedup_from_model == 2.5


def test_a_block_cut_short_after_its_first_half_is_left_out_of_the_interval() -> None:
    b = abba([100, 100, 100], [15, 20, 25])
    cut = Benchmark(**{**b.__dict__, "blocks": b.blocks[:-1], "summary": None})  # block 2 lost its second half
    s = summarize(cut)
    assert s.inference_share_ci is not None
    full = summarize(abba([100, 100], [15, 20]))
    assert s.inference_share_ci[1] - s.inference_share_ci[0] == pytest.approx(
        full.inference_share_ci[1] - full.inference_share_ci[0])  # type: ignore[index]


def test_findings_name_their_kind_and_figure_for_grouping() -> None:
    outliers = list(STEADY)
    outliers[50] = outliers[150] = 200_000
    (f,) = [f for f in check(bench(outliers, [100] * 200)) if f.code == "unstable"]
    assert f.title == "unstable (σ over 10 % of the median), from rare outliers"
    assert f.detail.startswith("σ ") and "max 201×" in f.detail  # the Invoke stage: 199,990 / 993
    (g,) = [f for f in check(bench([5000] + STEADY[1:], [100] * 200)) if f.code == "first_iteration"]
    assert (g.title, g.detail) == ("first timed iteration over 2× the median", "5.0×")
    assert set(g.to_json()) == {"code", "message", "hint"}  # the JSON contract is unchanged
