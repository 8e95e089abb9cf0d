"""Which benchmark is compared with which: across runs (`harness compare A B …`) or within one
(`--within RUN --by board|threads|variant`). Pure: sides in, pairs and notes out.

Across runs, a candidate run's benchmark meets the baseline run's benchmark of the same target,
model file name and threads; a field that each run holds only one value of is left out of the
match, so a run of one board meets a run of another (a board comparison), and a run of one model
file meets a run of another (a model comparison). Within one run, benchmarks are grouped by what
stays the same, and each group's baseline is its first member in the run's matrix order (the
order of `harness run`'s --target, --model and --threads), except that a variant meets the base
its recipe names when that base ran beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.results.compare import Pair, Side

Key = tuple[object, ...]
FIELDS = ("target", "model", "threads")
# Per --by: the fields that stay the same within a group (the others' differences are the subject)
GROUPS = {"board": ("model", "threads"), "threads": ("target", "model"), "variant": ("target", "threads")}


def _value(side: Side, field: str) -> object:
    return getattr(side.benchmark, field)


def name(side: Side) -> str:
    b = side.benchmark
    return f"{b.target} · {b.model} t{b.threads}"


def across_runs(baseline: Sequence[Side], candidates: Sequence[Sequence[Side]]) -> tuple[list[Pair], list[str]]:
    """Each candidate run's benchmarks paired with the baseline run's (see the module docstring),
    and a note for each benchmark that has no partner."""
    pairs: list[Pair] = []
    notes: list[str] = []
    for run in candidates:
        fields = [f for f in FIELDS if len({_value(s, f) for s in baseline}) > 1
                  or len({_value(s, f) for s in run}) > 1]

        def key(side: Side, fields: list[str] = fields) -> Key:
            return tuple(_value(side, f) for f in fields)

        by_key: dict[Key, Side] = {}
        for s in baseline:
            by_key.setdefault(key(s), s)
        matched: set[Key] = set()
        for s in run:
            partner = by_key.get(key(s))
            if partner is None:
                notes.append(f"{name(s)} of run {s.run_id} has no counterpart in run {baseline[0].run_id}")
            else:
                pairs.append(Pair("run", partner, s))
                matched.add(key(s))
        notes += [f"{name(s)} of run {s.run_id} has no counterpart in run {run[0].run_id}"
                  for k, s in by_key.items() if k not in matched and run]
    return pairs, notes


def variant_base(side: Side, group: Sequence[Side]) -> Side | None:
    """The baseline of the model ``side`` among the models of its group (one target and thread
    count). When the group holds a variant's base (``Side.base_sha256``, from the variant's recipe
    file), each variant meets its own base and other models meet nothing (None); otherwise every
    model meets the group's first in the run's matrix order."""
    by_sha = {s.benchmark.model_sha256: s for s in group}
    if not any(s.base_sha256 in by_sha for s in group):
        return group[0]
    return by_sha.get(side.base_sha256) if side.base_sha256 else None


def within(sides: Sequence[Side], by: str,
           baseline_of: Callable[[Side, Sequence[Side]], Side | None] = variant_base) -> tuple[list[Pair], list[str]]:
    """Pairs inside one run: per group of sides that share GROUPS[by], each member against its
    baseline: for boards, the run's first target that has the group; for threads, the first
    thread count; for variants, ``baseline_of`` the member. A note for each group of one."""
    if by not in GROUPS:
        raise ValueError(f"cannot compare by {by!r}")
    groups: dict[Key, list[Side]] = {}
    for s in sides:
        groups.setdefault(tuple(_value(s, f) for f in GROUPS[by]), []).append(s)
    pairs: list[Pair] = []
    notes: list[str] = []
    for group in groups.values():
        if len(group) < 2:
            notes.append(f"{name(group[0])}: nothing of the run to compare it with by {by}")
            continue
        for s in group:
            base = baseline_of(s, group) if by == "variant" else group[0]
            if base is not None and base is not s:
                pairs.append(Pair(by, base, s))
            elif base is None and s.base_sha256:
                notes.append(f"{name(s)}: its base (sha256 {s.base_sha256[:12]}) did not run here")
    return pairs, notes
