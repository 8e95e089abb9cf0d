"""The report's section on streams (`harness stream`, `harness soak`): does the board keep up?

The tables are those `harness stream` and `harness show` print (harness.render.stream): the streams
table, the --find-max trials, and each stream's windows of latency beside the board's temperature
and clock (harness.results.soak); every figure is recomputed from the raw frames by
harness.results.stream and .soak. Per stream, beside its windows table: the timeline of every
frame's latency with the misses marked, and, where the board reported its state, latency against
temperature and CPU clock; beside its trials table, latency against rate up to the largest
sustainable one. Keys: ``sN`` a stream, ``sN-wK`` its window K, ``sN-tK`` its trial K.
"""

from __future__ import annotations

from harness.render import plots_stream
from harness.render.grid import Grid
from harness.render.report_model import Figure, Material, Section
from harness.render.stream import label, soak_grid, soak_lines, streams_grid, support, trials_grid, verdict
from harness.results.soak import Soak, soak
from harness.results.stream import StreamRecord, Trial, figures


def streams_section(m: Material) -> Section | None:
    """None when no stream run was given."""
    if not m.streams:
        return None
    records = [r for _, r in m.streams]
    tables: list[tuple[str, Grid]] = [("t-streams", streams_grid(records, "Streams").with_keys(
        [f"s{n}" for n in range(1, len(records) + 1)]))]
    figures_: list[Figure] = []
    lines: list[str] = [verdict(r).plain for r in records]
    notes: list[str] = []
    for n, r in enumerate(records, 1):
        if r.searched and r.trials:
            tables.append((f"t-stream-{n}-trials", trials_grid(r).with_keys([f"s{n}-t{t.index}" for t in r.trials])))
            figures_.append(_rate_figure(r, n))
            lines.append(support(r).plain)
        main = r.main
        if main is None or not len(main.frames):
            notes.append(f"{label(r)}: no frames to draw" + (" (no trial passed)" if r.searched else ""))
            continue
        s = soak(main)
        table_id = f"t-stream-{n}-windows"
        tables.append((table_id, soak_grid(r, s).with_keys([f"s{n}-w{k}" for k in range(len(s.windows))])))
        figures_.append(_timeline_figure(r, main, s, n, table_id))
        if any(w.temp_c is not None or w.freq_khz is not None for w in s.windows):
            figures_.append(_thermal_figure(r, s, n, table_id))
        lines += [t.plain for t in soak_lines(r, s)]
    return Section("streams", "Streams: does the board keep up?", intro=(
        "Each stream ran the application loop on the board fed by a schedule (`harness stream`, `harness "
        "soak`); latency is measured from each frame's scheduled time to the end of its postprocess, so "
        "time spent queued counts. A frame is late when it ends after its deadline; with --drop-late, a "
        "frame already stale when the board is free is dropped. Every figure is recomputed from the raw "
        "per-frame records.",), tables=tuple(tables), figures=tuple(figures_), lines=tuple(lines),
        notes=tuple(notes))


def _timeline_figure(r: StreamRecord, main: Trial, s: Soak, n: int, table_id: str) -> Figure:
    """Every frame of the stream (a plain stream's, or a search's answer), window by window as in
    the table (harness.results.soak.windows: the same cut, so the counts agree)."""
    cut = s.windows[0].end_s - s.windows[0].start_s
    deadline = main.deadline_ns or 0
    f = main.frames
    groups: list[tuple[list[float], list[float | None], list[bool]]] = [([], [], []) for _ in s.windows]
    for sched, end in zip(f.scheduled_ns, f.end_ns, strict=True):
        t, lat, missed = groups[int(sched / 1e9 // cut)]
        t.append(sched / 1e9)
        lat.append(None if end is None else float(end - sched))
        missed.append(end is None or end - sched > deadline)
    marks = [plots_stream.WindowFrames(f"s{n}-w{k}", *g) for k, g in enumerate(groups)]
    what = "the answer's trial" if r.searched else "the stream"
    return Figure(f"timeline-{n}", plots_stream.timeline(marks, deadline, f"timeline-{n}"),
                  f"{label(r)}: every frame of {what} by its scheduled time, its latency from the schedule (dots), "
                  "the late and dropped ones crossed (dropped, which have no latency, at the top), the deadline "
                  "dashed; each window of the table below is one group of points", table_id,
                  (("frames", ("#frames",)), ("missed", ("#missed",))))


def _thermal_figure(r: StreamRecord, s: Soak, n: int, table_id: str) -> Figure:
    points = [plots_stream.StatePoint(f"s{n}-w{k}", w.median_ns, w.temp_c, w.freq_khz)
              for k, w in enumerate(s.windows)]
    return Figure(f"thermal-{n}", plots_stream.thermal(points, f"thermal-{n}"),
                  f"{label(r)}: each window's median latency against the hottest thermal zone (left) and the "
                  "lowest CPU clock (right) the board reported in it", table_id,
                  (("temp", ("latency", "temp")), ("clock", ("latency", "clock"))))


def _rate_figure(r: StreamRecord, n: int) -> Figure:
    lower, _ = r.bounds()
    marks = []
    for t, v in r.verdicts():
        f = figures(t) if t.period_ns and len(t.frames) else None
        lat = f.latency if f else None
        marks.append(plots_stream.RateMark(f"s{n}-t{t.index}", t.rate_hz or 0.0, lat.median_ns if lat else None,
                                           lat.p99_ns if lat else None, t.deadline_ns, v))
    answer = lower.rate_hz if lower is not None else None
    return Figure(f"rate-{n}", plots_stream.rate_curve(marks, answer, f"rate-{n}"),
                  f"{label(r)}: latency from the schedule against the rate of each --find-max trial (median: dot, "
                  "p99: triangle; green passed, red failed), the deadline at each rate dashed, the largest "
                  "sustainable rate dotted", f"t-stream-{n}-trials",
                  (("median", ("latency",)), ("p99", ("latency",))))

