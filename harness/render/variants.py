"""The table of `harness quantize`: what was made, beside the base model, as a Grid.

One row per variant: its name, its scheme as `harness analyze` reports it, its size and the size
relative to the float32 base, the layers that compute in int8, and the time it took; the files
are named under it. It is laid out by harness.render.terminal, so it fits 100 columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.models.variants import Variant
from harness.render.analysis import human_bytes
from harness.render.grid import Cell, Column, Grid, Row, cell, name

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
