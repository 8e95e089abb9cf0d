"""The report's figures of streams (`harness stream`, `harness soak`), drawn as harness.render.plots
draws the others: matplotlib SVG, reproducible, every mark a group ``mark--KEY--PART`` whose KEY is
its row in the table beside it.

Points are markers (``Axes.plot`` with a marker and no line), which the SVG backend writes as one
``<use>`` element per point, so a reader (or the browser test) can count the points of a mark and
hold them against the count its row states: a window's frames and its misses.

- ``timeline``: every frame's latency from the schedule against its scheduled time, one mark per
  window of the table (its frames), the misses (late, or dropped: drawn at the top edge, as they
  have no latency) crossed out in a second mark, the deadline as a line;
- ``rate_curve``: latency (median, p99) against the rate of each --find-max trial, coloured by its
  verdict, the deadline (one period) as a curve and the largest sustainable rate as a line;
- ``thermal``: each window's median latency against the board's temperature and CPU clock in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.render.plots import COLORS, INVOKE, WIDTH_IN, _svg

MISS = "#c62828"
VERDICTS = {"pass": "#2e7d32", "fail": "#c62828"}  # an undecided trial: grey
DEADLINE = "#8d6e00"


@dataclass(frozen=True)
class WindowFrames:
    """The frames of one window: scheduled time (s), latency (ns; None: dropped), missed or not."""

    key: str
    t_s: Sequence[float]
    latency_ns: Sequence[float | None]
    missed: Sequence[bool]


@dataclass(frozen=True)
class RateMark:
    """One trial: its rate, latency median and p99 (ns), deadline (ns) and verdict."""

    key: str
    rate_hz: float
    median_ns: float | None
    p99_ns: float | None
    deadline_ns: float | None
    verdict: str | None  # pass | fail | None (undecided)


@dataclass(frozen=True)
class StatePoint:
    """One window: its median latency (ns), the hottest zone's mean (°C), the lowest CPU clock (kHz)."""

    key: str
    median_ns: float | None
    temp_c: float | None
    freq_khz: float | None


def _axes(panels: int = 1, height_in: float = 3.4) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    for ax in axes:
        ax.grid(color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def _log_y(ax: Any) -> None:
    """A logarithmic latency axis labelled 10, 20, 50, 100 (not 2×10¹)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def timeline(windows: Sequence[WindowFrames], deadline_ns: float, name: str) -> str:
    """Latency (ms) against scheduled time (s): a dot per frame, an x per miss; a logarithmic
    axis when the slowest frame took more than 10 deadlines (a growing queue)."""
    fig, (ax,) = _axes()
    seen = [x for w in windows for x in w.latency_ns if x is not None]
    slowest = max(seen, default=deadline_ns)
    log = slowest > 10 * deadline_ns
    top = max(slowest, deadline_ns) * (1.6 if log else 1.08)  # a dropped frame's place: above all, the deadline too
    for w in windows:
        ys = [(x if x is not None else top) / 1e6 for x in w.latency_ns]
        ax.plot(list(w.t_s), ys, linestyle="none", marker="o", markersize=2.2, color=INVOKE, alpha=0.7,
                gid=f"mark--{w.key}--frames")
        missed = [(t, y) for t, y, m in zip(w.t_s, ys, w.missed, strict=True) if m]
        if missed:
            ax.plot([t for t, _ in missed], [y for _, y in missed], linestyle="none", marker="x", markersize=4,
                    color=MISS, markeredgewidth=0.9, gid=f"mark--{w.key}--missed")
    ax.axhline(deadline_ns / 1e6, color=DEADLINE, linestyle="--", linewidth=1)
    if log:
        _log_y(ax)
    else:
        ax.set_ylim(0, top / 1e6 * 1.04)
    ax.set_xlabel("scheduled time (s)", fontsize=9)
    ax.set_ylabel("latency from the schedule (ms)", fontsize=9)
    ax.plot([], [], linestyle="none", marker="o", markersize=3, color=INVOKE, label="a frame")
    ax.plot([], [], linestyle="none", marker="x", markersize=4, color=MISS, label="late or dropped (dropped: at the top)")
    ax.plot([], [], color=DEADLINE, linestyle="--", linewidth=1, label="deadline")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, fontsize=7, frameon=False)
    return _svg(fig, name)


def rate_curve(trials: Sequence[RateMark], answer_hz: float | None, name: str) -> str:
    """Latency median (dot) and p99 (triangle) against each trial's rate, logarithmic in latency."""
    fig, (ax,) = _axes()
    for t in trials:
        color = VERDICTS.get(t.verdict or "", "#757575")
        for part, value, marker in (("median", t.median_ns, "o"), ("p99", t.p99_ns, "^")):
            if value is not None:
                ax.plot([t.rate_hz], [value / 1e6], linestyle="none", marker=marker, markersize=5, color=color,
                        gid=f"mark--{t.key}--{part}")
    bounds = sorted((t.rate_hz, t.deadline_ns) for t in trials if t.deadline_ns)
    if bounds:
        ax.plot([r for r, _ in bounds], [d / 1e6 for _, d in bounds], color=DEADLINE, linestyle="--", linewidth=1,
                label="deadline at that rate")
    if answer_hz is not None:
        ax.axvline(answer_hz, color=COLORS[2], linestyle=":", linewidth=1.2,
                   label=f"largest sustainable rate, {answer_hz:.3g} Hz")
    _log_y(ax)
    ax.set_xlabel("rate (frames/s)", fontsize=9)
    ax.set_ylabel("latency from the schedule (ms)", fontsize=9)
    for text, marker, color in (("median", "o", "#757575"), ("p99", "^", "#757575"), ("pass", "s", VERDICTS["pass"]),
                                ("fail", "s", VERDICTS["fail"])):
        ax.plot([], [], linestyle="none", marker=marker, markersize=5, color=color, label=text)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=5, fontsize=7, frameon=False)
    return _svg(fig, name)


def thermal(points: Sequence[StatePoint], name: str) -> str:
    """Each window's median latency (ms) against its temperature (left) and CPU clock (right)."""
    fig, (left, right) = _axes(2, 3.0)
    for p in points:
        if p.median_ns is None:
            continue
        for ax, part, x in ((left, "temp", p.temp_c), (right, "clock", None if p.freq_khz is None
                                                       else p.freq_khz / 1e3)):
            if x is not None:
                ax.plot([x], [p.median_ns / 1e6], linestyle="none", marker="o", markersize=5, color=INVOKE,
                        alpha=0.8, gid=f"mark--{p.key}--{part}")
    for ax, xlabel in ((left, "hottest thermal zone (°C)"), (right, "lowest CPU clock (MHz)")):
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("window median latency (ms)", fontsize=9)
        ax.margins(x=0.1, y=0.15)
    return _svg(fig, name)
