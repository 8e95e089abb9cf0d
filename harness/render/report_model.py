"""What a report is made of: the stored runs it reads, and the sections it shows.

``load(paths)`` reads each run as `harness show` does (harness.results.store, .summary, .layers):
benchmark runs give one ``Entry`` per benchmark, each with a key (``b1``, ``b2``, ... in report
order) that its table rows and its figures' marks share; profile runs give their stored profiles,
recomputed from their raw rounds; stream runs (`harness stream`, `harness soak`) their streams,
whose figures harness.results.stream recomputes from the raw frames. Nothing here touches a board.

A ``Section`` is prose, tables (harness.render.grid) and figures (harness.render.plots, SVG); a
``Figure`` names the table it draws and the marks it holds per row (``marks``), so that a
reader, or a test, can check that the figure carries the data it claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.recipes import Recipe
from harness.render.grid import Grid
from harness.render.table import label
from harness.results import store, stream_store
from harness.results.compare import Side, sides, variant_recipes
from harness.results.layers import ProfileRecord, stored_profiles
from harness.results.stream import StreamRecord
from harness.results.summary import BenchmarkSummary, summarize
from harness.results.variants import VariantInfo, VariantSet


@dataclass(frozen=True)
class Entry:
    """One benchmark of the report: its key, its run, its summary, and its label in figures."""

    key: str
    run: StoredRun
    summary: BenchmarkSummary
    label: str


@dataclass(frozen=True)
class StoredRun:
    path: Path
    meta: dict[str, Any]
    kind: str
    benchmarks: int = 0  # how many benchmarks (or profiles) it holds

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)


@dataclass(frozen=True)
class Material:
    """Everything the report shows, as loaded: runs in the order given, benchmarks in run order."""

    runs: tuple[StoredRun, ...]
    entries: tuple[Entry, ...]
    profiles: tuple[tuple[StoredRun, ProfileRecord], ...]
    streams: tuple[tuple[StoredRun, StreamRecord], ...] = ()
    _recipes: dict[Path, dict[str, Recipe]] = field(default_factory=dict, compare=False, repr=False)

    def benchmark_runs(self) -> list[StoredRun]:
        return [r for r in self.runs if r.kind == "benchmark"]

    def stream_runs(self) -> list[StoredRun]:
        return [r for r in self.runs if r.kind == "stream"]

    def stream_sides(self, run: StoredRun) -> list[Side]:
        """The streams of ``run`` as harness compare's sides, in the run's matrix order."""
        return sides(run.meta, [r for owner, r in self.streams if owner is run], run.run_id)

    def of(self, run: StoredRun) -> list[Entry]:
        """The entries of ``run``, in the order its files were read."""
        return [e for e in self.entries if e.run is run]

    def sides(self, run: StoredRun, recipes: bool = False) -> list[Side]:
        """The benchmarks of ``run`` as harness compare's sides (in the run's matrix order), each
        variant with its base when ``recipes`` (the recipe files beside the models as run)."""
        bases = {sha: r.base_sha256 for sha, r in self.recipes(run).items()} if recipes else {}
        return sides(run.meta, [e.summary.benchmark for e in self.of(run)], run.run_id, bases)

    def variants(self, run: StoredRun) -> VariantSet:
        """The variants ``run`` compared, as its run.json recorded them; for a run made before
        run.json recorded them, those whose recipe files are beside the models as run."""
        recorded = VariantSet.from_meta(run.meta)
        if recorded.infos:
            return recorded
        return VariantSet(tuple(VariantInfo(r.variant_sha256, r.kind, r.name, r.base_sha256, str(r.path))
                                for r in self.recipes(run).values()))

    def recipes(self, run: StoredRun) -> dict[str, Recipe]:
        """{variant sha256: its recipe} for the variants benchmarked in ``run`` (read once)."""
        if run.path not in self._recipes:
            self._recipes[run.path] = variant_recipes(run.path)
        return self._recipes[run.path]


@dataclass(frozen=True)
class Figure:
    """An SVG figure (harness.render.plots) of the table ``table`` (an id in its section).
    ``marks``: (part, columns) pairs: each row of that table has one mark of ``part`` when its
    cells in ``columns`` all hold a figure (a digit: not "–", "failed" or "unsupported"); with no
    columns, every row has one. A column written ``#col`` counts: a row has a mark when its
    ``col`` cell is a count above 0, and that mark holds as many points (markers) as it says
    (a stream's frames in a window, its misses)."""

    name: str
    svg: str
    caption: str
    table: str
    marks: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    intro: tuple[str, ...] = ()
    tables: tuple[tuple[str, Grid], ...] = ()  # (id, table), ids unique in the report
    figures: tuple[Figure, ...] = ()
    lines: tuple[str, ...] = ()  # sentences under the tables (the comparisons as hyperfine says them)
    notes: tuple[str, ...] = field(default_factory=tuple)  # what is missing, and how to get it


def load(paths: Sequence[Path]) -> Material:
    """The runs in directories ``paths``, in that order. Raises ConfigError for a run that holds
    nothing to show (no run.json and no records)."""
    runs: list[StoredRun] = []
    entries: list[Entry] = []
    profiles: list[tuple[StoredRun, ProfileRecord]] = []
    streams: list[tuple[StoredRun, StreamRecord]] = []
    several = sum(store.run_kind(store.load_meta(p)) == "benchmark" for p in paths) > 1
    for path in paths:
        meta = store.load_meta(path)
        kind = store.run_kind(meta)
        if kind == "benchmark":
            _, benchmarks = store.load_run(path)
            run = StoredRun(path, meta, kind, len(benchmarks))
            for b in benchmarks:
                s = summarize(b)
                text = label(s) + (f" ({run.run_id[-4:]})" if several else "")
                entries.append(Entry(f"b{len(entries) + 1}", run, s, text))
        elif kind == "profile":
            records = stored_profiles(path)
            run = StoredRun(path, meta, kind, len(records))
            profiles += [(run, r) for r in records]
        elif kind == "stream":  # harness stream and harness soak
            _, measured = stream_store.load_streams(path)
            run = StoredRun(path, meta, kind, len(measured))
            streams += [(run, r) for r in measured]
        else:  # a kind this harness does not know: listed with the runs
            run = StoredRun(path, meta, kind, 0)
        if not meta and not run.benchmarks:
            raise ConfigError(f"{path} is not a stored run (no run.json and no records)",
                              hint="pass run ids or directories under --results")
        runs.append(run)
    return Material(tuple(runs), tuple(entries), tuple(profiles), tuple(streams))
