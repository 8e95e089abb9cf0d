"""Human rendering of a ModelAnalysis: the per-operator table and the totals under it.

Also the "fits on" table of harness.models.arena. Only formatting lives here; the numbers come from
harness.models.analysis and harness.models.arena unchanged. Returns rich
renderables and never prints: the CLI decides where they go (stdout).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table

from harness.models.analysis import SCHEME_DESCRIPTIONS, ModelAnalysis, OpInfo
from harness.models.arena import ArenaFit, FitRow
from harness.models.precision import SMALL_WEIGHTS, weight_elements
from harness.render.text import plain
from harness.results.layers import LayerProfile, LayerRow


def human_count(value: float | None) -> str:
    """1234567 -> "1.23M"; None -> "unknown" (an uncounted op is never shown as 0)."""
    if value is None:
        return "unknown"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"


def human_bytes(value: int) -> str:
    """Bytes with binary units: 190120 -> "185.7 KiB"."""
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _shapes(op: OpInfo, outputs: bool) -> str:
    tensors = op.outputs if outputs else tuple(t for t in op.inputs if not t.constant)
    return " ".join("x".join(map(str, t.shape)) or "scalar" for t in tensors)


def scheme_label(a: ModelAnalysis) -> str:
    """The contract scheme, with the finer one explained when they differ:
    "dynamic_int8 (weight-only int8: weights dequantized once, float32 kernels)"."""
    if a.scheme_detail == a.scheme:
        return a.scheme
    return f"{a.scheme} ({SCHEME_DESCRIPTIONS.get(a.scheme_detail, a.scheme_detail)})"


def analysis_table(a: ModelAnalysis) -> Table:
    """One row per operator in execution order, with each op's share of the counted FLOPs."""
    table = Table(title=plain(f"{a.path}: {len(a.ops)} ops, scheme {scheme_label(a)}"), title_justify="left")
    for name, justify in (("#", "right"), ("op", "left"), ("inputs", "left"), ("output", "left"),
                          ("MACs", "right"), ("FLOPs", "right"), ("FLOPs %", "right"),
                          ("params", "right"), ("weights", "right"), ("precision", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    total = a.total_flops
    for op in a.ops:
        share = "" if op.flops is None or not total else f"{100 * op.flops / total:.1f}"
        style = "yellow" if op.kind == "unknown" else ("dim" if op.kind in ("shape", "convert") else None)
        table.add_row(
            str(op.index), plain(op.type), _shapes(op, outputs=False), _shapes(op, outputs=True),
            human_count(op.macs), human_count(op.flops), share,
            human_count(op.params) if op.params else "", human_bytes(op.weight_bytes) if op.weight_bytes else "",
            op.precision, style=style,
        )
    table.add_section()
    table.add_row("", "total", "", "", human_count(a.total_macs), human_count(a.total_flops),
                  "100.0" if total else "", human_count(a.total_params), human_bytes(a.total_weight_bytes),
                  a.scheme if a.scheme == a.scheme_detail else f"{a.scheme} ({a.scheme_detail})")
    return table


def analysis_lines(a: ModelAnalysis) -> list[str]:
    """The totals, the scheme with its layers per precision, notes and assumptions, as plain lines."""
    lines = [
        f"total: {human_count(a.total_macs)} MACs = {human_count(a.total_flops)} FLOPs, "
        f"{human_count(a.total_params)} parameters, {human_bytes(a.total_weight_bytes)} of weights, "
        f"file {human_bytes(a.size_bytes)}",
        f"quantization scheme: {scheme_label(a)}",
    ]
    for precision, layers in a.layers_by_precision.items():
        lines.append(f"  {precision}: ops {_ranges(layers)}")
    if a.small_float_layers:
        small = ", ".join(f"op {op.index} {op.type} ({weight_elements(op)} weights)"
                          for op in a.ops if op.index in a.small_float_layers)
        # Why these do not make the model mixed: converters leave small weights float by rule.
        lines.append(f"  small layers left float32 by rule (< {SMALL_WEIGHTS} weights): {small}")
    if a.uncounted_ops:
        lines.append(f"FLOPs unknown for {len(a.uncounted_ops)} op(s) ({_ranges(a.uncounted_ops)}): "
                     "the totals leave them out")
    lines.extend(f"op {op.index} {op.type}: {op.note}" for op in a.ops if op.note and op.kind != "shape")
    lines.extend(f"assumed: {s}" for s in a.assumptions)
    return lines


def analysis_renderable(a: ModelAnalysis) -> RenderableType:
    """Table plus the lines under it, for ``console.print``."""
    return Group(analysis_table(a), *(plain(line) for line in analysis_lines(a)))


def fits_table(fit: ArenaFit, rows: list[FitRow]) -> Table:
    """The "fits on" table: measured arena and model size against each board's RAM and flash."""
    table = Table(title=plain(f"{fit.model}: arena {human_bytes(fit.arena_bytes)} (measured with TFLite Micro "
                              f"{fit.tflm_version}, 64-bit host build), flash {human_bytes(fit.flash_bytes)} "
                              "(model only)"), title_justify="left")
    for name in ("target", "RAM", "arena needed", "arena / RAM", "flash", "model / flash", "fits"):
        table.add_column(name, justify="left" if name in ("target", "fits") else "right")
    for row in rows:
        if row.fits is None:
            verdict = ("unknown (add ram/flash to targets.toml)"
                       if row.ram_bytes is None or row.flash_bytes is None
                       else "maybe: a 32-bit build needs less; the device will tell")
        else:
            verdict = "yes" if row.fits else "no"
        needed = (human_bytes(row.arena_bytes) if row.exact
                  else f"{human_bytes(row.arena_floor)} .. {human_bytes(row.arena_bytes)}")
        table.add_row(
            plain(row.target),
            human_bytes(row.ram_bytes) if row.ram_bytes is not None else "?", needed,
            f"{100 * row.arena_bytes / row.ram_bytes:.0f} %" if row.ram_bytes else "",
            human_bytes(row.flash_bytes) if row.flash_bytes is not None else "?",
            f"{100 * row.model_bytes / row.flash_bytes:.0f} %" if row.flash_bytes else "",
            verdict, style=None if row.fits else ("red" if row.fits is False else "yellow"),
        )
    return table


def human_ns(ns: float) -> str:
    """Nanoseconds for people: 1234567 -> "1.23 ms"."""
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


@dataclass(frozen=True)
class ProfileRowText:
    """One row of a profile as every view shows it (the terminal's table, the report's):
    ``time`` "< upper end" (or "~0") and ``share`` "~0" for a row below resolution, never a
    negative time; ``ratio`` its time share over its FLOPs share."""

    index: str
    label: str
    time: str
    interval: str
    share: str
    flops_share: str
    ratio: str
    resolved: bool


def profile_row_text(row: LayerRow) -> ProfileRowText:
    ratio = (f"{row.time_share / row.flops_share:.2f}x"
             if row.flops_share else ("unknown" if row.flops is None else "no FLOPs"))
    interval = "" if row.interval_ns is None else f"{human_ns(row.interval_ns[0])} … {human_ns(row.interval_ns[1])}"
    if row.resolved:
        time, share = human_ns(row.ns), f"{100 * row.time_share:.1f}"
    else:
        assert row.interval_ns is not None  # only a row with an interval is below resolution
        upper = row.interval_ns[1]
        time, share, ratio = (f"< {human_ns(upper)}" if upper > 0 else "~0"), "~0", ""
    index = str(row.first) if row.first == row.last else f"{row.first}–{row.last}"
    return ProfileRowText(index, row.label(), time, interval, share,
                          "unknown" if row.flops_share is None else f"{100 * row.flops_share:.1f}", ratio,
                          row.resolved)


def profile_title(p: LayerProfile, shown: int) -> str:
    """"MODEL on TARGET: heaviest 10 of 29 layers (RUNTIME, 1 thread(s), XNNPACK off, wall clock)"."""
    what = "rows" if any(row.fused for row in p.groups) else "layers"
    return (f"{p.model} on {p.target}: heaviest {shown} of {len(p.groups)} {what} "
            f"({p.runtime}, {p.threads} thread(s), XNNPACK {'on' if p.xnnpack else 'off'}, {p.clock} clock)")


def profile_table(p: LayerProfile, top: int = 10) -> Table:
    """The heaviest rows (an op, or a delegate partition as one row): measured time with its 95 %
    interval and share, next to the row's share of the FLOPs (``profile_row_text``)."""
    rows = p.heaviest_rows(top)
    table = Table(title=plain(profile_title(p, len(rows))), title_justify="left")
    for name in ("#", "op", "time", "95 % interval", "time %", "FLOPs %", "time/FLOPs"):
        table.add_column(name, justify="left" if name == "op" else "right")
    for row in rows:
        t = profile_row_text(row)
        table.add_row(t.index, plain(t.label), t.time, t.interval, t.share, t.flops_share, t.ratio,
                      style=None if t.resolved else "dim")
    return table


def profile_lines(p: LayerProfile) -> list[str]:
    """The sum check, how it was measured and why it stopped, and the profile's notes, as plain lines."""
    if not p.rounds_ns:  # a firmware profiler's single Invoke
        return [f"layers add up: {human_ns(p.sum_ns)} vs the median Invoke {human_ns(p.whole_ns)} "
                f"(sum check {100 * p.sum_check:+.1f} %)", f"measured on the board by the {p.method}",
                *_throughput_by_type(p), *p.notes]
    low = sum(not row.resolved for row in p.groups)
    sessions = p.stop.sessions if p.stop is not None else 1
    return [
        f"layers add up: overhead {human_ns(p.overhead_ns)} + {len(p.groups)} rows {human_ns(p.sum_ns)} = "
        f"{human_ns(p.overhead_ns + p.sum_ns)} vs whole model {human_ns(p.whole_ns)} "
        f"(sum check {100 * p.sum_check:+.1f} % ± {100 * p.sum_check_se:.1f} % from measurement noise, 1σ; "
        f"{low} row(s) below resolution)",
        f"measured on the board by timing {len(p.layers) + 1} model prefixes in {len(p.rounds_ns)} interleaved "
        f"rounds of {p.slices} turns ({sessions} agent session(s)); a row's time is the mean over forward and "
        "reverse turns of its median difference between neighbouring prefixes, each turn at the board's "
        "median speed",
        *_stop_lines(p),
        *_throughput_by_type(p),
        *p.notes,
    ]


def _stop_lines(p: LayerProfile) -> list[str]:
    stop = p.stop
    if stop is None:
        return []
    took = f"after {stop.wall_s:.1f} s" if stop.wall_s else ""
    if stop.by == "stable":
        return [f"stopped: stable, the sum check's SE is under the {100 * (stop.target_se or 0):g} % target "
                f"{took} (time bound {stop.max_time_s:g} s)"]
    if stop.by == "max_time":
        return [f"stopped: the {stop.max_time_s:g} s time bound came first ({took[6:]}), with the SE above the "
                f"{100 * (stop.target_se or 0):g} % target: raise --max-time, or profile when the board is quieter"]
    return [f"stopped: the {stop.rounds} rounds of --rounds were timed (adaptive without --rounds)"]


def _throughput_by_type(p: LayerProfile) -> list[str]:
    """Achieved GFLOP/s (= FLOPs per ns) per op type over its layers, heaviest type first."""
    flops: dict[str, int] = {}
    ns: dict[str, float] = {}
    for row in p.groups:  # a fused partition mixes op types: it has no rate of its own type
        if row.flops and not row.fused:
            kind = row.types[0]
            flops[kind] = flops.get(kind, 0) + row.flops
            ns[kind] = ns.get(kind, 0.0) + row.ns
    rates = [f"{t} {flops[t] / ns[t]:.3g}" for t in sorted(ns, key=lambda t: -ns[t]) if ns[t] > 0]
    return [f"achieved GFLOP/s by op type: {', '.join(rates)}"] if rates else []


def _ranges(indices: tuple[int, ...]) -> str:
    """(0, 1, 2, 5, 7, 8) -> "0-2, 5, 7-8"."""
    parts: list[str] = []
    start = prev = None
    for i in indices:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(parts)
