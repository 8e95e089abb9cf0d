"""`harness compare` on stored runs with samples of a known distribution (written with the real
store, tests/comparekit.py): the identity refusal for each kind of difference, the pairing, the
regression gate's exit codes, the JSON contract, and a table that fits 100 columns."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from harness.render import terminal
from harness.render.compare import compare_view, comparison_grid
from harness.results import pairing
from harness.results.compare import Pair, Side, compare, differences, run_sides
from harness.results.store import RunStore
from tests.agentrun import harness, json_objects
from tests.comparekit import Bench, steady, write_run

BASE = Bench()
OTHER_BOARD = Bench(target="rpi5", board=("Raspberry Pi 5 Model B Rev 1.0", "Cortex-A76"),
                    runtime=("tflite_runtime", "2.14.0"), xnnpack=False)


def side(tmp_path: Path, bench: Bench, harness_version: str = "0.1.0", name: str = "r") -> Side:
    """The one side of a run of one benchmark."""
    (s,) = run_sides(write_run(tmp_path / name, [bench], harness_version=harness_version))
    return s


# Each kind of difference between two runs: the facts that differ, and the status of each.
CASES = {
    "nothing (a repeat)": (BASE, "0.1.0", {}),
    "the model file": (Bench(model_bytes=b"retrained"), "0.1.0", {"model": "compared"}),
    "the harness version": (BASE, "0.2.0", {"harness": "compared"}),
    "the runtime": (Bench(runtime=("ai_edge_litert", "2.4.0")), "0.1.0", {"runtime": "compared"}),
    "the delegate": (Bench(xnnpack=False), "0.1.0", {"delegate": "compared"}),
    "the threads": (Bench(threads=2), "0.1.0", {"threads": "compared"}),
    "a board as deployed": (OTHER_BOARD, "0.2.0", {"board": "compared", "runtime": "as-deployed",
                                                   "delegate": "as-deployed", "harness": "as-deployed"}),
    "a board and the model": (Bench(target="rpi5", board=OTHER_BOARD.board, model_bytes=b"v2"), "0.1.0",
                              {"board": "compared", "model": "refused"}),
    "a board and the threads": (Bench(target="rpi5", board=OTHER_BOARD.board, threads=4), "0.1.0",
                                {"board": "compared", "threads": "refused"}),
    "the model and the harness": (Bench(model_bytes=b"v2"), "0.2.0", {"model": "refused", "harness": "refused"}),
    "the model and the runtime": (Bench(model_bytes=b"v2", runtime=("tflite_runtime", "2.14.0")), "0.1.0",
                                  {"model": "refused", "runtime": "refused"}),
    "the model and the delegate": (Bench(model_bytes=b"v2", xnnpack=False), "0.1.0",
                                   {"model": "refused", "delegate": "refused"}),
}


@pytest.mark.parametrize("case", CASES)
def test_two_runs_compare_one_difference_and_refuse_more(tmp_path: Path, case: str) -> None:
    bench, version, want = CASES[case]
    pair = Pair("run", side(tmp_path, BASE), side(tmp_path, bench, version, "c"))
    assert {d.fact: d.status for d in differences(pair)} == want
    c = compare(pair)
    assert c.refused == ("refused" in want.values())
    assert (c.ratio is None) == c.refused  # a refused pair is not measured
    forced = compare(pair, force=True)
    assert not forced.refused and forced.ratio is not None
    assert {d.fact: d.status for d in forced.differences} == {f: "forced" if s == "refused" else s
                                                               for f, s in want.items()}


@pytest.mark.parametrize("by, bench, want", [
    ("board", Bench(target="rpi5", board=OTHER_BOARD.board, model_bytes=b"v2"), {"model": "refused"}),
    ("board", OTHER_BOARD, {"board": "compared", "runtime": "as-deployed", "delegate": "as-deployed"}),
    ("variant", Bench(model="m.int8.tflite", model_bytes=b"q"), {"model": "compared"}),
    ("variant", Bench(model_bytes=b"q", runtime=("ai_edge_litert", "2.4.0")), {"runtime": "refused"}),
    ("variant", Bench(model_bytes=b"q", xnnpack=False), {"delegate": "refused"}),
    ("variant", Bench(model_bytes=b"q", board=("Raspberry Pi 4", "Cortex-A72")), {"board": "refused"}),
    ("variant", Bench(model_bytes=b"q", threads=2), {"threads": "refused"}),
    ("threads", Bench(threads=2, xnnpack=False), {"threads": "compared", "delegate": "refused"}),
])
def test_what_each_kind_of_comparison_needs_equal(tmp_path: Path, by: str, bench: Bench, want: dict) -> None:
    pair = Pair(by, side(tmp_path, BASE), side(tmp_path, bench, name="c"))
    got = {d.fact: d.status for d in differences(pair)}
    assert {f: got.get(f) for f in want} == want
    assert compare(pair).refused == ("refused" in want.values())


def test_runs_pair_by_target_model_and_threads_leaving_out_what_each_run_holds_one_of(tmp_path: Path) -> None:
    a = run_sides(write_run(tmp_path / "a", [Bench(model="x.tflite"), Bench(model="y.tflite"),
                                             Bench(model="y.tflite", threads=2)]))
    b = run_sides(write_run(tmp_path / "b", [Bench(model="y.tflite", threads=2), Bench(model="x.tflite"),
                                             Bench(model="z.tflite")]))
    pairs, notes = pairing.across_runs(a, [b])
    assert [(p.baseline.benchmark.model, p.candidate.benchmark.threads) for p in pairs] == \
        [("y.tflite", 2), ("x.tflite", 1)]
    assert any("z.tflite" in n and "no counterpart" in n for n in notes)
    assert any("y.tflite t1" in n for n in notes)
    # one board per run: the runs meet by model and threads, a board comparison
    rpi5 = run_sides(write_run(tmp_path / "c", [OTHER_BOARD]))
    (p,), _ = pairing.across_runs(run_sides(write_run(tmp_path / "d", [BASE])), [rpi5])
    assert (p.baseline.benchmark.target, p.candidate.benchmark.target) == ("local", "rpi5")


def test_within_a_run_each_group_meets_its_first_member(tmp_path: Path) -> None:
    run = run_sides(write_run(tmp_path, [
        Bench(target="local", model="a.tflite"), Bench(target="local", model="a.tflite", threads=2),
        Bench(target="local", model="b.tflite"), Bench(target="mcu", model="a.tflite", emulated=True,
                                                       board=("mcu-emulator", "host CPU"))]))
    by_board, notes = pairing.within(run, "board")
    assert [(p.baseline.benchmark.target, p.candidate.benchmark.target, p.candidate.benchmark.model)
            for p in by_board] == [("local", "mcu", "a.tflite")]
    assert len(notes) == 2  # a.tflite t2 and b.tflite are on one board only
    by_threads, _ = pairing.within(run, "threads")
    assert [(p.baseline.benchmark.threads, p.candidate.benchmark.threads) for p in by_threads] == [(1, 2)]
    by_variant, _ = pairing.within(run, "variant")
    assert [(p.baseline.benchmark.model, p.candidate.benchmark.model) for p in by_variant] == \
        [("a.tflite", "b.tflite")]


def runs(tmp_path: Path, candidate: Bench, *, version: str = "0.1.0") -> tuple[str, str]:
    """A baseline run of BASE and a candidate run, under tmp_path/results; their ids."""
    results = tmp_path / "results"
    a = write_run(results, [BASE], run_id="base", seed=1)
    b = write_run(results, [candidate], run_id="cand", seed=2, harness_version=version)
    return a.name, b.name


def compare_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness("compare", "--results", str(tmp_path / "results"), *args, cwd=tmp_path)


def test_the_gate_passes_what_is_not_slower(tmp_path: Path) -> None:
    a, b = runs(tmp_path, Bench(sampler=steady(60_000)))
    p = compare_cli(tmp_path, a, b, "--fail-if-slower", "0")
    assert p.returncode == 0, p.stderr
    assert "no significant difference" in p.stdout and "block medians" in p.stdout
    faster = tmp_path / "faster"
    a, b = runs(faster, Bench(sampler=steady(50_000)))
    p = compare_cli(faster, a, b, "--fail-if-slower", "0")
    assert p.returncode == 0, p.stderr
    assert "is 1.2" in p.stdout and "faster than base" in p.stdout


def test_the_gate_fails_a_significant_slowdown_beyond_pct(tmp_path: Path) -> None:
    a, b = runs(tmp_path, Bench(sampler=steady(66_000)))  # 10 % slower
    plain = compare_cli(tmp_path, a, b)
    assert plain.returncode == 0 and "slower than base" in plain.stdout  # no gate, no failure
    gate = compare_cli(tmp_path, a, b, "--fail-if-slower", "5")
    assert gate.returncode == 1
    assert "regression" in gate.stderr and "more than --fail-if-slower 5 %" in gate.stderr
    assert compare_cli(tmp_path, a, b, "--fail-if-slower", "20").returncode == 0  # slower, within 20 %


def test_a_refused_comparison_exits_1_and_says_why_and_force_names_the_differences(tmp_path: Path) -> None:
    a, b = runs(tmp_path, Bench(model_bytes=b"retrained", runtime=("tflite_runtime", "2.14.0")))
    p = compare_cli(tmp_path, a, b)
    assert p.returncode == 1
    assert "refused to compare" in p.stderr and "model" in p.stderr and "tflite_runtime 2.14.0" in p.stderr
    assert "--force" in p.stderr
    forced = compare_cli(tmp_path, a, b, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "forced, also differs in" in forced.stdout and "runtime tflite_runtime 2.14.0 vs" in forced.stdout
    (obj,) = json_objects(compare_cli(tmp_path, a, b, "--force", "--json").stdout)
    assert {d["fact"]: d["status"] for d in obj["differences"]} == {"model": "forced", "runtime": "forced"}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    a, b = runs(tmp_path, BASE)
    for args in ([a], [a, b, "--by", "board"], ["--within", a, b], [a, b, "--fail-if-slower", "-1"],
                 [a, b, "--metric", "wall"], [a, b, "--fail-if-slower", "nan"]):
        p = compare_cli(tmp_path, *args)
        assert p.returncode == 2, (args, p.stderr)


def test_other_kinds_of_run_and_missing_runs_are_refused_in_one_line(tmp_path: Path) -> None:
    a, _ = runs(tmp_path, BASE)
    RunStore(tmp_path / "results", "prof", kind="profile").start({})
    p = compare_cli(tmp_path, a, "prof")
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert "prof is a profile run: harness compare compares benchmark and stream runs" in p.stderr
    assert compare_cli(tmp_path, a, "nosuchrun").returncode == 1


def test_json_contract(tmp_path: Path) -> None:
    a, b = runs(tmp_path, Bench(sampler=steady(66_000)))
    p = compare_cli(tmp_path, a, b, "--json")
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert len(p.stdout.splitlines()) == 1  # stdout holds the results only
    assert o["kind"] == "comparison" and o["metric"] == "invoke" and o["by"] == "run"
    for side, run_id in (("baseline", "base"), ("candidate", "cand")):
        assert {"target", "model", "threads", "run_id", "runtime", "runtime_version", "median_ns"} <= set(o[side])
        assert o[side]["run_id"] == run_id and o[side]["target"] == "local"
    assert o["ratio"] == pytest.approx(1.1, abs=0.02)
    assert o["ratio_ci"][0] <= o["ratio"] <= o["ratio_ci"][1]
    assert o["ratio"] == pytest.approx(o["candidate"]["median_ns"] / o["baseline"]["median_ns"], rel=1e-4)
    assert (o["test"], o["unit"], o["n_baseline"], o["n_candidate"]) == ("mann-whitney-u", "block-median", 10, 10)
    assert o["significant"] is True and o["verdict"] == "slower" and o["p_value"] < 0.05
    assert o["differences"] == []
    loop = json_objects(compare_cli(tmp_path, a, b, "--json", "--metric", "loop").stdout)[0]
    assert loop["metric"] == "loop"  # the with-Invoke loop: Invoke plus the 3 µs the rest takes
    assert loop["baseline"]["median_ns"] == pytest.approx(o["baseline"]["median_ns"] + 3_000, abs=1)
    assert loop["ratio"] < o["ratio"]


def test_processes_make_run_median_units_and_few_of_them_welch(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for n in (3, 5):
        write_run(results, [Bench(processes=n, blocks=2)], run_id=f"a{n}", seed=n)
        write_run(results, [Bench(processes=n, blocks=2)], run_id=f"b{n}", seed=n + 10)
    three = json_objects(compare_cli(tmp_path, "a3", "b3", "--json").stdout)[0]
    five = json_objects(compare_cli(tmp_path, "a5", "b5", "--json").stdout)[0]
    assert (three["unit"], three["test"], three["n_baseline"]) == ("run-median", "welch-t", 3)
    assert (five["unit"], five["test"], five["n_baseline"]) == ("run-median", "mann-whitney-u", 5)
    mixed = json_objects(compare_cli(tmp_path, "a3", "b5", "--json").stdout)[0]
    assert mixed["unit"] == "run-median"
    text = compare_cli(tmp_path, "a3", "b3").stdout
    assert "run medians" in text and "Welch's t" in text


LONG = "mobilenet_v1_025_96.mixed-except-top3.tflite"


def test_the_table_fits_100_columns_and_cuts_nothing(tmp_path: Path) -> None:
    run = run_sides(write_run(tmp_path, [
        Bench(target="camera-pi-kitchen-north-03", model=LONG, threads=4),
        Bench(target="jetson-orin-nano-devkit", model=LONG, threads=4, sampler=steady(20_000),
              board=("NVIDIA Jetson Orin Nano", "ARMv8"), runtime=("tflite_runtime", "2.14.0")),
        Bench(target="mcu-sim", model=LONG, threads=4, emulated=True, sampler=steady(6_000_000),
              board=("mcu-emulator", "host CPU"), runtime=("tflite-micro", "0.dev20261023182759-g8f6596d")),
        Bench(target="local", model="digits_cnn.tflite", threads=1),
        Bench(target="mcu-sim", model="digits_cnn.tflite", threads=1, emulated=True, sampler=steady(60_500),
              board=("mcu-emulator", "host CPU"))]))
    comparisons = [compare(p) for p in pairing.within(run, "board")[0]]
    console = Console(width=100, record=True, color_system=None)
    for item in compare_view(comparisons, 100):
        console.print(item)
    text = console.export_text()
    assert "…" not in text and max(cell_len(line) for line in text.splitlines()) <= 100
    (part,) = terminal.fit(comparison_grid(comparisons).narrow(False), 100)  # one table, not split
    for row in part.grid.rows:
        for c, w in zip(row.cells, part.widths, strict=True):
            for line in c.lines(w):
                assert line in text
    lines = [line for line in text.splitlines() if " faster than " in line or " slower than " in line]
    # the fastest first in each group: the Jetson before the Pi's baseline-relative slower MCU
    found = re.match(r"jetson-orin-nano-devkit is (\d\.\d\d)× ± 0\.0\d faster than camera-pi-kitchen-north-03",
                     lines[0])
    assert found and float(found[1]) == pytest.approx(3.0, abs=0.05)  # 60 µs against 20 µs
    assert "mcu-sim* is" in lines[1] and "slower" in lines[1]
    assert "as deployed: runtime tflite_runtime 2.14.0 vs ai_edge_litert 2.3.0" in " ".join(text.split())
    assert "no significant difference" in text  # digits on mcu-sim: 60.5 µs against 60 µs, 1 % block noise
    assert "* emulated" in text


def test_the_output_is_the_same_each_time_it_is_recomputed(tmp_path: Path) -> None:
    a, b = runs(tmp_path, Bench(sampler=steady(61_000)))
    first = compare_cli(tmp_path, a, b, "--json").stdout
    assert first == compare_cli(tmp_path, a, b, "--json").stdout
    assert json.loads(first)["ratio_ci"] is not None


def test_each_variant_meets_its_own_base_and_without_variants_the_first_model(tmp_path: Path) -> None:
    """Without variants each model meets the run's first; with their bases (from the recipe files
    of harness quantize), each variant meets its own base and a base meets nothing."""
    models = ["a.tflite", "b.tflite", "a.int8.tflite", "b.float16.tflite"]
    run = run_sides(write_run(tmp_path, [Bench(model=m, model_bytes=m.encode()) for m in models]))
    first, _ = pairing.within(run, "variant")
    assert [(p.baseline.benchmark.model, p.candidate.benchmark.model) for p in first] == \
        [("a.tflite", "b.tflite"), ("a.tflite", "a.int8.tflite"), ("a.tflite", "b.float16.tflite")]

    def recipe_base(side: Side, group: Sequence[Side]) -> Side | None:
        stem = side.benchmark.model.split(".")[0]
        return next((s for s in group if s.benchmark.model == f"{stem}.tflite"), None)

    own, _ = pairing.within(run, "variant", baseline_of=recipe_base)
    assert [(p.baseline.benchmark.model, p.candidate.benchmark.model) for p in own] == \
        [("a.tflite", "a.int8.tflite"), ("b.tflite", "b.float16.tflite")]

    sides = {s.benchmark.model: s for s in run}
    bases = {"a.int8.tflite": sides["a.tflite"].benchmark.model_sha256,
             "b.float16.tflite": "f" * 64}  # b.float16's base did not run
    with_recipes = [replace(s, base_sha256=bases.get(s.benchmark.model)) for s in run]
    pairs, notes = pairing.within(with_recipes, "variant")
    assert [(p.baseline.benchmark.model, p.candidate.benchmark.model) for p in pairs] == \
        [("a.tflite", "a.int8.tflite")]
    assert notes == ["local · b.float16.tflite t1: its base (sha256 ffffffffffff) did not run here"]
