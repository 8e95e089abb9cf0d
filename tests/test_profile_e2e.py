"""Adaptive per-layer profiles end to end: the real agent and runtime on the local target (LiteRT,
and the Raspberry-Pi-like board venv with numpy<2 + tflite-runtime 2.14), a millisecond-scale
model of 29-52 ops with tiny ops among big ones (tests/modelkit.py deep_cnn), XNNPACK off and on.
The estimator's arithmetic against known layer times: tests/test_layer_estimator.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.config import Target, parse_targets
from harness.plan import ProfilePlan
from harness.results.layers import LayerProfile, stored_profiles
from harness.scenarios.profile import run_profile
from tests.agentrun import json_objects
from tests.modelkit import deep_cnn

BOUND_S = 20.0  # the time bound of the CLI test; a stop may pass it by at most 0.5 s
QUICK_S = 12.0  # the bound of each runtime/XNNPACK case (each runs to it on a loaded machine)
SUM_TOLERANCE = 0.10  # as tests/test_prefixes.py: the floor at which the check still catches a lost layer
BLOCKS, LRN_AFTER = 8, 3
LRN = 3 * LRN_AFTER + 4  # the op XNNPACK does not take: the stem and 4 blocks come before it
OPS = 4 + 3 * BLOCKS + 1


def target(name: str, python: Path | None = None) -> Target:
    line = f'python = "{python}"\n' if python else ""
    return parse_targets(f'[targets.{name}]\nkind = "local"\n{line}', "test-targets.toml")[name]


def check_adaptive(p: LayerProfile, bound_s: float = BOUND_S) -> None:
    """What every adaptive profile must hold: it says why it stopped, within the bound, and the SE
    target was met when it says "stable"; the layers add up; no time is negative."""
    assert p.stop is not None and p.stop.by in ("stable", "max_time"), p.stop
    assert p.stop.max_time_s == bound_s and p.stop.target_se == 0.02
    assert p.stop.wall_s is not None and p.stop.wall_s <= bound_s + 0.5, p.stop
    if p.stop.by == "stable":
        assert p.sum_check_se < 0.02
    assert p.stop.rounds == len(p.rounds_ns) and p.stop.sessions >= 1
    assert abs(p.sum_check) <= max(SUM_TOLERANCE, 3 * p.sum_check_se), (p.sum_check, p.sum_check_se)
    assert all(row.ns > 0 for row in p.groups if row.resolved)


def test_cli_adaptive_profile_states_its_bound_and_se_and_show_reads_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = deep_cnn(tmp_path / "deep.tflite")
    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.here]\nkind = "local"\n')
    results = tmp_path / "results"
    assert main(["analyze", str(model), "--targets", str(targets), "--results", str(results), "--profile", "here",
                 "--max-time", f"{BOUND_S:g}", "--target-se", "2"]) == 0
    out = capsys.readouterr()
    assert f"until the sum check's SE is under 2 %, at most {BOUND_S:g} s" in out.err  # said before it starts
    stopped = next(line for line in out.out.splitlines() if line.startswith("stopped: "))
    assert f"time bound {BOUND_S:g} s" in stopped or f"the {BOUND_S:g} s time bound came first" in stopped
    (run,) = results.iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert (meta["kind"], meta["status"]) == ("profile", "complete")
    assert meta["plan"]["rounds"] is None and meta["plan"]["max_time_s"] == BOUND_S
    # harness show recomputes the same profile from the stored raw rounds of every session
    assert main(["show", run.name, "--results", str(results), "--json"]) == 0
    (shown,) = json_objects(capsys.readouterr().out)
    assert shown["kind"] == "profile" and shown["complete"] is True
    assert f"± {100 * shown['sum_check_se']:.1f} % from measurement noise" in out.out
    assert shown["stop"]["by"] in stopped or (shown["stop"]["by"] == "max_time" and "came first" in stopped)
    assert len(shown["groups"]) == len(shown["layers"]) == 52
    (record,) = stored_profiles(run)
    assert record.complete and record.profile is not None
    check_adaptive(record.profile)
    lines = [json.loads(line) for line in next((run / "profiles").glob("*.jsonl")).read_text().splitlines()]
    sessions = [m for m in lines if m["type"] == "session"]
    assert len(sessions) == record.profile.stop.sessions and lines[-2]["type"] == "stop"
    assert main(["show", str(run)]) == 0
    shown_text = capsys.readouterr().out
    assert "layers add up" in shown_text and stopped in shown_text


def _expected_rows(xnnpack: bool) -> list[tuple[int, int, bool]]:
    if not xnnpack:
        return [(i, i, False) for i in range(OPS)]
    return [(0, LRN - 1, True), (LRN, LRN, False), (LRN + 1, OPS - 1, True)]


@pytest.mark.parametrize(("board", "xnnpack"), [("litert", True), ("tflite214", False), ("tflite214", True)])
def test_adaptive_profile_on_each_runtime_with_xnnpack_off_and_on(tmp_path: Path, board: str, xnnpack: bool,
                                                                 request: Any) -> None:
    """XNNPACK on: the delegate's two partitions around the op it cannot take are rows of their own,
    timed as the benchmarked model runs them, and the profile says what the fusion hides."""
    python = request.getfixturevalue("tflite214_python") if board == "tflite214" else None
    model = deep_cnn(tmp_path / "deep_lrn.tflite", blocks=BLOCKS, lrn_after=LRN_AFTER)
    plan = ProfilePlan(xnnpack=xnnpack, max_time_s=QUICK_S)
    run = run_profile(target("pi" if python else "here", python), model, tmp_path / "work", tmp_path / "results",
                      plan)
    assert run.status == "complete" and run.outcome is not None and run.outcome.profile is not None
    p = run.outcome.profile
    assert p.runtime == ("tflite_runtime" if python else "ai_edge_litert") and p.xnnpack is xnnpack
    check_adaptive(p, QUICK_S)
    assert [(row.first, row.last, row.fused) for row in p.groups] == _expected_rows(xnnpack)
    if xnnpack:
        assert p.delegated == (tuple(range(LRN)), tuple(range(LRN + 1, OPS)))
        assert p.groups[1].types == ("LOCAL_RESPONSE_NORMALIZATION",) and p.groups[1].resolved
        assert all(row.resolved and row.delegate == "XNNPACK" for row in p.groups if row.fused)
        note = next(n for n in p.notes if n.startswith(f"XNNPACK took ops 0–{LRN - 1}, {LRN + 1}–{OPS - 1}"))
        assert "split estimates" in note and "--xnnpack off" in note
        assert [layer.group for layer in p.layers] == [0] * LRN + [1] + [2] * (OPS - 1 - LRN)
    else:
        assert p.delegated in ([], ())  # the agent lists the (absent) delegate nodes on both runtimes
        assert not any(n.startswith("XNNPACK") for n in p.notes)
        # The stem convolution, timed between the two shortest prefixes, is resolved on any load;
        # later rows' noise grows with their prefix (on a loaded 2-core machine many are below
        # resolution within the bound), and the notes count them.
        assert p.groups[0].types == ("CONV_2D",) and p.groups[0].resolved
        low = sum(not row.resolved for row in p.groups)
        assert not low or any(n.startswith(f"{low} of {OPS} rows below resolution") for n in p.notes)
