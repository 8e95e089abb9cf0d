"""The tables of variants, as Grids laid out by harness.render.terminal (they fit 100 columns).

`harness quantize`: one row per variant made: its name, its scheme as `harness analyze` reports
it, its size and the size relative to the float32 base, the layers that compute in int8, and the
time it took; the files are named under it.

`harness run` with variants: one table per board, each variant against its float32 base on that
board (harness.results.variants): size, median Invoke, speed-up with its 95 % interval, and
accuracy with its change in points (with labels) or the top-1 agreement and cosine similarity
with the base's outputs (without); the other figures are --wide. A collapsed variant's row says
"collapsed" where its speed-up would be, an unsupported one "unsupported" where its Invoke would
be; the lines under the tables say why, and which models were repaired before the upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from rich.text import Text

from harness.models.variants import Variant
from harness.render.analysis import human_bytes
from harness.render.grid import Cell, Column, Grid, Row, cell, name
from harness.render.table import DASH, EMULATED_MARK, EMULATED_NOTE, invoke_cell, rate
from harness.render.text import visible
from harness.results.variants import Judged

COLUMNS = (
    Column("name", "Variant", "left", repeat=True, shrink=1),
    Column("scheme", "Scheme", "left", shrink=2),
    Column("size", "Size"),
    Column("ratio", "vs base"),
    Column("int8", "int8 layers", "left", shrink=3),
    Column("time", "Took"),
)


def int8_text(v: Variant) -> Cell:
    """Which layers compute in int8: "all 5", "–", "3 of 5: 1 3 5" or "3 of 5: all but 0 6",
    whichever list is the shorter; one part per index, so a long list wraps between them."""
    total = len(v.layers)
    int8 = v.int8_layers
    if not int8:
        return cell("–")
    if len(int8) == total:
        return cell(f"all {total}")
    rest = [s.index for s in v.layers if s.precision != "int8"]
    head = f"{len(int8)} of {total}:"
    # the int8 list unless it is long and the float one much shorter (mixed-except-top3 of MobileNet)
    listed = ([f" {i}" for i in int8] if len(int8) <= max(8, len(rest))
              else [" all but", *(f" {i}" for i in rest)])
    return cell(head, *listed)


def scheme_text(v: Variant) -> str:
    """The finer scheme where it says more (weight_only_int8, whose contract scheme is dynamic_int8)."""
    return v.scheme_detail


def variants_grid(variants: Sequence[Variant], title: str | None = None) -> Grid:
    rows = []
    for v in variants:
        ratio = v.size_bytes / v.base_size_bytes if v.base_size_bytes else None
        rows.append(Row((
            name(v.name), name(scheme_text(v)), cell(human_bytes(v.size_bytes)),
            cell(f"{ratio:.2f}×" if ratio is not None else "–"), int8_text(v), cell(f"{v.seconds:.2f} s"))))
    folders = sorted({str(v.path.parent) for v in variants})
    stems = sorted({v.path.name.removesuffix(f".{v.name}.tflite") for v in variants})
    legend = (f"files: {', '.join(folders)}/{', '.join(stems)}.<variant>.tflite, each with its .recipe.json",
              "Scheme: as harness analyze reports it (weight_only_int8 is scheme dynamic_int8 in --json)",
              "vs base: file size over the float32 base's; Took: wall time, calibration included")
    return Grid(COLUMNS, tuple(rows), title, legend)


# --- `harness run` with variants: each variant against its float32 base, one table per board ----

COMPARISON = (
    Column("model", "Model", "left", repeat=True, shrink=1),
    Column("variant", "Variant", "left", repeat=True, shrink=2),
    Column("threads", "Thr", repeat=True, shrink=9),
    Column("scheme", "Scheme", "left", wide=True, shrink=2),
    Column("size", "Size"),
    Column("invoke", "Invoke ± MAD", shrink=4),
    Column("speedup", "Speed-up (95 %)", shrink=3),
    Column("accuracy", "Accuracy"),
    Column("change", "Δ vs base"),
    Column("agreement", "Top-1 agree"),
    Column("cosine", "Cosine"),
    Column("error", "Max |err|", wide=True),
    Column("throughput", "Loops/s", wide=True),
)
# Columns shown by default for each kind of figure (the other kind's are --wide)
_ACCURACY = {"accuracy", "change"}
_FIDELITY = {"agreement", "cosine"}


def ratio_text(value: float, ci: tuple[float, float] | None) -> Cell:
    """"1.23× (1.18–1.29)": the ratio, then its interval as a part of its own (it may wrap)."""
    def fmt(x: float) -> str:
        return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"

    return cell(f"{fmt(value)}×", f" ({fmt(ci[0])}–{fmt(ci[1])})" if ci else "")


def _points(change: float) -> str:
    return f"{'+' if change > 0 else '−' if change < 0 else '±'}{abs(change):.1f} pts"


def _group_name(j: Judged) -> str:
    """What a row's Model column says: the base's file stem for a base and its variants."""
    b = j.summary.benchmark
    if j.variant is not None and j.base is not None:
        return j.base.benchmark.model.removesuffix(".tflite")
    if j.variant is not None:
        return b.model.removesuffix(".tflite").removesuffix(f".{j.variant.name}")
    return b.model.removesuffix(".tflite")


def _speedup_cell(j: Judged) -> Cell:
    if j.collapse is not None:
        return cell("collapsed", style="bold red")
    if j.role == "base":
        return cell("base")
    if j.speedup is not None:
        return ratio_text(j.speedup.value, j.speedup.ci)
    return DASH if j.variant is None or j.base is not None else cell("no base run")


def _comparison_cells(j: Judged) -> dict[str, Cell]:
    s, b = j.summary, j.summary.benchmark
    acc, fid, change = s.accuracy, j.fidelity, j.accuracy_change
    size = b.model_facts.get("size_bytes")
    return {
        "model": name(_group_name(j)),
        "variant": name(j.variant.name if j.variant else f"{b.model_facts.get('scheme') or 'float32'} (base)"
                        if j.role == "base" else "–"),
        "threads": cell(str(b.threads)), "scheme": name(str(b.model_facts.get("scheme_detail") or "?")),
        "size": cell(human_bytes(int(size))) if size else DASH,
        "invoke": cell("unsupported", style="yellow") if j.unsupported else invoke_cell(s),
        "speedup": _speedup_cell(j),
        "accuracy": cell(f"{100 * acc.top1:.1f} %") if acc else DASH,
        "change": cell(_points(change), style="bold red" if j.collapse else None) if change is not None else DASH,
        "agreement": cell(f"{100 * fid.top1_agreement:.1f} %", style="bold red" if j.collapse else None)
        if fid else DASH,
        "cosine": cell(f"{fid.cosine:.4f}") if fid else DASH,
        "error": cell(f"{fid.max_abs_error:.3g}") if fid and fid.max_abs_error is not None else DASH,
        "throughput": cell(rate(s.throughput_ips)) if s.throughput_ips else DASH,
    }


def comparison_grids(judged: Sequence[Judged], run_id: str | None = None,
                     key: Callable[[Judged], str | None] = lambda j: None) -> list[Grid]:
    """One Grid per board (every column; ``Grid.narrow`` keeps the default ones) of the rows of
    ``judged`` that take part in a comparison (bases and variants), in run order; ``key`` names
    each row (the report links rows to its figures by it)."""
    rows = [j for j in judged if j.role is not None]
    boards = list(dict.fromkeys(j.summary.benchmark.target for j in rows))
    return [_board_grid([j for j in rows if j.summary.benchmark.target == t], t, run_id, key) for t in boards]


def _board_grid(rows: list[Judged], target: str, run_id: str | None,
                key: Callable[[Judged], str | None]) -> Grid:
    emulated = any(j.summary.benchmark.emulated for j in rows)
    labelled = any(j.summary.accuracy is not None for j in rows)
    hidden = (_FIDELITY if labelled else _ACCURACY) | (set() if len({j.summary.benchmark.threads for j in rows}) > 1
                                                       else {"threads"})
    columns = tuple(replace(c, wide=True) if c.key in hidden else c for c in COMPARISON)
    body = []
    for j in sorted(rows, key=lambda j: (_group_name(j), j.summary.benchmark.threads, j.role != "base")):
        cells = _comparison_cells(j)
        style = "red" if j.collapse else "yellow" if j.unsupported else None
        body.append(Row(tuple(cells[c.key] for c in columns), style, key(j)))
    title = f"{'harness run ' + run_id + ' · ' if run_id else ''}{target}{EMULATED_MARK if emulated else ''}"
    return Grid(columns, tuple(body), title, _legend(rows, labelled, emulated, target))


def _legend(rows: list[Judged], labelled: bool, emulated: bool, target: str) -> tuple[str, ...]:
    units = {j.speedup.units for j in rows if j.speedup is not None}
    unit = " / ".join(f"per-{u} medians" for u in sorted(units)) or "block or process medians"
    evals = [j.summary.eval_outputs for j in rows if j.summary.eval_outputs is not None]
    samples = f"{evals[0].samples} samples ({evals[0].source})" if evals else "no eval pass"
    lines = [f"Speed-up: base median Invoke / variant's (above 1: faster), 95 % interval from {unit}"]
    if labelled:
        lines.append(f"Accuracy: top-1 on this board, {samples}; Δ: points against the base")
    else:
        lines.append(f"Top-1 agree, Cosine: outputs against the base's on this board, {samples}")
    if emulated:
        lines.append(f"{EMULATED_MARK} {EMULATED_NOTE} ({target})")
    return tuple(lines)


def comparison_notes(judged: Sequence[Judged]) -> Iterator[Text]:
    """Under the tables: each collapse (loudly), each model unsupported on a board, each repair."""
    for j in judged:
        b = j.summary.benchmark
        where = visible(f"{b.target} · {b.model.removesuffix('.tflite')} t{b.threads}")
        if j.collapse is not None:
            yield Text.assemble(("collapsed", "bold red"), f": {where}: {j.collapse} → not a speed-up: its "
                                "outputs on this board are not its base's (check the variant, or raise "
                                "--collapse-threshold)")
        if j.unsupported is not None:
            yield Text.assemble(("unsupported", "yellow"), f": {where}: {visible(j.unsupported)}")
        for r in j.repairs:
            if r.get("what") == "external_buffers":
                yield Text.assemble(("repaired", "cyan"), f": {where}: {r.get('buffers')} weight buffers stored "
                                    "outside the flatbuffer, which TFLite Micro reads as zeros, were inlined "
                                    "before the upload")
