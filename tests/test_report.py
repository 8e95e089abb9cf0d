"""`harness report` on stored runs (tests/reportkit.py: a real local run with a variant and its
evaluation pass, a real profile run, and a constructed two-board run whose samples are exact):
every section and file is written, the figures are the runs' arithmetic, the page is
self-contained and reproducible, and failures are one clear line. The page in a real browser:
tests/test_report_browser.py."""

from __future__ import annotations

import csv as csvlib
import html as htmllib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.render import csv, html, markdown, plots
from harness.render.analysis import profile_lines, profile_row_text
from harness.render.energy import millijoules
from harness.render.grid import Column, Grid, Row, cell, name
from harness.render.table import duration, rate
from harness.results.layers import LayerProfile, stored_profiles
from tests.agentrun import ROOT
from tests.reportkit import FACTS, INVOKE_NS, OVERHEAD_NS, Runs, Tables, Written, report_page, report_runs

__all__ = ["report_page", "report_runs"]  # session fixtures, shared with tests/test_report_browser.py

SECTIONS = ("runs", "results", "latency", "bottleneck", "layers", "variants", "efficiency", "comparison")


@pytest.fixture(scope="module")
def page(report_page: Written) -> Tables:
    return Tables(report_page.html.read_text(encoding="utf-8"))


def _by_target_model(page: Tables, table: str) -> dict[tuple[str, str], dict[str, str]]:
    return {(cells["target"].rstrip("*"), cells["model"]): cells for _, cells in page.rows(table)
            if "target" in cells}


def test_every_section_and_file_is_written(report_page: Written, page: Tables) -> None:
    text = report_page.html.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in text
    md = report_page.md.read_text(encoding="utf-8")
    assert md.startswith("# harness report") and md.count("\n## ") == len(SECTIONS)
    files = sorted(report_page.csv.iterdir())
    assert len(files) == len(page.tables)
    # each CSV is its table: the same rows, the same cells, in order
    for file, (table_id, _) in zip(files, page.tables.items(), strict=True):
        assert file.name.endswith(table_id.removeprefix("t-") + ".csv")
        rows = list(csvlib.reader(io.StringIO(file.read_text(encoding="utf-8"))))
        body = page.rows(table_id)
        assert len(rows) == len(body) + 1
        for (key, cells), got in zip(body, rows[1:], strict=True):
            want = ([key or ""] if rows[0][0] == "row_key" else []) + list(cells.values())
            assert got == want


def test_the_figures_are_the_runs_arithmetic(page: Tables) -> None:
    latency = _by_target_model(page, "t-latency")
    bottleneck = _by_target_model(page, "t-bottleneck")
    energy = _by_target_model(page, "t-efficiency")
    for (target, model), ns in INVOKE_NS.items():
        assert latency[target, model]["median"] == duration(ns)
        assert latency[target, model]["p1"] == latency[target, model]["p99"] == duration(ns)  # no spread
        assert bottleneck[target, model]["with"] == duration(ns + OVERHEAD_NS)
        assert bottleneck[target, model]["without"] == duration(OVERHEAD_NS)
        share = float(bottleneck[target, model]["share"].split(" %")[0])
        assert share == pytest.approx(100 * ns / (ns + OVERHEAD_NS), abs=0.01)
        facts = FACTS[target]
        active = facts["power_w"] - (facts["idle_power_w"] or 0)
        assert energy[target, model]["inference"] == f"{active * ns / 1e6:.3g}"
        assert energy[target, model]["loop"] == f"{active * (ns + OVERHEAD_NS) / 1e6:.3g}"
        # loops per second with Invoke over the price, as the terminal's and --json's ips_per_usd
        assert energy[target, model]["ips_per_usd"] == rate(1e9 / (ns + OVERHEAD_NS) / facts["price_usd"])
        assert energy[target, model]["source"] == "declared"
    # within the constructed run, by board: the MCU is slower by exactly the ratio of the samples
    compared = {cells["on"].split(",")[0]: cells for _, cells in page.rows("t-comparison")}
    for model in ("kws.tflite", "net.tflite"):
        ratio = INVOKE_NS["mcu", model] / INVOKE_NS["rpi", model]
        assert compared[model]["ratio"].startswith(f"{ratio:#.3g}".rstrip("."))
        assert compared[model]["verdict"].endswith("slower")


def test_the_energy_csv_is_what_json_says(report_runs: Runs, report_page: Written,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The report's energy table, as its CSV file, holds `harness show --json`'s figures under the
    names the terminal's energy table gives them (harness.render.energy), for every benchmark."""
    shown = []
    for run in (report_runs.benchmark, report_runs.boards):
        capsys.readouterr()
        assert main(["show", run, "--results", str(report_runs.results), "--json"]) == 0
        shown += [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (file,) = report_page.csv.glob("*-efficiency.csv")
    rows = list(csvlib.DictReader(io.StringIO(file.read_text(encoding="utf-8"))))
    assert rows[0].keys() >= {"ips_per_usd", "inference", "loop", "source", "watts"}
    assert len(rows) == len(shown) == 6
    for row, o in zip(rows, shown, strict=True):
        assert (row["target"].rstrip("*"), row["model"]) == (o["target"], o["model"])
        assert row["ips_per_usd"] == rate(o["cost"]["ips_per_usd"])
        assert o["cost"]["ips_per_usd"] == pytest.approx(o["throughput_ips"] / o["cost"]["price_usd"])
        assert row["inference"] == millijoules(o["energy"]["per_inference_mj"])
        assert row["loop"] == millijoules(o["energy"]["per_loop_mj"])
        assert row["source"] == o["energy"]["source"]


def test_variants_and_layers_come_from_the_real_runs(report_runs: Runs, page: Tables,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["show", report_runs.benchmark, "--results", str(report_runs.results), "--json"]) == 0
    shown = {o["model"]: o for o in map(json.loads, capsys.readouterr().out.splitlines())}
    assert not any(t.startswith("t-variants-") and t != "t-variants-1" for t in page.tables)  # one board
    variants = {cells["variant"]: cells for _, cells in page.rows("t-variants-1")}
    assert set(variants) == {"float32 (base)", "int8"}  # the constructed run has none
    models = {"float32 (base)": "digits_cnn.tflite", "int8": "digits_cnn.int8.tflite"}
    for variant, cells in variants.items():
        assert cells["model"] == "digits_cnn"
        assert cells["accuracy"] == f"{100 * shown[models[variant]]['accuracy']['top1']:.1f} %"
    assert variants["float32 (base)"]["speedup"] == "base"
    assert variants["int8"]["scheme"] == "int8" and "×" in variants["int8"]["speedup"]
    layers = page.rows("t-layers-1")
    assert len(layers) == 10 and all(key and key.startswith("p1-op") for key, _ in layers)  # --top's default


def _profile(report_runs: Runs, run: str) -> LayerProfile:
    (record,) = stored_profiles(report_runs.results / run)
    assert record.profile is not None
    return record.profile


def test_layers_are_the_rows_harness_show_prints(report_runs: Runs, tmp_path: Path) -> None:
    """Every row of both real profiles (--top beyond their size), cell for cell what the terminal's
    profile table shows (harness.render.analysis), below-resolution rows as "< x", never negative;
    the sum check with its SE and the stop reason under each table."""
    out = tmp_path / "layers.html"
    assert main(["report", report_runs.profile, report_runs.fused, "--results", str(report_runs.results),
                 "--top", "100", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    page = Tables(text)
    for n, run in enumerate((report_runs.profile, report_runs.fused), 1):
        p = _profile(report_runs, run)
        rows = page.rows(f"t-layers-{n}")
        assert len(rows) == len(p.groups)
        for (key, cells), row in zip(rows, p.heaviest_rows(100), strict=True):
            t = profile_row_text(row)
            assert key == f"p{n}-op{row.first}" + (f"-{row.last}" if row.last > row.first else "")
            assert [cells[c] for c in ("op", "type", "time", "time_share", "flops_share")] == [
                t.index, t.label, t.time, t.share, t.flops_share]
            assert not cells["time"].startswith("-") and cells["time_share"] != "-"
            if not row.resolved:
                assert cells["time"].startswith("< ") or cells["time"] == "~0"
        for line in profile_lines(p):
            assert htmllib.escape(line) in text
    adaptive, fused = _profile(report_runs, report_runs.profile), _profile(report_runs, report_runs.fused)
    assert adaptive.stop is not None and adaptive.stop.by in ("stable", "max_time")
    assert f"± {100 * adaptive.sum_check_se:.1f} %" in text and "stopped: " in text
    # the RESHAPE of deep_cnn moves no data: its true time is ~0, so its interval reaches 0
    assert any(not row.resolved for row in adaptive.groups)
    assert any(row.fused for row in fused.groups)
    assert any("fused by XNNPACK" in cells["type"] for _, cells in page.rows("t-layers-2"))


def test_the_page_loads_nothing_and_is_reproducible(report_runs: Runs, report_page: Written, page: Tables,
                                                    tmp_path: Path) -> None:
    text = report_page.html.read_text(encoding="utf-8")
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert all(link.startswith(("#", "data:")) for link in page.links)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert len(page.ids) == len(set(page.ids))  # inline figures share no id
    again = tmp_path / "again.html"
    assert main(["report", *report_runs.all, "--results", str(report_runs.results), "-o", str(again)]) == 0
    assert again.read_bytes() == report_page.html.read_bytes()
    assert again.with_suffix(".md").read_bytes() == report_page.md.read_bytes()


def test_without_matplotlib_one_line_names_the_install_command(report_runs: Runs, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from harness.cli import main; "
            f"sys.exit(main(['report', {report_runs.boards!r}, '--results', {str(report_runs.results)!r}, "
            f"'-o', {str(tmp_path / 'r.html')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0
    assert "matplotlib" in p.stderr and "pip install 'harness[report]'" in p.stderr
    assert not (tmp_path / "r.html").exists()


def test_bad_input_is_one_clear_line(report_runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "no-such-run", "--results", str(report_runs.results), "-o", str(tmp_path / "r.html")]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", report_runs.boards, "--results", str(report_runs.results), "-o", str(tmp_path / "r.txt")])
    assert exc.value.code == 2
    capsys.readouterr()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["report", report_runs.boards, "--results", str(report_runs.results),
                 "-o", str(tmp_path / "r.html"), "--csv", str(blocked)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--csv {blocked}" in line and "not a directory" in line


# --- the renderers, on a hostile table --------------------------------------------------------

HOSTILE = Grid((Column("model", "Model <b>", "left"), Column("x", "X")),
               (Row((name("<script>alert(1)</script>|*_.tflite"), cell("=HYPERLINK(1)")), "red", "b1"),
                Row((name("plain.tflite"), cell("-3 %")))), "a <title>", ("legend & more",))


def test_html_escapes_every_text() -> None:
    out = html.render(HOSTILE, "t-x")
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert '<tr data-key="b1" class="s-red">' in out and "<caption>a &lt;title&gt;</caption>" in out
    assert "legend &amp; more" in out


def test_markdown_escapes_what_would_be_markup() -> None:
    out = markdown.render(HOSTILE)
    assert r"\<script\>alert(1)\</script\>\|\*\_.tflite" in out
    assert out.splitlines()[3] == "|:---|---:|"


def test_csv_has_keys_and_defuses_formulas() -> None:
    rows = list(csvlib.reader(io.StringIO(csv.render(HOSTILE))))
    assert rows[0] == ["row_key", "model", "x"]
    assert rows[1] == ["b1", "<script>alert(1)</script>|*_.tflite", "'=HYPERLINK(1)"]
    assert rows[2] == ["", "plain.tflite", "-3 %"]  # a negative figure is not a formula


def test_a_figure_is_deterministic_and_marks_each_row() -> None:
    rows = [plots.Distribution(f"b{i}", f"$x{i}$ board", [1000.0 * i + j for j in range(100)], [1000.0 * i, 1001.0 * i])
            for i in range(1, 4)]
    svg = plots.latency(rows)
    assert plots.latency(rows) == svg
    inlined = plots.inline(svg, "latency")
    assert inlined.startswith("<svg ") and "<?xml" not in inlined
    for part in ("box", "whiskers", "median", "blocks"):
        marks = [line for line in inlined.split("<g ") if f'data-part="{part}"' in line]
        assert [m.split('data-key="')[1].split('"')[0] for m in marks] == ["b1", "b2", "b3"]
    assert 'id="figure_1"' not in inlined and 'id="latency-figure_1"' in inlined
    assert "$x1$ board" in inlined  # a dollar sign is text, not mathtext
