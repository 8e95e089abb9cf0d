"""The results table fits a terminal: nothing cut ("…" never appears), nothing lost, at 100 columns
with long names, emulated, failed and incomplete rows, and gracefully narrower. Pure rendering:
the benchmarks are built from synthetic samples, the console is rich's own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from harness.render import terminal
from harness.render.grid import Cell, Column, Grid, Row, cell, name
from harness.render.notes import notes as notes_of
from harness.render.results import grid_for, results_view
from harness.results.benchmark import Benchmark, Block
from harness.results.summary import BenchmarkSummary, summarize

LONG_MODEL = "mobilenet_v1_025_96.mixed-top3.tflite"
LONG_TARGET = "camera-pi-kitchen-north-03"


def bench(target: str, model: str, *, with_ns: int = 1_000_000, without_ns: int = 120_000, threads: int = 1,
          emulated: bool = False, noisy: bool = False, error: dict | None = None, complete: bool = True,
          blocks: int = 4) -> Benchmark:
    """A benchmark of ``blocks`` ABBA blocks of 50 samples per half around the given medians."""
    if error is not None and not complete:
        return Benchmark(target=target, model=model, model_sha256="0" * 64, threads=threads, plan={},
                         hello={"emulated": emulated}, error=error)
    spread = (lambda i: 2.5 if i % 10 == 0 else 1.0) if noisy else (lambda i: 1.0 + (i % 5) / 1000)
    out = []
    for b in range(blocks):
        w = tuple(int(with_ns * spread(i) * (1 + b / 500)) for i in range(50))
        o = tuple(int(without_ns * spread(i)) for i in range(50))
        halves = [Block("with", b, w, {"invoke": tuple(x - without_ns for x in w)}, None, None),
                  Block("without", b, o, {}, None, None)]
        out += halves if b % 2 == 0 else halves[::-1]
    runtime = {"name": "tflite-micro" if emulated else "ai_edge_litert", "version": "2.1"}
    return Benchmark(target=target, model=model, model_sha256="0" * 64, threads=threads, plan={},
                     hello={"runtime": runtime, "clock": {"resolution_ns": 1}, "emulated": emulated},
                     model_info={"init_ns": 1_234_567}, first_invoke_ns=2 * with_ns,
                     resolved_plan={"iterations": 50 * blocks, "stages": ["invoke"]}, blocks=tuple(out),
                     summary={"iterations": 50 * blocks} if complete else None, error=error,
                     model_facts={"flops": 12_000_000})


def lab() -> list[BenchmarkSummary]:
    return [summarize(b) for b in (
        bench("local", "ds_cnn_kws.tflite", noisy=True),
        bench("local", LONG_MODEL, with_ns=254_000, without_ns=6_250),
        bench(LONG_TARGET, LONG_MODEL, threads=4, with_ns=12_300_000, without_ns=9_900_000, noisy=True),
        bench("mcu-sim", "mobilenet_v1_025_96.tflite", with_ns=9_070_000, without_ns=5_340, emulated=True),
        bench("local", "broken.tflite", complete=False,
              error={"code": "bad_model", "message": "broken.tflite is not a TFLite flatbuffer",
                     "hint": "pass a .tflite file"}),
        bench("local", "digits_cnn.tflite", complete=False, with_ns=14_900, without_ns=1_880),
    )]


def shown(summaries: list[BenchmarkSummary], width: int, wide: bool = False) -> str:
    console = Console(width=width, record=True, color_system=None)
    for item in results_view(summaries, "harness run 20261201-000000-abcd", wide, width):
        console.print(item)
    return console.export_text()


def assert_nothing_cut_or_lost(summaries: list[BenchmarkSummary], width: int, wide: bool = False) -> str:
    text = shown(summaries, width, wide)
    assert "…" not in text
    assert max(cell_len(line) for line in text.splitlines()) <= width
    grid = grid_for(summaries, None, wide)
    parts = terminal.fit(grid, width)
    assert {c.key for p in parts for c in p.grid.columns} == {c.key for c in grid.columns}  # no column dropped
    for part in parts:
        for row in part.grid.rows:
            for c, w in zip(row.cells, part.widths, strict=True):
                for line in c.lines(w):
                    assert line in text, (line, w)
    return text


def test_the_default_table_fits_100_columns_with_long_names() -> None:
    summaries = lab()
    text = assert_nothing_cut_or_lost(summaries, 100)
    assert len(terminal.fit(grid_for(summaries, None, False), 100)) == 1  # one table, not split
    for header in ("Target", "Model", "Thr", "Invoke ± MAD", "Inference share", "Loops/s"):
        assert header in text
    assert "Runtime" not in text and "GFLOP/s" not in text  # those are --wide columns
    # the long names are wrapped where they break naturally, never cut
    assert "mobilenet_v1_025_96." in text and "mixed-top3.tflite" in text
    assert "mcu-sim*" in text and "* emulated: host timings of the device code, not the device's (mcu-sim)" in text


def test_narrower_terminals_wrap_then_split_and_lose_nothing() -> None:
    summaries = lab()
    assert len(terminal.fit(grid_for(summaries, None, False), 80)) == 1
    assert_nothing_cut_or_lost(summaries, 80)
    text = assert_nothing_cut_or_lost(summaries, 50)
    parts = terminal.fit(grid_for(summaries, None, False), 50)
    assert len(parts) > 1
    for part in parts:  # every part says which row is which
        assert [c.key for c in part.grid.columns][:3] == ["target", "model", "threads"]
    assert "(2/" in text


def test_wide_shows_every_column_and_still_cuts_nothing() -> None:
    summaries = lab()
    for width in (100, 250):
        text = assert_nothing_cut_or_lost(summaries, width, wide=True)
        for header in ("Runtime", "Init", "GFLOP/s", "speed-up", "σ/med"):
            assert header in text
    (part,) = terminal.fit(grid_for(summaries, None, True), None)  # a pipe: every cell on one line
    assert all(len(c.lines(w)) == 1 for r in part.grid.rows for c, w in zip(r.cells, part.widths, strict=True))


def test_warnings_are_grouped_one_line_per_kind() -> None:
    text = shown(lab(), 400)  # wide enough that no line under the table wraps
    lines = text.splitlines()
    unstable = [line for line in lines if line.startswith("warning: unstable")]
    assert len(unstable) == 1
    assert "local · ds_cnn_kws t1 (σ" in unstable[0] and f"{LONG_TARGET} · {LONG_MODEL[:-7]} t4 (σ" in unstable[0]
    assert unstable[0].endswith("→ run longer (--duration), close other programs, or set the CPU governor to performance")
    assert sum(line.startswith("warning: cut short") for line in lines) == 1
    # one short verdict per measured row, one error line with its fix per failed row
    assert "local · ds_cnn_kws t1: a model 2× faster makes the loop" in text
    (error,) = [line for line in lines if "error:" in line]
    assert error == ("local · broken t1: error: broken.tflite is not a TFLite flatbuffer "
                     "(fix: pass a .tflite file)")
    assert not any(line.startswith("local · broken t1: a model") for line in lines)
    assert "failed" in text  # in the table's row
    assert f"{LONG_TARGET} · {LONG_MODEL[:-7]} t4: look at the rest of the application first" in text


def test_share_shows_its_interval_and_one_block_shows_none() -> None:
    text = shown([summarize(bench("local", "a.tflite")), summarize(bench("local", "b.tflite", blocks=1))], 100)
    (a,) = [line for line in text.splitlines() if line.split()[:2] == ["local", "a.tflite"]]
    (b,) = [line for line in text.splitlines() if line.split()[:2] == ["local", "b.tflite"]]
    assert "88.04 % ± 0.05 %" in a  # 4 blocks: an interval
    assert " 88 % " in b and b.count("±") == 1  # the Invoke spread only: one block gives no interval


@given(st.text(alphabet="abcxyz019._-/", min_size=1, max_size=60), st.integers(min_value=1, max_value=40))
def test_a_wrapped_name_joins_back_to_itself(text: str, width: int) -> None:
    c = name(text)
    assert "".join(c.parts) == text
    lines = c.lines(width)
    assert "".join(lines) == text
    assert all(cell_len(line) <= max(width, c.min_width) for line in lines)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="abcdefghij_.-", min_size=1, max_size=45),
                          st.integers(min_value=0, max_value=10**9)), min_size=1, max_size=8),
       st.integers(min_value=40, max_value=160))
def test_any_grid_fits_without_cutting(rows: list[tuple[str, int]], width: int) -> None:
    columns = (Column("name", "Name", "left", repeat=True, shrink=0), Column("a", "Figure A"),
               Column("b", "Figure B with a long header"), Column("c", "C"), Column("d", "Figure D"))
    grid = Grid(columns, tuple(Row((name(n), cell(f"{v:,}"), cell(f"{v} ns", f" / {v // 3} ns"),
                                    cell(str(v % 7)), cell(f"{v / 7:.3g} %", " ± 1 %"))) for n, v in rows))
    console = Console(width=width, record=True, color_system=None)
    for t in terminal.render(grid, width):
        console.print(t)
    text = console.export_text()
    assert "…" not in text
    assert max(cell_len(line) for line in text.splitlines()) <= width
    for part in terminal.fit(grid, width):
        for row in part.grid.rows:
            for c, w in zip(row.cells, part.widths, strict=True):
                assert all(line in text for line in c.lines(w))


def test_a_cell_breaks_only_between_its_parts() -> None:
    c = Cell(("238 µs", " / 6.25 µs"))
    assert c.lines(20) == ["238 µs / 6.25 µs"]
    assert c.lines(10) == ["238 µs", "/ 6.25 µs"]
    assert c.lines(3) == ["238 µs", "/ 6.25 µs"]  # never inside a figure, even when too narrow
    assert name("mobilenet_v1_025_96.mixed-top3.tflite").lines(20) == ["mobilenet_v1_025_96.", "mixed-top3.tflite"]
    assert name("averyveryverylongnamewithoutbreaks").min_width == 12


def test_kinds_of_one_code_are_listed_together() -> None:
    """Row a: rare outliers and a slow first iteration; row b: a broad spread. The two kinds of
    "unstable" come first, together, then the first iteration."""
    a = bench("local", "a.tflite", with_ns=100_000, without_ns=10_000)

    def spoil(i: int, x: int, block: int) -> int:
        return 3 * x if block == 0 and i == 0 else 200 * x if i == 7 else x

    blocks = tuple(Block(b.mode, b.index, tuple(spoil(i, x, b.index) for i, x in enumerate(b.loop_ns)),
                         {k: tuple(spoil(i, x, b.index) for i, x in enumerate(v)) for k, v in b.stages.items()},
                         None, None) for b in a.blocks)
    spoiled = Benchmark(**{**a.__dict__, "blocks": blocks})
    b = bench("local", "b.tflite", with_ns=100_000, without_ns=10_000, noisy=True)
    b = Benchmark(**{**b.__dict__, "blocks": tuple(Block(x.mode, x.index, x.loop_ns[1:],
                                                         {k: v[1:] for k, v in x.stages.items()}, None, None)
                                                   for x in b.blocks)})  # no slow first iteration
    lines = [t.plain for t in notes_of([summarize(spoiled), summarize(b)])]
    kinds = [line.split(": ")[1] for line in lines if line.startswith("warning:")]
    assert kinds == ["unstable (σ over 10 % of the median), from rare outliers",
                     "unstable (σ over 10 % of the median), a broad spread",
                     "first timed iteration over 2× the median"], lines
