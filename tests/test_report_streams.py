"""`harness report` of real stream runs (tests/reportstreamkit.py: a Poisson stream that queues, a
--find-max search, a soak on a board whose /sys is a recorded Raspberry Pi 4 tree): the streams
table holds what `harness show --json` says, each stream's windows add up to its frames and
misses, the soak's windows carry the board's temperature and clock, and stream runs are compared
as `harness compare` compares them. Point counts in the figures: tests/test_report_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.render.table import duration
from tests.reportkit import Tables
from tests.reportstreamkit import StreamRuns, shown, stream_page, stream_runs

__all__ = ["stream_page", "stream_runs"]  # session fixtures, shared with tests/test_report_browser.py


def test_the_streams_table_is_what_show_says(stream_runs: StreamRuns, stream_page: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    page = Tables(stream_page.read_text(encoding="utf-8"))
    objects = [o for run in stream_runs.all for o in shown(stream_runs, run, capsys)]
    rows = page.rows("t-streams")
    assert [key for key, _ in rows] == ["s1", "s2", "s3"] and len(objects) == 3
    for (_, cells), o in zip(rows, objects, strict=True):
        assert cells["frames"] == f"{o['frames']:,}"
        assert cells["late"].split(" ")[0] == f"{o['late']:,}"
        lat = o["latency"]
        assert cells["latency"] == f"{duration(lat['median_ns'])} / {duration(lat['p99_ns'])}"
    assert objects[1]["max_sustainable_rate_hz"] is not None and rows[1][1]["max"] != "–"
    for n, o in enumerate(objects, 1):  # the windows beside each timeline: every frame, every miss, once
        windows = page.rows(f"t-stream-{n}-windows")
        assert all(key == f"s{n}-w{k}" for k, (key, _) in enumerate(windows))
        assert sum(int(c["frames"].replace(",", "")) for _, c in windows) == o["frames"]
        assert sum(int(c["missed"].replace(",", "")) for _, c in windows) == o["late"] + o["dropped"]
    trials = page.rows("t-stream-2-trials")
    assert len(trials) == len(objects[1]["trials"]) >= 3
    assert sum("answer" in c["verdict"] for _, c in trials) == 1


def test_the_soak_carries_the_boards_state(stream_page: Path) -> None:
    page = Tables(stream_page.read_text(encoding="utf-8"))
    windows = page.rows("t-stream-3-windows")
    assert len(windows) >= 2
    # the recorded tree's one zone reads 51121 millidegrees; its CPUs' clocks are in MHz
    assert all(c["temp"] == "51.1 °C" and c["clock"].endswith(" MHz") for _, c in windows)
    assert 'data-figure="thermal-3"' in stream_page.read_text(encoding="utf-8")


def test_stream_runs_are_compared_as_harness_compare_does(stream_page: Path) -> None:
    page = Tables(stream_page.read_text(encoding="utf-8"))
    rows = page.rows("t-comparison-streams")
    assert rows and all(key and key.startswith("sc") for key, _ in rows)
    assert "window medians" in stream_page.read_text(encoding="utf-8")  # the unit harness compare names
