"""`harness stream`, `harness soak` and `harness show` of a stream run, for people: the streams
table (a Grid, harness.render.grid, fitted to 100 columns by harness.render.terminal), one line
per stream saying whether the board keeps up, the --find-max trials that support the answer, and
the soak's windows of latency beside temperature and clock. Figures come from
harness.results.stream / soak; here they only get units. Progress goes to stderr (StreamProgress).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from rich.console import Console, RenderableType
from rich.text import Text

from harness.lab.drivers.base import Message
from harness.render import terminal
from harness.render.grid import Cell, Column, Grid, Row, cell, name
from harness.render.table import DASH, EMULATED_MARK, EMULATED_NOTE, duration, percent
from harness.render.text import visible
from harness.results.soak import Soak, soak
from harness.results.stream import StreamFigures, StreamRecord, figures
from harness.scenarios.stream import StreamOutcome
from harness.stream_plan import StreamJob

SOAK_AFTER_S = 120.0  # a stream this long shows the soak's windows too (harness soak always does)
POISSON_MARK = "~"

COLUMNS = (
    Column("target", "Target", "left", repeat=True, shrink=1),
    Column("model", "Model", "left", repeat=True, shrink=0),
    Column("threads", "Thr", repeat=True, shrink=9),
    Column("rate", "Rate", shrink=6),
    Column("deadline", "Deadline", wide=True),
    Column("frames", "Frames", wide=True),
    Column("late", "Late", shrink=5),
    Column("dropped", "Dropped", shrink=5),
    Column("latency", "Latency p50 / p99", shrink=3),
    Column("tail", "p90 / max", wide=True, shrink=3),
    Column("queue", "Queued (median)", wide=True),
    Column("jitter", "Start jitter p99", shrink=4),
    Column("service", "Service (median)", wide=True),
    Column("sustained", "Sustained", shrink=6),
    Column("busy", "Busy", shrink=7),
    Column("max", "Max rate", shrink=6),
)


def hz(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f} Hz" if value >= 100 else f"{value:.3g} Hz"


def label(r: StreamRecord) -> str:
    return visible(f"{r.target} · {r.model.removesuffix('.tflite')} t{r.threads}")


def counted(count: int, pct: float) -> Cell:
    return cell(f"{count:,}") if count == 0 else cell(f"{count:,}", f" ({percent(pct / 100)})")


def _cells(r: StreamRecord, f: StreamFigures | None) -> dict[str, Cell]:
    mark = POISSON_MARK if r.plan.get("arrivals") == "poisson" else ""
    lat = f.latency if f else None
    return {
        "target": name(r.target + (EMULATED_MARK if r.emulated else "")), "model": name(r.model),
        "threads": cell(str(r.threads)), "rate": cell(mark + hz(f.rate_hz)) if f else DASH,
        "deadline": cell(duration(f.deadline_ns)) if f else DASH,
        "frames": cell(f"{f.frames:,}") if f else DASH,
        "late": counted(f.late, f.late_pct) if f else DASH,
        "dropped": counted(f.dropped, f.dropped_pct) if f else DASH,
        "latency": cell(duration(lat.median_ns), f" / {duration(lat.p99_ns)}") if lat else DASH,
        "tail": cell(duration(lat.p90_ns), f" / {duration(lat.max_ns)}") if lat else DASH,
        "queue": cell(duration(f.queue_delay_median_ns)) if f else DASH,
        "jitter": cell(duration(f.start_jitter_ns)) if f and f.start_jitter_ns is not None else DASH,
        "service": cell(duration(f.service_median_ns)) if f else DASH,
        "sustained": cell(f"{f.sustained_rate_hz:.3g}/s") if f and f.sustained_rate_hz else DASH,
        "busy": cell(percent(f.busy_fraction)) if f and f.busy_fraction is not None else DASH,
        "max": cell(hz(r.main.rate_hz if r.main else None)) if r.searched else DASH,
    }


def streams_grid(records: Sequence[StreamRecord], title: str | None) -> Grid:
    """Every column; the Dropped and Max rate columns only when a stream drops or searched."""
    keep = [c for c in COLUMNS if (c.key != "dropped" or any(r.plan.get("policy") == "drop-late" for r in records))
            and (c.key != "max" or any(r.searched for r in records))]
    rows = []
    for r in records:
        main = r.main
        f = figures(main) if main is not None and main.period_ns and len(main.frames) else None
        cells = _cells(r, f)
        rows.append(Row(tuple(cells[c.key] for c in keep), None if r.complete else ("red" if f is None else "yellow")))
    legend: list[str] = []
    if any(r.plan.get("arrivals") == "poisson" for r in records):
        legend.append(f"{POISSON_MARK} Poisson arrivals at this mean rate")
    emulated = sorted({r.target for r in records if r.emulated})
    if emulated:
        legend.append(f"{EMULATED_MARK} {EMULATED_NOTE} ({', '.join(emulated)})")
    return Grid(tuple(keep), tuple(rows), title, tuple(legend))


def verdict(r: StreamRecord) -> Text:
    """Does the board keep up? One line per stream."""
    head = (label(r), "bold")
    main = r.main
    if main is None or not main.period_ns or not len(main.frames):
        return Text.assemble(head, ": no rate passed" if r.searched and r.trials else ": no frames")
    f = figures(main)
    lat = f.latency
    tail = f"p99 latency {duration(lat.p99_ns)} of a {duration(f.deadline_ns)} deadline" if lat else "no frame ran"
    missed = " and ".join(m for m in (f"{percent(f.late_pct / 100)} late" if f.late else "",
                                      f"{percent(f.dropped_pct / 100)} dropped" if f.dropped else "") if m)
    sustained = f"; sustains {f.sustained_rate_hz:.3g} frames/s" if f.sustained_rate_hz else ""
    if r.searched:
        what = (f"largest sustainable rate {hz(f.rate_hz)} ({_criterion(r)}); there "
                f"{missed or 'none'} of {f.frames:,} frames; {tail}")
    elif not missed:
        what = f"keeps up with {hz(f.rate_hz)}: no frame of {f.frames:,} late; {tail}"
    else:
        what = f"at {hz(f.rate_hz)}, {missed} of {f.frames:,} frames{sustained}; {tail}"
    return Text.assemble(head, ": ", visible(what))


def _criterion(r: StreamRecord) -> str:
    p, c = r.criterion
    return f"late or dropped under {percent(1 - p)} at {percent(c)} confidence"


TRIAL_COLUMNS = (
    Column("trial", "Trial", repeat=True), Column("rate", "Rate"), Column("verdict", "Verdict", "left"),
    Column("by", "Decided", "left"), Column("frames", "Frames"), Column("misses", "Missed"),
    Column("needed", "Needed"), Column("latency", "Latency p50 / p99"),
)


def trials_grid(r: StreamRecord) -> Grid:
    """The trials of a --find-max search, in the order they ran; the two that bound the answer
    marked."""
    lower, upper = r.bounds()
    rows = []
    for t, v in r.verdicts():
        f = figures(t) if t.period_ns and len(t.frames) else None
        lat = f.latency if f else None
        mark = " ◀ answer" if t is lower else (" ◀ bound" if t is upper else "")
        rows.append(Row((cell(str(t.index)), cell(hz(t.rate_hz)), cell((v or "undecided") + mark),
                         cell(str((t.verdict or {}).get("by") or "–").replace("_", " ")),
                         cell(f"{len(t.frames):,}"), cell(f"{f.late + f.dropped:,}" if f else "0"),
                         cell(f"{(t.verdict or {}).get('needed', 0):,}"),
                         cell(duration(lat.median_ns), f" / {duration(lat.p99_ns)}") if lat else DASH),
                        "bold" if mark else None))
    return Grid(TRIAL_COLUMNS, tuple(rows), f"{label(r)}: --find-max trials ({_criterion(r)})")


def support(r: StreamRecord) -> Text:
    """The answer of a search with the trials that support it."""
    lower, upper = r.bounds()
    if lower is None:
        return Text(f"{label(r)}: no trial passed; the board keeps no rate tried ({_criterion(r)})")
    fl = figures(lower)
    text = (f"{label(r)}: {hz(lower.rate_hz)} passed in trial {lower.index} ({fl.frames:,} frames, "
            f"{fl.late + fl.dropped} missed)")
    if upper is not None:
        fu = figures(upper)
        text += f"; {hz(upper.rate_hz)} failed in trial {upper.index} ({fu.late + fu.dropped} of {fu.frames:,} missed)"
    return Text(visible(text))


SOAK_COLUMNS = (
    Column("window", "Window", repeat=True), Column("frames", "Frames"), Column("missed", "Missed"),
    Column("latency", "Latency p50 / p99"), Column("temp", "Temp"), Column("clock", "CPU clock"),
    Column("throttled", "Throttled", "left"),
)


def soak_grid(r: StreamRecord, s: Soak) -> Grid:
    rows = []
    for w in s.windows:
        rows.append(Row((cell(f"{w.start_s:.0f}–{w.end_s:.0f} s"), cell(f"{w.frames:,}"), cell(f"{w.misses:,}"),
                         cell(duration(w.median_ns), f" / {duration(w.p99_ns)}") if w.median_ns else DASH,
                         cell(f"{w.temp_c:.1f} °C") if w.temp_c is not None else DASH,
                         cell(f"{w.freq_khz / 1e3:,.0f} MHz") if w.freq_khz else DASH,
                         cell({True: "yes", False: "no", None: "–"}[w.throttled]))))
    return Grid(SOAK_COLUMNS, tuple(rows), f"{label(r)}: latency and the board over time")


def soak_lines(r: StreamRecord, s: Soak) -> Iterator[Text]:
    if s.cold_ns and s.steady_ns:
        yield Text(visible(f"{label(r)}: cold {duration(s.cold_ns)} (first window), steady state "
                           f"{duration(s.steady_ns)} (last quarter): {s.steady_vs_cold:.3g}× the cold median"))
    if s.throttle_onset_s is not None:
        yield Text(f"  throttled from {s.throttle_onset_s:.0f} s ({', '.join(s.throttle_flags)})", style="yellow")
    if s.clock_drop_onset_s is not None and s.clock_start_khz and s.clock_low_khz:
        yield Text(f"  CPU clock {s.clock_start_khz / 1e3:,.0f} MHz → {s.clock_low_khz / 1e3:,.0f} MHz from "
                   f"{s.clock_drop_onset_s:.0f} s", style="yellow")
    if s.temp_start_c is not None and s.temp_max_c is not None:
        yield Text(f"  temperature {s.temp_start_c:.1f} °C at the start, {s.temp_max_c:.1f} °C at most")
    if s.absent:
        yield Text(f"  absent on this board: {', '.join(s.absent)}", style="cyan")


def stream_view(records: Sequence[StreamRecord], title: str | None, wide: bool,
                width: int | None) -> list[RenderableType]:
    """Everything printed for a stream run, laid out for ``width`` cells (None: unbounded)."""
    grid = streams_grid(records, title).narrow(wide)
    out: list[RenderableType] = [*terminal.render(grid, width), *(Text(x, style="cyan") for x in grid.legend)]
    for r in records:
        out.append(verdict(r))
        if r.error:
            hint = r.error.get("hint")
            out.append(Text.assemble(("error: ", "bold red"), visible(str(r.error.get("message"))),
                                     visible(f" (fix: {hint})") if hint else ""))
    for r in records:
        if r.searched and r.trials:
            out += [*terminal.render(trials_grid(r), width), support(r)]
        main = r.main
        long = main is not None and len(main.frames) and max(main.frames.scheduled_ns) / 1e9 >= SOAK_AFTER_S
        if main is not None and len(main.frames) and (r.plan.get("command") == "soak" or long):
            s = soak(main)
            out += [*terminal.render(soak_grid(r, s), width), *soak_lines(r, s)]
    return out


class StreamProgress:
    """What a stream run says on stderr while it runs: each stream as it starts, each --find-max
    trial's verdict as it comes, errors."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._rate: dict[int, float] = {}

    def job_started(self, job: StreamJob) -> None:
        s = job.schedule
        what = "searching for the largest sustainable rate" if job.plan.find_max else \
            f"{s.frames:,} frames at {hz(s.rate_hz)}"
        with self._lock:
            self.console.print(visible(f"{job.target} · {job.model.name} t{job.threads}: {what}"), markup=False)

    def job_message(self, job: StreamJob, msg: Message) -> None:
        if msg.get("type") == "trial":
            self._rate[id(job)] = float(msg["rate_hz"])
        elif msg.get("type") == "trial_end":
            with self._lock:
                self.console.print(visible(
                    f"  trial {msg['index']}: {hz(self._rate.get(id(job)))} {msg.get('verdict') or 'undecided'} "
                    f"({msg['misses']} of {msg['frames']:,} frames missed, {msg['needed']:,} needed)"), markup=False)

    def job_finished(self, outcome: StreamOutcome) -> None:
        if outcome.error is not None:
            with self._lock:
                self.console.print(Text.assemble(("error", "red"), f": {visible(str(outcome.error))}"))
