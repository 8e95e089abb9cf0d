"""The report in a real headless Chromium (Debian's package, driven over the DevTools protocol:
tests/chromium.py): it loads offline, asking for nothing but itself, with no console error, and
each figure carries the data it claims: the marks of each part are the rows of the table beside
it, key for key. Controls show that each check can fail: a page that loads a picture from
elsewhere is caught by the console (CSP) and by the network log, and a figure with a mark taken
away is caught by the count.

Set HARNESS_REPORT_SCREENSHOT=PATH.png to keep a screenshot of the whole page.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from tests.chromium import Chromium, binary
from tests.environment import needs
from tests.reportkit import Written, report_page, report_runs
from tests.reportstreamkit import StreamRuns, stream_page, stream_runs

__all__ = ["report_page", "report_runs", "stream_page", "stream_runs"]  # session fixtures (tests/reportkit.py, reportstreamkit.py)

pytestmark = needs(binary() is not None, "needs a headless Chromium: apt-get install chromium")

# For each figure and each part in its data-marks: the keys of the rows that should have a mark
# (their cells in the named columns hold a figure: a digit; a "#col" column a count above 0), the keys
# of the marks drawn, whether each mark has geometry on the page, and for a counted part the points
# (markers: SVG <use> elements) each mark holds against the count its row states.
MARKS_JS = r"""
[...document.querySelectorAll('figure[data-figure]')].flatMap(fig => {
  const rows = [...document.getElementById(fig.dataset.table).querySelectorAll('tbody tr')];
  const svg = fig.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const text = (tr, c) => { const td = tr.querySelector(`td[data-col="${c}"]`); return td ? td.textContent : null; };
  const count = (tr, c) => parseInt((text(tr, c) || '0').split(' ')[0].replace(/,/g, ''), 10) || 0;
  return fig.dataset.marks.split(' ').map(spec => {
    const [part, cols] = spec.split(':');
    const need = cols ? cols.split(',') : [];
    const plain = need.filter(c => !c.startsWith('#'));
    const counted = need.filter(c => c.startsWith('#')).map(c => c.slice(1));
    const wanted = rows.filter(tr => plain.every(c => text(tr, c) !== null && /[0-9]/.test(text(tr, c)))
                                     && counted.every(c => count(tr, c) > 0));
    const marks = [...svg.querySelectorAll(`[data-part="${part}"]`)];
    return {figure: fig.dataset.figure, part, want: wanted.map(tr => tr.dataset.key), got: marks.map(m => m.dataset.key),
            expected: counted.length ? wanted.map(tr => count(tr, counted[0])) : null,
            points: marks.map(m => m.querySelectorAll('use').length),
            drawn: marks.every(m => { const b = m.getBBox(); return b.width + b.height > 0; }),
            width: box.width, height: box.height};
  });
})
"""


def _marks(c: Chromium) -> list[dict[str, Any]]:
    return list(c.evaluate(MARKS_JS))


def test_the_report_loads_offline_and_each_figure_carries_its_table(report_page: Written, tmp_path: Path) -> None:
    with Chromium() as c:
        load = c.open(report_page.html)
        assert load.requests == [report_page.html.resolve().as_uri()]  # the page itself, nothing else
        assert load.errors == []
        marks = _marks(c)
        shot = c.screenshot(tmp_path / "report.png")
    figures = {m["figure"] for m in marks}
    assert {"latency", "bottleneck", "layers-1", "layers-2", "tradeoff", "efficiency", "comparison"} <= figures
    for m in marks:
        assert m["got"] == m["want"], m  # the same rows, in the table's order
        assert m["drawn"] and m["width"] > 300 and m["height"] > 100, m
    counted = {(m["figure"], m["part"]): len(m["got"]) for m in marks}
    assert counted["latency", "box"] == 6 and counted["bottleneck", "invoke"] == 6  # 2 real + 4 constructed
    assert counted["tradeoff", "accuracy"] == 2  # the two real benchmarks with an evaluation pass
    assert counted["efficiency", "inference"] == counted["efficiency", "ips_per_usd"] == 6
    assert counted["layers-1", "time"] == 10  # --top's default
    assert counted["layers-2", "time"] == 3  # XNNPACK on: two partitions and the op it did not take
    assert shot.stat().st_size > 50_000
    if os.environ.get("HARNESS_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["HARNESS_REPORT_SCREENSHOT"])


def test_a_page_that_loads_from_elsewhere_is_caught(report_page: Written, tmp_path: Path) -> None:
    text = report_page.html.read_text(encoding="utf-8")
    remote = '<img src="http://127.0.0.1:9/pixel.png" alt="">'  # loopback: nothing is sent off the machine
    with_csp = tmp_path / "with-csp.html"
    with_csp.write_text(text.replace("<h1>", remote + "<h1>", 1), encoding="utf-8")
    without_csp = tmp_path / "without-csp.html"
    without_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", with_csp.read_text()),
                           encoding="utf-8")
    with Chromium() as c:
        blocked = c.open(with_csp)
    with Chromium() as c:
        sent = c.open(without_csp)
    assert any("Content Security Policy" in e for e in blocked.errors)  # the console says so
    assert "http://127.0.0.1:9/pixel.png" in sent.requests  # and the network log sees a load that is let through


def test_a_figure_missing_a_mark_is_caught(report_page: Written, tmp_path: Path) -> None:
    text = report_page.html.read_text(encoding="utf-8")
    mark = re.search(r'<g id="bottleneck-mark--b1--invoke"[^>]*>.*?</g>', text, re.S)
    assert mark is not None
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace(mark.group(0), "", 1), encoding="utf-8")
    with Chromium() as c:
        c.open(broken)
        marks = _marks(c)
    (m,) = [m for m in marks if (m["figure"], m["part"]) == ("bottleneck", "invoke")]
    assert "b1" in m["want"] and "b1" not in m["got"]


def test_stream_figures_carry_every_frame_and_trial(stream_runs: StreamRuns, stream_page: Path,
                                                   tmp_path: Path) -> None:
    """Each stream's timeline holds one point per frame of each window of the table beside it, and one
    cross per miss; the rate figure a median and a p99 per trial; the soak's thermal figure a point
    per window; the page loads offline with no console error."""
    with Chromium() as c:
        load = c.open(stream_page)
        assert load.requests == [stream_page.resolve().as_uri()] and load.errors == []
        marks = _marks(c)
        shot = c.screenshot(tmp_path / "streams.png")
    by = {(m["figure"], m["part"]): m for m in marks}
    assert {"timeline-1", "timeline-2", "timeline-3", "rate-2", "thermal-3", "comparison-streams"} <= {
        m["figure"] for m in marks}
    for m in marks:
        assert m["got"] == m["want"], m
        assert m["drawn"] and m["width"] > 300 and m["height"] > 100, m
        if m["expected"] is not None:
            assert m["points"] == m["expected"], m  # every frame (every miss) of each window, no more
    assert sum(by["timeline-1", "missed"]["expected"]) > 0  # the Poisson stream queued: misses are marked
    assert len(by["rate-2", "median"]["got"]) >= 3  # a search tries several rates
    assert len(by["thermal-3", "temp"]["got"]) == len(by["thermal-3", "clock"]["got"]) >= 2
    if os.environ.get("HARNESS_REPORT_SCREENSHOT"):
        shutil.copy(shot, Path(os.environ["HARNESS_REPORT_SCREENSHOT"]).with_suffix(".streams.png"))


def test_a_timeline_missing_a_frame_is_caught(stream_page: Path, tmp_path: Path) -> None:
    text = stream_page.read_text(encoding="utf-8")
    mark = re.search(r'<g id="timeline-1-mark--s1-w0--frames"[^>]*>.*?(<use [^>]*/>)', text, re.S)
    assert mark is not None
    broken = tmp_path / "broken.html"
    broken.write_text(text[:mark.start(1)] + text[mark.end(1):], encoding="utf-8")
    with Chromium() as c:
        c.open(broken)
        marks = _marks(c)
    (m,) = [m for m in marks if (m["figure"], m["part"]) == ("timeline-1", "frames")]
    assert m["points"][0] == m["expected"][0] - 1  # the count sees the one point taken away
