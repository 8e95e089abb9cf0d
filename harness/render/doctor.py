"""Rendering of `harness doctor` findings: a table for people, JSON lines for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from harness.config import Target
from harness.lab.doctor import ERROR, WARN, Diagnosis, ready
from harness.render.text import plain

_STYLE = {"ok": "green", WARN: "yellow", ERROR: "red"}


def doctor_table(results: Sequence[tuple[Target, list[Diagnosis]]]) -> Table:
    """One row per finding, grouped by target, with the fix beside every warning and error."""
    table = Table(title="harness doctor", show_lines=False)
    table.add_column("target", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("finding")
    table.add_column("fix")
    for target, findings in results:
        for i, f in enumerate(findings):
            # Text, not str: "[targets.pi]" in a message is not rich markup; and what a board
            # said (its model string, a runtime's error) shows its control characters escaped
            table.add_row(plain(target.name if i == 0 else ""), f.check,
                          Text(f.level, style=_STYLE[f.level]), plain(f.what), plain(f.fix or ""),
                          end_section=i == len(findings) - 1)
    return table


def doctor_summary(results: Sequence[tuple[Target, list[Diagnosis]]]) -> str:
    """One line: which targets are ready and which are not."""
    bad = [t.name for t, f in results if not ready(f)]
    good = [t.name for t, f in results if ready(f)]
    parts = []
    if good:
        parts.append(f"ready: {', '.join(good)}")
    if bad:
        parts.append(f"NOT ready: {', '.join(bad)}")
    return "; ".join(parts)


def doctor_json(results: Sequence[tuple[Target, list[Diagnosis]]]) -> list[str]:
    """One JSON object per target: {"kind": "doctor", "target", "ready", "findings": [{check, level, what, fix}]}."""
    return [json.dumps({"kind": "doctor", "target": t.name, "ready": ready(f), "findings": [x.as_dict() for x in f]})
            for t, f in results]
