"""Latency predicted from FLOPs (harness.results.prediction), checked against figures worked out by
hand: FLOPs counted in the test, Invoke times recorded in a stored run or measured by a real local
run, and the expected throughput and predictions written as literal arithmetic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.models.analysis import analyze
from tests.modelkit import one_conv, one_depthwise, one_fc, small_cnn


def test_throughput_and_leave_one_out_on_exact_data() -> None:
    """A board that runs 2 FLOPs per ns exactly: every prediction is exact; groups stay apart."""
    from harness.results.prediction import Measured, throughputs, validate_predictions

    data = [Measured("pi", f"m{i}", "float32", 1, flops, flops / 2.0) for i, flops in enumerate((10**6, 4 * 10**6,
                                                                                                 9 * 10**6))]
    data.append(Measured("pi", "q", "int8", 1, 10**6, 10**6 / 8.0))  # its own group: one model
    data.append(Measured("pi", "m0", "float32", 4, 10**6, 10**6 / 6.0))  # other thread count
    fitted = {(t.precision, t.threads): t for t in throughputs(data)}
    assert fitted[("float32", 1)].gflops == pytest.approx(2.0)
    assert fitted[("int8", 1)].gflops == pytest.approx(8.0)
    assert fitted[("float32", 4)].gflops == pytest.approx(6.0)
    assert fitted[("float32", 1)].predict_ns(5 * 10**6) == pytest.approx(2.5 * 10**6)
    checks = validate_predictions(data)
    assert sorted(c.model for c in checks) == ["m0", "m1", "m2"]  # single-model groups cannot be validated
    assert all(c.error == pytest.approx(0.0) for c in checks)


def _recorded_run(results: Path, invoke_ns: dict[Path, list[int]]) -> Path:
    """A stored run of board "pi" in which each model's Invoke stage recorded ``invoke_ns``,
    written with the store's own writer, as `harness run` leaves it."""
    from harness.models.files import sha256
    from harness.plan import Job, Plan
    from harness.results.store import RunStore

    run = RunStore(results, "20260101-000000-pi")
    run.start({"models": {str(m): sha256(m) for m in invoke_ns}})
    for model, samples in invoke_ns.items():
        writer = run.open_benchmark(Job("pi", model, sha256(model), 1, Plan()))
        writer.message({"type": "hello", "runtime": {"name": "ai_edge_litert", "version": "2.3"}})
        writer.message({"type": "samples", "mode": "with", "block": 0, "loop_ns": [s + 100 for s in samples],
                        "stages": {"invoke": samples}})
        writer.end(complete=True)
    run.finish("complete")
    return run.path


def test_prediction_against_hand_computed_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FLOPs counted by hand, Invoke times recorded on a board: the predicted latency of a third
    model is worked out here with literal numbers, not with the code under test."""
    from harness.cli import main

    conv = one_conv(tmp_path / "conv.tflite")  # 4x4x8 outputs of 3x3x3 MACs: 2 * 3456 = 6912 FLOPs
    dw = one_depthwise(tmp_path / "dw.tflite")  # 10x10x4 outputs of 3x3 MACs: 2 * 3600 = 7200 FLOPs
    fc = one_fc(tmp_path / "fc.tflite")  # 7 outputs of 20 MACs: 2 * 140 = 280 FLOPs
    run = _recorded_run(tmp_path / "results", {conv: [3400, 3456, 3900], dw: [4700, 4800, 5000]})

    assert main(["analyze", str(fc), "--predict-from", str(run), "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)["prediction"]
    (fitted,) = prediction["throughputs"]
    assert (fitted["target"], fitted["precision"], fitted["threads"]) == ("pi", "float32", 1)
    # The board did (6912 + 7200) FLOPs in (3456 + 4800) ns of median Invoke.
    assert fitted["gflops"] == pytest.approx(14112 / 8256)
    assert fitted["predicted_ns"] == pytest.approx(280 / (14112 / 8256))  # 163.8 ns
    # Leave one out: conv from dw alone (1.5 FLOPs/ns) and dw from conv alone (2 FLOPs/ns).
    checks = {v["model"]: v for v in prediction["validation"]}
    assert checks["conv.tflite"]["predicted_ns"] == pytest.approx(6912 / 1.5)  # 4608 ns
    assert checks["conv.tflite"]["error"] == pytest.approx((4608 - 3456) / 3456)
    assert checks["dw.tflite"]["predicted_ns"] == pytest.approx(7200 / 2.0)  # 3600 ns
    assert checks["dw.tflite"]["error"] == pytest.approx((3600 - 4800) / 4800)
    # The per-op fit never saw a FULLY_CONNECTED on "pi": its prediction says it extrapolates.
    (board,) = prediction["boards"]
    assert any(note.startswith("FULLY_CONNECTED (fully_connected) never measured on pi")
               for note in board["extrapolated"])
    assert main(["analyze", str(fc), "--predict-from", str(run)]) == 0
    human = capsys.readouterr().out
    assert "extrapolated: FULLY_CONNECTED" in human
    # The prediction's tables fit 100 columns; the lines under them stay whole, for grep.
    tables = human[human.index("predicted per board"):].splitlines()
    assert max(len(line) for line in tables if not line.startswith(("extrapolated:", "* "))) <= 100


def test_cli_predicts_from_a_real_local_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.here]\nkind = "local"\n')
    models = [one_conv(tmp_path / "conv.tflite", h=24, w=24, c=8, oc=16, stride=1), small_cnn(tmp_path / "cnn.tflite"),
              one_depthwise(tmp_path / "dw.tflite")]
    results = tmp_path / "results"
    argv = ["run", "--targets", str(targets), "--duration", "0.05", "--min-iterations", "20", "--blocks", "2",
            "--xnnpack", "off", "--results", str(results)]
    for m in models:
        argv += ["--model", str(m)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["analyze", str(small_cnn(tmp_path / "other.tflite")), "--predict-from", "latest",
                 "--results", str(results), "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)["prediction"]
    (fitted,) = prediction["throughputs"]
    assert (fitted["target"], fitted["precision"], fitted["threads"]) == ("here", "float32", 1)
    assert fitted["gflops"] > 0 and fitted["predicted_ns"] > 0
    assert sorted(v["model"] for v in prediction["validation"]) == sorted(m.name for m in models)
    assert all(math.isfinite(v["error"]) for v in prediction["validation"])
    # The human view prints the per-board error table.
    assert main(["analyze", str(models[0]), "--predict-from", "latest", "--results", str(results)]) == 0
    assert "prediction error per board" in capsys.readouterr().out
    # A model file changed since the run cannot have its FLOPs counted: left out, and said so.
    from harness.results import store
    from harness.results.prediction import measured_from_run

    small_cnn(models[2])  # other bytes at the same path
    measured, skipped = measured_from_run(store.resolve_run(results, None))
    assert sorted(m.model for m in measured) == sorted(m.name for m in models[:2])
    assert skipped == [f"here {models[2].name}: the model file measured is no longer at {models[2]}"]


def test_predict_from_a_run_without_invoke_names_the_run(tmp_path: Path) -> None:
    from harness.results.prediction import predict

    run = tmp_path / "20260101-000000-empty"
    (run / "benchmarks").mkdir(parents=True)
    with pytest.raises(ConfigError, match="run '20260101-000000-empty' has no Invoke measurements"):
        predict(analyze(small_cnn(tmp_path / "cnn.tflite")), run)
