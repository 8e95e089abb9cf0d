"""What a board pool's results say as a whole: which boards ran how much, which failed and where
their jobs went, and whether the boards are identical enough to be read as one.

Identity is what a result depends on besides the job itself: the board's model and the runtime
with its version (the model's hash is the job's own). A pool's rows are read as one pool only
where their identities match, as pyperf refuses to merge runs whose metadata differ; a board that
differs is named, so that its rows are compared on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.results.benchmark import Benchmark
from harness.results.summary import BenchmarkSummary

Identity = tuple[str | None, str | None, str | None]  # board model, runtime, runtime version


def identity(b: Benchmark) -> Identity:
    return (b.hello.get("board") or {}).get("model"), b.runtime, b.runtime_version


def describe(ident: Identity) -> str:
    model, runtime, version = ident
    return f"{model or 'unknown board'} · {runtime or '?'} {version or ''}".rstrip()


@dataclass
class PoolReport:
    """One pool of a run: its boards in the order they first ran, and what happened to them."""

    pool: str
    runs: dict[str, int] = field(default_factory=dict)  # place -> benchmarks it ran (failed ones too)
    failures: dict[str, str] = field(default_factory=dict)  # place -> why it failed ("" unknown)
    moves: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)  # (job, from, to)
    identities: dict[Identity, list[str]] = field(default_factory=dict)  # measured boards by identity

    @property
    def identical(self) -> bool:
        return len(self.identities) <= 1


def pool_reports(summaries: Sequence[BenchmarkSummary]) -> list[PoolReport]:
    """One report per pool among ``summaries``, in the order the pools first appear."""
    reports: dict[str, PoolReport] = {}
    for s in summaries:
        b = s.benchmark
        if b.pool is None:
            continue
        r = reports.setdefault(b.pool, PoolReport(b.pool))
        r.runs[b.target] = r.runs.get(b.target, 0) + 1
        if b.moved_from:
            r.moves.append((f"{b.model.removesuffix('.tflite')} t{b.threads}", b.moved_from, b.target))
            for place in b.moved_from:
                r.failures.setdefault(place, "")
        if b.error is not None:
            r.failures[b.target] = str(b.error.get("message") or "")
        elif s.with_invoke is not None:
            places = r.identities.setdefault(identity(b), [])
            if b.target not in places:
                places.append(b.target)
    for r in reports.values():  # a board whose failure moved nothing (its last job) is no move
        r.failures = {p: why for p, why in r.failures.items() if any(p in frm for _, frm, _ in r.moves)}
    return list(reports.values())
