"""The stored runs the report's tests read, made once per test session:

- a real benchmark run on ``local`` of the digits classifier and its int8 variant (made by
  `harness quantize`, so its recipe file names the base), with the evaluation pass (``--eval``),
  on a target that declares its price and power;
- two real profile runs on ``local`` (`harness analyze --profile`) of a millisecond-scale model
  with tiny ops among big ones (tests/modelkit.py deep_cnn, as tests/test_profile_e2e.py): one
  adaptive with XNNPACK off (its stop reason and the sum check's SE; its tiny ops, a RESHAPE among
  them, come out below resolution), one of fixed --rounds with XNNPACK on (partitions as rows);
- a run of two boards and two models written with the real result store (tests/comparekit.py),
  whose samples are known exactly: every Invoke takes INVOKE_NS[target, model], every loop
  without Invoke OVERHEAD_NS, so the report's figures can be checked against arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.cli import main
from tests.agentrun import DIGITS, QUICK
from tests.comparekit import Bench, steady, write_run
from tests.modelkit import deep_cnn

DIGITS_TEST = DIGITS.with_name("digits_test.npz")
INVOKE_NS = {("rpi", "kws.tflite"): 200_000, ("rpi", "net.tflite"): 900_000,
             ("mcu", "kws.tflite"): 4_000_000, ("mcu", "net.tflite"): 30_000_000}
OVERHEAD_NS = 3_000
FACTS = {"rpi": {"kind": "ssh", "description": "a Pi-class board", "ram_bytes": 4 << 30, "flash_bytes": None,
                 "price_usd": 60.0, "power_w": 6.0, "idle_power_w": 2.5},
         "mcu": {"kind": "serial", "description": "an MCU-class board", "ram_bytes": 512 << 10,
                 "flash_bytes": 2 << 20, "price_usd": 8.0, "power_w": 0.25, "idle_power_w": None}}
PROFILE_BOUND_S = 6  # the adaptive profile's time bound (it may stop earlier, stable)
LOCAL_FACTS = 'price_usd = 600\npower_w = 65\nidle_power_w = 20\n'


@dataclass(frozen=True)
class Runs:
    results: Path
    benchmark: str  # the real local run (base and int8 variant, with --eval)
    profile: str  # the real adaptive profile run, XNNPACK off
    fused: str  # the real profile run with XNNPACK on
    boards: str  # the constructed two-board run

    @property
    def all(self) -> list[str]:
        return [self.benchmark, self.profile, self.fused, self.boards]


def constructed(results: Path) -> Path:
    """Two boards x two models, every sample exact (no spread): see the module docstring."""
    benches = [Bench(target=t, model=m, model_bytes=m.encode(), sampler=steady(ns, spread=0, block_spread=0, n=50),
                     board=("Raspberry Pi 4 Model B", "Cortex-A72") if t == "rpi" else ("nRF52840", "Cortex-M4F"),
                     runtime=("tflite_runtime", "2.14.0") if t == "rpi" else ("tflite-micro", "1.0"),
                     xnnpack=t == "rpi", overhead_ns=OVERHEAD_NS)
               for (t, m), ns in INVOKE_NS.items()]
    return write_run(results, benches, run_id="boards", targets=FACTS)


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    tmp = tmp_path_factory.mktemp("report-runs")
    results = tmp / "results"
    targets = tmp / "targets.toml"
    targets.write_text(f'[targets.local]\nkind = "local"\n{LOCAL_FACTS}')
    variants = tmp / "variants"
    assert main(["quantize", str(DIGITS), "--kinds", "int8", "--calibration", str(DIGITS_TEST),
                 "--out", str(variants)]) == 0
    int8 = variants / "digits_cnn.int8.tflite"
    assert main(["run", "--targets", str(targets), "--model", str(DIGITS), "--model", str(int8),
                 "--eval", str(DIGITS_TEST), *QUICK, "--results", str(results)]) == 0
    benchmark = _latest(results, "benchmark")
    deep = deep_cnn(tmp / "deep.tflite", blocks=8, lrn_after=3)
    assert main(["analyze", str(deep), "--targets", str(targets), "--profile", "local", "--max-time",
                 str(PROFILE_BOUND_S), "--results", str(results)]) == 0
    profile = _latest(results, "profile")
    assert main(["analyze", str(deep), "--targets", str(targets), "--profile", "local", "--xnnpack", "on",
                 "--rounds", "3", "--results", str(results)]) == 0
    return Runs(results, benchmark, profile, _latest(results, "profile", (profile,)), constructed(results).name)


def _latest(results: Path, kind: str, seen: tuple[str, ...] = ()) -> str:
    runs = [p.parent for p in results.glob("*/run.json")
            if json.loads(p.read_text()).get("kind") == kind and p.parent.name not in seen]
    return max(runs, key=lambda p: p.stat().st_mtime).name


@dataclass(frozen=True)
class Written:
    html: Path
    md: Path
    csv: Path


@pytest.fixture(scope="session")
def report_page(report_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Written:
    """`harness report` of all three runs, with --csv."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", *report_runs.all, "--results", str(report_runs.results), "-o", str(out),
                 "--csv", str(out.parent / "csv")]) == 0
    return Written(out, out.with_suffix(".md"), out.parent / "csv")


class Tables(HTMLParser):
    """The tables of a page: {table id: [(row key, {column key: cell text})]}, the ids of every
    element, and each element's src/href attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str | None, dict[str, str]]]] = {}
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._col: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.ids += [a["id"] or ""] if "id" in a else []
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append((a.get("data-key"), {}))
        elif tag == "td" and self._table is not None:
            self._col = a.get("data-col")
            self.tables[self._table][-1][1][self._col or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td":
            self._col = None

    def handle_data(self, data: str) -> None:
        if self._table is not None and self._col is not None:
            self.tables[self._table][-1][1][self._col] += data

    def rows(self, table: str) -> list[tuple[str | None, dict[str, str]]]:
        """The body rows (the header row has no cells)."""
        return [(k, cells) for k, cells in self.tables[table] if cells]
