"""The report's figures, each drawn by matplotlib as SVG text to inline in the page.

Why matplotlib, as SVG: the page must work offline and stay small. An inline SVG needs no script
at all (a self-contained plotly page carries about 4.8 MB of JavaScript), prints sharply, and its
elements stay in the page's DOM, where a test can count them. matplotlib is the `report` extra
(``pip install 'harness[report]'``), not a main dependency: benchmarking needs none of its
35 MB, and ``require()`` names the install command when it is missing.

Reproducible: no pyplot and no global backend (a ``Figure`` saved with the SVG backend),
``svg.hashsalt`` fixed per figure so the ids matplotlib derives are the same run after run, no
date in the metadata, text kept as text (``svg.fonttype`` none: smaller, searchable). The same
data gives the same bytes.

Checkable: every mark that stands for a row of the table beside it (a bar, a box, a point) is
a group whose id is ``mark--KEY--PART`` (matplotlib's ``set_gid``), KEY the row's key; when the
SVG is inlined, ``inline`` prefixes every id with the figure's name (so that figures share no
id) and adds ``data-key`` and ``data-part`` to those marks, so a test counts the marks of each
part and matches their keys with the table's rows.

Inputs are plain values in nanoseconds, bytes and fractions; formatting lives here only.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

INSTALL = "pip install 'harness[report]' (or: pip install matplotlib)"
ROW_IN = 0.3  # figure height per row, inches
WIDTH_IN = 9.0
LABEL_CHARS = 60  # a row label longer than this is wrapped
COLORS = ("#4472c4", "#ed7d31", "#70ad47", "#a05195", "#ffc000", "#5b9bd5", "#9e480e", "#636363")
INVOKE, REST = "#4472c4", "#c9c9c9"
VERDICT_COLORS = {"faster": "#2e7d32", "slower": "#c62828"}


def require() -> None:
    """Raise ConfigError, with the install command, when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("harness report draws its figures with matplotlib, which is not installed",
                          hint=INSTALL) from exc


@dataclass(frozen=True)
class Distribution:
    """One benchmark's raw Invoke samples (ns) and the median of each of its blocks."""

    key: str
    label: str
    samples: Sequence[float]
    block_medians: Sequence[float]


@dataclass(frozen=True)
class Split:
    """One benchmark's loop: medians with and without Invoke (ns), and the inference share."""

    key: str
    label: str
    with_ns: float
    without_ns: float
    share: float


@dataclass(frozen=True)
class Bars:
    """One row of a figure of paired bars (a layer's time and FLOPs shares; a board's inferences
    per joule and per dollar): ``values`` by part, None where that part has no figure. A part in
    ``bounds`` is an upper bound, not a figure (a layer below resolution: "< x"), drawn hollow."""

    key: str
    label: str
    values: dict[str, float | None]
    bounds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Point:
    """One benchmark in the trade-off: Invoke median (ns), model size (bytes), top-1 accuracy."""

    key: str
    label: str
    group: str  # the target: one colour each
    latency_ns: float
    size_bytes: float | None
    accuracy: float | None
    collapsed: bool = False  # its accuracy collapsed against its base: drawn as an x


@dataclass(frozen=True)
class Ratio:
    """One comparison: candidate / baseline and its 95 % interval; ``verdict`` as compare says."""

    key: str
    label: str
    ratio: float
    ci: tuple[float, float] | None
    verdict: str


def _tex(text: str) -> str:
    """Text that matplotlib shows as written: a "$" would start mathtext."""
    return text.replace("$", r"\$")


def _figure(rows: float, panels: int = 1, extra_in: float = 1.2, sharey: bool = True) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, extra_in + ROW_IN * max(rows, 1)), layout="constrained")
    axes = fig.subplots(1, panels, sharey=sharey, squeeze=False)[0]
    for ax in axes:
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def _rows(ax: Any, labels: Sequence[str]) -> list[int]:
    """Row positions, the first row at the top, labelled."""
    ys = list(range(len(labels)))
    ax.set_yticks(ys, [_tex(label) for label in labels], fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    return ys


def _log_axis(ax: Any) -> None:
    """A logarithmic x axis labelled in plain numbers (10, 100, 1000) at its decades only: minor
    ticks unlabelled, or their "2×10³" labels would run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}" if x >= 1 else f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ns_axis(ax: Any, values: Sequence[float], label: str) -> None:
    """An x axis of durations: logarithmic when they span more than 20×, in µs or ms."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    unit, scale = ("ms", 1e6) if positive and max(positive) >= 1e6 else ("µs", 1e3)
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
        # Room either side: log autoscaling puts the fastest row's p1 cap on the axis itself.
        ax.set_xlim(min(positive) / 1.25, max(positive) * 1.25)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / scale:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{label} ({unit})", fontsize=9)


def latency(rows: Sequence[Distribution]) -> str:
    """Box per benchmark of its raw Invoke samples (box: quartiles; line: median; whiskers: p1
    and p99), with each block's median as a dot on it."""
    import numpy as np

    fig, (ax,) = _figure(len(rows))
    ys = _rows(ax, [r.label for r in rows])
    every: list[float] = []
    for y, r in zip(ys, rows, strict=True):
        p1, q1, med, q3, p99 = np.percentile(np.asarray(r.samples, dtype=float), [1, 25, 50, 75, 99])
        every += [p1, p99]
        nan = float("nan")  # breaks the line: the caps at p1 and p99, and the whisker between them
        ax.plot([p1, p1, nan, p1, p99, nan, p99, p99], [y - 0.15, y + 0.15, nan, y, y, nan, y - 0.15, y + 0.15],
                color="#555555", linewidth=0.8, gid=f"mark--{r.key}--whiskers")
        ax.barh([y], [q3 - q1], left=[q1], height=0.6, color="#dbe5f5", edgecolor=INVOKE,
                linewidth=0.8)[0].set_gid(f"mark--{r.key}--box")
        ax.plot([med, med], [y - 0.3, y + 0.3], color=INVOKE, linewidth=1.6, gid=f"mark--{r.key}--median")
        if len(r.block_medians):
            ax.plot(list(r.block_medians), [y] * len(r.block_medians), linestyle="none", marker="o",
                    markersize=2.5, color="#c62828", alpha=0.8, gid=f"mark--{r.key}--blocks")
    _ns_axis(ax, every, "Invoke time")
    ax.plot([], [], color="#555555", linewidth=0.8, label="p1 – p99")
    ax.plot([], [], linestyle="none", marker="o", markersize=3, color="#c62828", label="block medians")
    # Above the axes, as in the bottleneck figure: inside, it would cover the slowest row's box.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=7, frameon=False)
    return _svg(fig, "latency")


def bottleneck(rows: Sequence[Split]) -> str:
    """The loop with Invoke as 100 %: the loop without Invoke, and what Invoke adds to it (the
    inference share), one stacked bar per benchmark, the loop's median time at its end."""
    fig, (ax,) = _figure(len(rows))
    ys = _rows(ax, [r.label for r in rows])
    for y, r in zip(ys, rows, strict=True):
        share = min(max(r.share, 0.0), 1.0)
        ax.barh([y], [100 * (1 - share)], height=0.6, color=REST)[0].set_gid(f"mark--{r.key}--rest")
        ax.barh([y], [100 * share], left=[100 * (1 - share)], height=0.6,
                color=INVOKE)[0].set_gid(f"mark--{r.key}--invoke")
        ax.text(101, y, f"{100 * r.share:.0f} % of {_duration(r.with_ns)}", va="center", fontsize=7)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("share of the loop with Invoke (%)", fontsize=9)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=REST, label="loop without Invoke"),
                       Patch(color=INVOKE, label="added by Invoke (the inference share)")],
              loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=7, frameon=False)
    return _svg(fig, "bottleneck")


def paired_bars(name: str, rows: Sequence[Bars], parts: Sequence[tuple[str, str]], xlabel: str,
                log: bool = False, panels: bool = False) -> str:
    """Bars of each row for each of ``parts`` ((part, legend label)): side by side in one panel,
    or with ``panels`` one panel per part (their units differ). Rows without a part's value
    have no bar of that part."""
    fig, axes = _figure(len(rows), len(parts) if panels else 1)
    ys = _rows(axes[0], [r.label for r in rows])
    height = 0.8 / (1 if panels else len(parts))
    for n, (part, text) in enumerate(parts):
        ax = axes[n] if panels else axes[0]
        offset = 0 if panels else (n - (len(parts) - 1) / 2) * height
        labelled = bounded = False  # the part's first bar (and first bound) names it in the legend
        for y, r in zip(ys, rows, strict=True):
            v = r.values.get(part)
            if v is None:
                continue
            color = COLORS[n % len(COLORS)]
            if part in r.bounds:  # at most this much: an outline from 0 to the bound
                bar = ax.barh([y + offset], [max(v, 0.0)], height=height * 0.9, facecolor="none", edgecolor=color,
                              hatch="///", linewidth=0.8, label=None if bounded else f"{text}: below resolution, "
                              "at most this")[0]
                bounded = True
            else:
                bar = ax.barh([y + offset], [v], height=height * 0.9, color=color,
                              label=None if labelled else text)[0]
                labelled = True
            bar.set_gid(f"mark--{r.key}--{part}")
        if log:
            _log_axis(ax)
        ax.set_xlabel(text if panels else xlabel, fontsize=9)
    if not panels:
        axes[0].legend(loc="lower right", fontsize=7, frameon=False)
    return _svg(fig, name)


def tradeoff(points: Sequence[Point], name: str = "tradeoff") -> str:
    """Each benchmark as a point: Invoke latency against model size, and against accuracy (the
    benchmarks with an accuracy only), one colour per target."""
    fig, (left, right) = _figure(0, 2, extra_in=3.6, sharey=False)
    groups = list(dict.fromkeys(p.group for p in points))
    for p in points:
        color = COLORS[groups.index(p.group) % len(COLORS)]
        for ax, part, y in ((left, "size", p.size_bytes), (right, "accuracy", p.accuracy)):
            if y is None:
                continue
            value = y / 1024 if part == "size" else 100 * y
            ax.plot([p.latency_ns], [value], linestyle="none", marker="X" if p.collapsed else "o",
                    markersize=8 if p.collapsed else 6, color=color, markeredgecolor="#c62828" if p.collapsed
                    else color, gid=f"mark--{p.key}--{part}")
            if len(points) <= 12:  # beyond that the names would cover each other
                ax.annotate(_tex(p.label), (p.latency_ns, value), xytext=(4, 3), textcoords="offset points",
                            fontsize=6.5)
    accuracies = [100 * p.accuracy for p in points if p.accuracy is not None]
    if accuracies:  # from a little under the lowest to 100 %: a 0.2-point change does not fill the panel
        right.set_ylim(max(0.0, min(accuracies) - 5), 100.5)
    left.set_ylim(bottom=0)
    for ax, ylabel in ((left, "model size (KiB)"), (right, "top-1 accuracy on the board (%)")):
        _ns_axis(ax, [p.latency_ns for p in points], "Invoke median")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
        ax.tick_params(labelsize=8)
    for n, g in enumerate(groups):
        for ax in (left, right):
            ax.plot([], [], linestyle="none", marker="o", color=COLORS[n % len(COLORS)], label=_tex(g))
    for ax in (left, right):
        ax.legend(fontsize=7, frameon=False)
    return _svg(fig, name)


def comparison(rows: Sequence[Ratio]) -> str:
    """Each comparison's ratio (candidate / baseline; above 1: slower) with its 95 % interval, on
    a log axis around 1."""
    labels = [textwrap.fill(r.label, LABEL_CHARS) for r in rows]  # a long one would run off the figure
    fig, (ax,) = _figure(sum(1 + 0.6 * label.count("\n") for label in labels))
    ys = _rows(ax, labels)
    ax.axvline(1.0, color="#555555", linewidth=0.8)
    for y, r in zip(ys, rows, strict=True):
        color = VERDICT_COLORS.get(r.verdict, "#757575")
        err = None if r.ci is None else [[r.ratio - r.ci[0]], [r.ci[1] - r.ratio]]
        ax.errorbar([r.ratio], [y], xerr=err, fmt="o", color=color, markersize=4, capsize=2,
                    linewidth=1)[0].set_gid(f"mark--{r.key}--ratio")
    ax.set_xscale("log")
    lo = min([r.ci[0] if r.ci else r.ratio for r in rows] + [1.0])
    hi = max([r.ci[1] if r.ci else r.ratio for r in rows] + [1.0])
    lo, hi = lo / 1.15, hi * 1.15
    ax.set_xlim(lo, hi)
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(_ratio_ticks(lo, hi)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:.3g}×"))
    ax.set_xlabel("candidate / baseline, 95 % interval (left of 1: faster)", fontsize=9)
    return _svg(fig, "comparison")


RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2, 5, 10, 20, 50, 100)


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    """Ticks from RATIO_TICKS within [lo, hi], 1 first, then each one at least an eighth of the
    axis (in log) away from those already taken, so that labels never overlap."""
    gap = math.log(hi / lo) / 8
    chosen = [1.0]
    for t in sorted((t for t in RATIO_TICKS if lo <= t <= hi), key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t / c)) >= gap for c in chosen):
            chosen.append(t)
    return sorted(chosen) if len(chosen) >= 3 else sorted({lo * 1.02, 1.0, hi / 1.02})


def _duration(ns: float) -> str:
    return f"{ns / 1e6:.3g} ms" if ns >= 1e6 else f"{ns / 1e3:.3g} µs"


def _svg(fig: Any, name: str) -> str:
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"harness-{name}", "svg.fonttype": "none",
                                "font.family": ["DejaVu Sans", "sans-serif"]}):
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_MARK = re.compile(r'id="(?P<p>[\w-]+?)-mark--(?P<key>[\w.-]+?)--(?P<part>[\w]+)"')


def inline(svg: str, name: str) -> str:
    """The SVG document as an element for a page: without its XML declaration and doctype,
    every id prefixed with ``name`` (and each reference to one), marks given ``data-key``,
    ``data-part`` and ``data-figure``."""
    body = svg[svg.index("<svg"):]
    body = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', body)
    body = _REF.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", body)
    body = _MARK.sub(lambda m: f'{m.group(0)} data-figure="{m.group("p")}" data-key="{m.group("key")}" '
                               f'data-part="{m.group("part")}"', body)
    return body.replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1)
