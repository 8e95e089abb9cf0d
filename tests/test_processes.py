"""A benchmark in several processes (`--processes`, `--until-stable`), with the real agent, the real
runtime and the real emulated MCU: separate processes and model loads, an interval computed from
the per-process medians, the stop rule, and nothing lost on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.agentrun import KWS, ROOT, harness, json_objects
from tests.serialkit import fc_model, write_model

TARGETS = str(ROOT / "targets.toml")
QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "60", "--blocks", "2"]
T975_2DF = 4.302653  # Student's t, 97.5th percentile, 2 degrees of freedom (scipy.stats.t.ppf)


def lines_of(results: Path) -> list[dict[str, Any]]:
    (record,) = results.glob("*/benchmarks/*.jsonl")
    return [json.loads(x) for x in record.read_text().splitlines()]


def per_process(lines: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The stored messages split at each `process` line (the lines before the first are dropped)."""
    groups: list[list[dict[str, Any]]] = []
    for msg in lines:
        if msg["type"] == "process":
            assert msg["index"] == len(groups)
            groups.append([])
        elif groups:
            groups[-1].append(msg)
    return groups


def invoke_medians(groups: list[list[dict[str, Any]]]) -> list[float]:
    return [statistics.median([x for m in g if m["type"] == "samples" and m["mode"] == "with"
                               for x in m["stages"]["invoke"]]) for g in groups]


def test_three_processes_are_three_agents_and_the_interval_comes_from_their_medians(tmp_path: Path) -> None:
    # A pipeline that writes down the process it was loaded in: three processes must be three PIDs.
    app = tmp_path / "pids.py"
    app.write_text("import os\nfrom pathlib import Path\n\n"
                   "with open(Path(__file__).with_suffix('.pids'), 'a') as f:\n"
                   "    f.write(f'{os.getpid()}\\n')\n\n\n"
                   "def postprocess(outputs):\n    return outputs\n")
    results = tmp_path / "r"
    p = harness("run", "--targets", TARGETS, "--target", "local", "--model", str(KWS), "--processes", "3",
                "--pipeline", str(app), *QUICK, "--results", str(results), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["processes"], o["stopped_by"], o["complete"], o["blocks"]) == (3, None, True, 6)
    assert len(set((tmp_path / "pids.pids").read_text().split())) == 3
    groups = per_process(lines_of(results))
    assert len(groups) == 3
    for g in groups:  # each process said hello, loaded the model and ran the whole plan itself
        kinds = [m["type"] for m in g]
        assert [k for k in kinds if k in ("hello", "model", "plan", "first_invoke", "warmup", "summary")] == \
            ["hello", "model", "plan", "first_invoke", "warmup", "summary"]
        assert sum(len(m["loop_ns"]) for m in g if m["type"] == "samples" and m["mode"] == "with") == 60
    # The interval by hand from the stored samples: mean ± t(2) · s / √3 over the three medians,
    # and the median Invoke is their mean (each process weighs the same).
    medians = invoke_medians(groups)
    centre, half = statistics.mean(medians), T975_2DF * statistics.stdev(medians) / 3 ** 0.5
    assert o["invoke_median_ci"] == pytest.approx([centre - half, centre + half], abs=1.0)
    assert o["invoke"]["median_ns"] == pytest.approx(centre, abs=1.0) and o["invoke"]["n"] == 180
    shown = harness("show", "--results", str(results), "--json", cwd=tmp_path)
    assert json_objects(shown.stdout) == [o]  # recomputed from the stored processes, identically


def test_on_the_emulated_mcu_each_process_loads_the_model_again(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model(k=64, m=8))
    results = tmp_path / "r"
    p = harness("run", "--targets", TARGETS, "--target", "mcu-sim", "--model", str(model), "--processes", "3",
                *QUICK, "--results", str(results), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["processes"], o["complete"], o["emulated"]) == (3, True, True)
    groups = per_process(lines_of(results))
    for g in groups:  # a fresh upload (not a cached model) and a fresh interpreter's report each time
        uploads = [m for m in g if m["type"] == "push" and m["what"] == "model"]
        assert [m["bytes"] for m in uploads] == [model.stat().st_size]
        assert [m["type"] for m in g].count("hello") == 1 and [m["type"] for m in g].count("model") == 1
    assert o["pushed_bytes"] == 3 * model.stat().st_size
    medians = invoke_medians(groups)
    lo, hi = o["invoke_median_ci"]
    assert lo <= statistics.mean(medians) <= hi


def test_until_stable_with_a_generous_target_stops_after_the_minimum(tmp_path: Path) -> None:
    results = tmp_path / "r"
    p = harness("run", "--targets", TARGETS, "--target", "local", "--model", str(KWS), "--until-stable", "100",
                "--results", str(results), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["processes"], o["stopped_by"], o["complete"]) == (3, "stable", True)
    lo, hi = o["invoke_median_ci"]
    assert (hi - lo) / 2 <= o["invoke"]["median_ns"]  # within ±100 %: why it stopped
    lines = lines_of(results)
    assert lines[0]["plan"]["until_stable_pct"] == 100 and lines[0]["plan"]["duration_s"] == 0.2
    assert [m for m in lines if m["type"] == "stop"][0]["processes"] == 3


def test_until_stable_with_an_impossible_target_stops_at_max_duration_and_keeps_its_samples(
        tmp_path: Path) -> None:
    results = tmp_path / "r"
    t0 = time.monotonic()
    p = harness("run", "--targets", TARGETS, "--target", "local", "--model", str(KWS), "--until-stable",
                "0.001", "--max-duration", "3", "--results", str(results), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert o["stopped_by"] == "max_duration" and o["complete"] is True
    assert o["processes"] >= 1 and o["invoke"]["n"] > 0
    assert (o["invoke_median_ci"] is None) == (o["processes"] == 1)
    (stop,) = [m for m in lines_of(results) if m["type"] == "stop"]
    # no process is started that would end after the bound, judged by the longest one so far; a
    # process takes one to two seconds here, so one slower than foreseen is the most it can overrun
    assert stop["wall_ns"] < 8e9 and time.monotonic() - t0 < 40


@pytest.mark.parametrize("extra", [["--duration", "1.0"], ["--iterations", "100"], ["--processes", "2"],
                                   ["--processes", "0"], ["--max-duration", "0"]])
def test_until_stable_refuses_what_it_replaces(tmp_path: Path, extra: list[str]) -> None:
    p = harness("run", "--targets", TARGETS, "--target", "local", "--until-stable", "1", *extra,
                "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "usage:" in p.stderr and not (tmp_path / "r").exists()  # refused before anything ran


def test_max_duration_without_until_stable_is_a_usage_error(tmp_path: Path) -> None:
    p = harness("run", "--targets", TARGETS, "--max-duration", "10", "--results", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2 and "--until-stable" in p.stderr


def test_ctrl_c_between_and_within_processes_keeps_every_process(tmp_path: Path) -> None:
    model = tmp_path / "interrupt-me.tflite"
    model.write_bytes(KWS.read_bytes())
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--targets", TARGETS, "--target", "local",
                             "--model", str(model), "--processes", "20", "--warmup-time", "0",
                             "--iterations", "2000", "--blocks", "4", "--results", str(results)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        files = list(results.glob("*/benchmarks/*.jsonl"))
        if files and files[0].read_text().count('"type":"summary"') >= 2:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("two processes did not finish in time")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert [p for p in psutil.process_iter(["cmdline"]) if str(model) in " ".join(p.info["cmdline"] or [])] == []
    groups = per_process(lines_of(results))
    finished = [g for g in groups if any(m["type"] == "summary" for m in g)]
    assert 2 <= len(finished) < 20
    stored = sum(len(m["loop_ns"]) for g in groups for m in g if m["type"] == "samples" and m["mode"] == "with")
    shown = harness("show", "--results", str(results), "--json", cwd=tmp_path)
    (o,) = json_objects(shown.stdout)
    assert o["complete"] is False and o["processes"] == len(groups)
    assert o["with_invoke"]["n"] == stored  # every sample of every process, the cut one included
    assert o["invoke_median_ci"] is not None
