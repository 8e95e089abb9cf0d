"""`harness compare` on runs that `harness run` made for real: the local agent and the emulated MCU,
real runtimes, the shipped models."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agentrun import DIGITS, KWS, QUICK, ROOT, harness, json_objects


def run(tmp_path: Path, *args: str) -> str:
    """One `harness run` into tmp_path/results; its run id."""
    p = harness("run", "--targets", str(ROOT / "targets.toml"), *args, *QUICK, "--results",
                str(tmp_path / "results"), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    return json_objects(p.stdout)[0]["run_id"]


def compare(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness("compare", "--results", str(tmp_path / "results"), *args, cwd=tmp_path)


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """digits on local at 1 and 2 threads and on mcu-sim (one thread: a microcontroller's only)."""
    tmp = tmp_path_factory.mktemp("lab")
    return tmp, run(tmp, "--target", "local", "--target", "mcu-sim", "--model", str(DIGITS), "--threads", "1,2")


def test_within_by_board_compares_local_and_the_emulated_mcu(lab_run: tuple[Path, str]) -> None:
    tmp, run_id = lab_run
    p = compare(tmp, "--within", run_id, "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)  # digits at 2 threads ran on local only: nothing to compare it with
    assert "digits_cnn.tflite t2: nothing of the run to compare it with by board" in p.stderr
    assert (o["by"], o["baseline"]["target"], o["candidate"]["target"]) == ("board", "local", "mcu-sim")
    assert o["candidate"]["emulated"] is True and o["candidate"]["runtime"] == "tflite-micro"
    # TFLite Micro's reference kernels take far longer than XNNPACK's: every block says so
    assert o["verdict"] == "slower" and o["ratio"] > 3 and o["ratio_ci"][0] > 1
    assert (o["unit"], o["test"], o["n_baseline"], o["n_candidate"]) == ("block-median", "mann-whitney-u", 4, 4)
    # the runtime and delegate are part of each board as deployed: shown, not refused
    assert {d["fact"]: d["status"] for d in o["differences"]} == {
        "board": "compared", "runtime": "as-deployed", "delegate": "as-deployed"}
    text = compare(tmp, "--within", run_id).stdout
    assert "mcu-sim* is" in text and "slower than local on digits_cnn.tflite, 1 thread" in text
    assert "as deployed: runtime tflite-micro" in text and "* emulated" in text


def test_within_by_threads_compares_one_and_two_threads_on_local(lab_run: tuple[Path, str]) -> None:
    tmp, run_id = lab_run
    p = compare(tmp, "--within", run_id, "--by", "threads", "--json", "--metric", "loop")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["by"], o["metric"], o["baseline"]["threads"], o["candidate"]["threads"]) == ("threads", "loop", 1, 2)
    assert o["baseline"]["target"] == o["candidate"]["target"] == "local"
    assert o["differences"] == [{"fact": "threads", "baseline": "1", "candidate": "2", "status": "compared"}]
    assert o["ratio_ci"][0] <= o["ratio"] <= o["ratio_ci"][1] and 0 <= o["p_value"] <= 1


def test_two_runs_of_the_same_benchmark_compare_honestly(tmp_path: Path) -> None:
    """Two separate runs on this shared machine may differ for real (what changes between
    processes), so the verdict is not asserted: the structure is, and that the figures agree."""
    a = run(tmp_path, "--target", "local", "--model", str(KWS))
    b = run(tmp_path, "--target", "local", "--model", str(KWS))
    p = compare(tmp_path, a, b, "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["baseline"]["run_id"], o["candidate"]["run_id"]) == (a, b)
    assert o["differences"] == [] and o["by"] == "run"
    assert o["ratio_ci"][0] <= o["ratio"] <= o["ratio_ci"][1] and 0 <= o["p_value"] <= 1
    assert o["significant"] == (o["p_value"] < 0.05)
    assert o["verdict"] in ({"faster", "slower"} if o["significant"] else {"no significant difference"})
    assert o["ratio"] == pytest.approx(o["candidate"]["median_ns"] / o["baseline"]["median_ns"], rel=1e-3)
    text = compare(tmp_path, a, b).stdout
    assert "block medians" in text and "Mann–Whitney U" in text and "--processes 3" in text


def test_runs_of_three_processes_test_their_run_medians(tmp_path: Path) -> None:
    a = run(tmp_path, "--target", "local", "--model", str(DIGITS), "--processes", "3")
    b = run(tmp_path, "--target", "local", "--model", str(DIGITS), "--processes", "3")
    (o,) = json_objects(compare(tmp_path, a, b, "--json").stdout)
    assert (o["unit"], o["test"], o["n_baseline"], o["n_candidate"]) == ("run-median", "welch-t", 3, 3)
    assert o["ratio_ci"][0] <= o["ratio"] <= o["ratio_ci"][1]


def test_by_variant_meets_each_variant_with_the_base_its_recipe_names(tmp_path: Path) -> None:
    """A real float16 variant of the digits model (harness quantize writes its recipe), run beside
    its base and an unrelated model: the variant meets its base, the unrelated model meets nothing."""
    shutil.copy(DIGITS, tmp_path / DIGITS.name)
    q = harness("quantize", str(tmp_path / DIGITS.name), "--kinds", "float16", "--out", str(tmp_path), cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    variant = tmp_path / "digits_cnn.float16.tflite"
    run_id = run(tmp_path, "--target", "local", "--model", str(KWS), "--model", str(tmp_path / DIGITS.name),
                 "--model", str(variant))
    p = compare(tmp_path, "--within", run_id, "--by", "variant", "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert (o["by"], o["baseline"]["model"], o["candidate"]["model"]) == \
        ("variant", "digits_cnn.tflite", "digits_cnn.float16.tflite")
    assert [d["fact"] for d in o["differences"]] == ["model"]
    assert o["candidate"]["base_sha256"] == o["baseline"]["model_sha256"]
