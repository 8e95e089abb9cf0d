"""The report's first section: which runs, what they asked for, and what the boards said they are.

From run.json: the run's kind, status, times, harness version and schema, its plan, and its
targets' facts (Target.facts(): kind, description, memory, price, power; never an address, a
user or a key). From each benchmark's hello: the board's model, CPU, cores, machine, kernel and
governor, and the runtime with its version, as the board reported them.
"""

from __future__ import annotations

from typing import Any

from harness.render.analysis import human_bytes
from harness.render.grid import Column, Grid, Row, cell, name, words
from harness.render.report_model import Material, Section, StoredRun
from harness.render.text import visible

DASH = "–"


def _text(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or DASH
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items()) or DASH
    return visible(str(value))


def runs_grid(m: Material) -> Grid:
    columns = (Column("run", "Run", "left", repeat=True), Column("kind", "Kind", "left"),
               Column("status", "Status", "left"), Column("started", "Started (UTC)", "left"),
               Column("finished", "Finished (UTC)", "left"), Column("harness", "harness", "left"),
               Column("schema", "Schema"), Column("records", "Records"))
    rows = []
    for r in m.runs:
        meta = r.meta
        status = str(meta.get("status") or "?") + (f" ({meta['signal']})" if meta.get("signal") else "")
        rows.append(Row((name(r.run_id), cell(r.kind), words(visible(status)),
                         cell(_time(meta.get("started_at"))), cell(_time(meta.get("finished_at"))),
                         cell(_text(meta.get("harness_version"))), cell(_text(meta.get("schema_version"))),
                         cell(str(r.benchmarks))),
                        "red" if meta.get("status") == "failed" else None, r.run_id))
    legend = [f"{r.run_id}: {visible(str(r.meta['error']))}" for r in m.runs if r.meta.get("error")]
    return Grid(columns, tuple(rows), "Runs", tuple(legend))


def _time(iso: Any) -> str:
    """"2026-12-01T21:28:37.123+00:00" -> "2026-12-01 21:28:37"."""
    return DASH if not iso else str(iso).replace("T", " ")[:19]


def plan_grid(runs: list[StoredRun]) -> Grid:
    """The plans side by side: one row per plan key, one column per run."""
    keys = list(dict.fromkeys(k for r in runs for k in (r.meta.get("plan") or {})))
    columns = (Column("setting", "Plan", "left", repeat=True),
               *(Column(f"run{n}", r.run_id, "left") for n, r in enumerate(runs, 1)))
    rows = [Row((cell(k), *(words(_text((r.meta.get("plan") or {}).get(k))) for r in runs))) for k in keys]
    return Grid(columns, tuple(rows), "What each run asked for")


TARGET_COLUMNS = (
    Column("target", "Target", "left", repeat=True), Column("kind", "Kind", "left"),
    Column("description", "Description", "left"), Column("ram", "RAM"), Column("flash", "Flash"),
    Column("price_usd", "Price (USD)"), Column("power_w", "Power (W)"), Column("idle_power_w", "Idle (W)"),
    Column("runs", "Runs", "left"),
)


def targets_grid(m: Material) -> Grid:
    """Each target's facts from run.json; a target whose facts differ between runs has a row per
    version of them."""
    seen: dict[tuple[str, str], list[str]] = {}
    facts_of: dict[tuple[str, str], dict[str, Any]] = {}
    for r in m.runs:
        for target, facts in (r.meta.get("targets") or {}).items():
            k = (target, repr(sorted((facts or {}).items())))
            seen.setdefault(k, []).append(r.run_id)
            facts_of[k] = facts or {}
    rows = []
    for (target, _), run_ids in seen.items():
        f = facts_of[target, _]
        size = {k: human_bytes(f[k]) if isinstance(f.get(k), int) else DASH for k in ("ram_bytes", "flash_bytes")}
        rows.append(Row((name(target), cell(_text(f.get("kind"))), words(_text(f.get("description"))),
                         cell(size["ram_bytes"]), cell(size["flash_bytes"]), cell(_text(f.get("price_usd"))),
                         cell(_text(f.get("power_w"))), cell(_text(f.get("idle_power_w"))),
                         words(", ".join(run_ids)))))
    return Grid(TARGET_COLUMNS, tuple(rows), "Targets, as targets.toml declared them",
                ("price and power are declared in targets.toml (price_usd, power_w, idle_power_w), not measured",))


BOARD_COLUMNS = (
    Column("target", "Target", "left", repeat=True), Column("board", "Board", "left"),
    Column("cpu", "CPU", "left"), Column("cores", "Cores"), Column("machine", "Machine", "left"),
    Column("kernel", "Kernel", "left"), Column("governor", "Governor", "left"),
    Column("runtime", "Runtime", "left"), Column("clock", "Clock", "left"), Column("emulated", "Emulated", "left"),
)


def boards_grid(m: Material) -> Grid:
    """What each board said of itself in its hello: one row per distinct answer."""
    rows: dict[tuple[str, ...], Row] = {}
    hellos = [(e.summary.benchmark.target, e.summary.benchmark.hello) for e in m.entries]
    hellos += [(p.target, _profile_hello(run, p.target)) for run, p in m.profiles]
    for target, hello in hellos:
        board = hello.get("board") or {}
        runtime = hello.get("runtime") or {}
        clock = hello.get("clock") or {}
        values = (target, board.get("model"), board.get("cpu"), board.get("cores"), board.get("machine"),
                  board.get("kernel"), board.get("governor"),
                  " ".join(str(x) for x in (runtime.get("name"), runtime.get("version")) if x),
                  clock.get("name"), hello.get("emulated"))
        texts = tuple(_text(v) for v in values)
        if hello and texts not in rows:
            rows[texts] = Row((name(texts[0]), *(words(t) for t in texts[1:])))
    return Grid(BOARD_COLUMNS, tuple(rows.values()), "Boards, as each reported itself (hello)")


def _profile_hello(run: StoredRun, target: str) -> dict[str, Any]:
    """The hello of a profile run's record of ``target`` (the first one)."""
    from harness.results import store

    for path in store.records(run.path, "profile"):
        header, lines = store.read_record(path)
        if header.get("target") == target:
            return next((msg for msg in lines if msg.get("type") == "hello"), {})
    return {}


def runs_section(m: Material) -> Section:
    tables = [("t-runs", runs_grid(m))]
    planned = [r for r in m.runs if r.meta.get("plan")]
    if planned:
        tables.append(("t-plan", plan_grid(planned)))
    if any(r.meta.get("targets") for r in m.runs):
        tables.append(("t-targets", targets_grid(m)))
    boards = boards_grid(m)
    if boards.rows:
        tables.append(("t-boards", boards))
    return Section("runs", "Runs and boards", intro=(
        "What was run, as stored: each run's run.json and what each board said of itself. "
        "Connection details (addresses, users, keys) are never stored, so never shown.",), tables=tuple(tables))
