"""Findings and verdicts are pure functions of a Benchmark: synthetic samples pin their thresholds."""

from __future__ import annotations

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


def test_noise_dominates_when_without_is_slower() -> None:
    assert "noise_dominates" in codes(bench(STEADY, [1100] * 200))


def test_verdict_thresholds_and_share() -> None:
    assert verdict(0.84) == "inference is 84 % of the loop: a faster model pays off"
    assert verdict(0.09) == "inference is 9 % of the loop: look at the rest of the application first"
    assert "both" in verdict(0.3)
    s = summarize(bench([1000] * 50, [160] * 50))
    assert s.inference_share == 0.84 and s.to_json()["inference_share"] == 0.84
