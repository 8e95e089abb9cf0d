"""`harness compare` on runs that `harness stream` made for real on local: pipelines of a known
cost (tests/streamkit.py) at one schedule, so the latency from the schedule is known to differ, and
the refusals that keep a comparison of streams honest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import streamkit
from tests.agentrun import DIGITS, ROOT, harness, json_objects
from tests.comparekit import Bench, write_run


def stream(tmp: Path, t_ms: float, rate: str) -> str:
    """One short `harness stream` on local into tmp/results (90 frames at 50 Hz); its run id."""
    p = harness("stream", "--targets", str(ROOT / "targets.toml"), "--target", "local", "--model", str(DIGITS),
                "--warmup", "2", "--warmup-time", "0", "--rate", rate, "--minutes", "0.03",
                "--pipeline", str(streamkit.busy_pipeline(tmp, t_ms)), "--results", str(tmp / "results"),
                "--json", cwd=tmp)
    assert p.returncode == 0, p.stderr
    return json_objects(p.stdout)[0]["run_id"]


def compare(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness("compare", "--results", str(tmp / "results"), *args, cwd=tmp)


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """2 ms and 6 ms of work at 50 Hz (both keep up), and 2 ms at 40 Hz."""
    tmp = tmp_path_factory.mktemp("streams")
    return tmp, stream(tmp, 2.0, "50"), stream(tmp, 6.0, "50"), stream(tmp, 2.0, "40")


def test_streams_compare_on_window_medians_of_the_latency(streams: tuple[Path, str, str, str]) -> None:
    tmp, fast, slow, _ = streams
    p = compare(tmp, fast, slow, "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["metric"], o["unit"], o["test"]) == ("latency", "window-median", "mann-whitney-u")
    assert (o["n_baseline"], o["n_candidate"]) == (10, 10) and o["differences"] == []
    # latency = the work (T) + a tiny Invoke (+ what this shared machine's load adds to either):
    # about 3x, its interval well clear of 1
    assert o["verdict"] == "slower" and 1.8 < o["ratio"] < 4.5 and o["ratio_ci"][0] > 1.2
    assert o["baseline"]["median_ns"] >= 2e6 and o["candidate"]["median_ns"] >= 6e6
    p99 = json_objects(compare(tmp, slow, fast, "--json", "--metric", "p99").stdout)[0]
    assert (p99["unit"], p99["verdict"]) == ("window-p99", "faster") and p99["ratio"] < 0.6
    text = compare(tmp, fast, slow).stdout
    assert "harness compare: latency from the schedule" in text and f"{slow} is" in text
    assert "units: window medians (each tenth of the stream's median of the latency from the schedule)" in text


def test_two_streams_of_different_schedules_compare_the_schedule(streams: tuple[Path, str, str, str]) -> None:
    """Two runs differing in one fact compare that fact: here the schedule, named on each side."""
    tmp, fast, _, other = streams
    p = compare(tmp, fast, other, "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert o["differences"] == [{"fact": "schedule", "baseline": "fixed 50 Hz, deadline 20 ms, queue",
                                 "candidate": "fixed 40 Hz, deadline 25 ms, queue", "status": "compared"}]
    assert 0.7 < o["ratio"] < 1.4  # the same work at either rate: about the same latency
    text = compare(tmp, fast, other).stdout
    # the sentence under the table names each side with its schedule, whatever the verdict
    assert f"{other} (fixed 40 Hz, deadline 25 ms, queue)" in text.split("────")[-1]


def test_a_benchmark_metric_on_streams_is_one_clear_line(streams: tuple[Path, str, str, str]) -> None:
    tmp, fast, slow, _ = streams
    p = compare(tmp, fast, slow, "--metric", "invoke")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["error: --metric invoke does not apply to streams "
                                             "(fix: use --metric latency or p99)"]


def test_a_stream_and_a_benchmark_are_refused_in_one_line(streams: tuple[Path, str, str, str]) -> None:
    tmp, fast, _, _ = streams
    bench = write_run(tmp / "results", [Bench(model="digits_cnn.tflite")], run_id="bench").name
    p = compare(tmp, bench, fast)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["error: a stream and a benchmark cannot be compared (fix: compare "
                                             "runs of `harness run` with each other, and runs of `harness stream`)"]
