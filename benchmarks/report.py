"""How long `harness report` takes on a big run: one stored run of 100 benchmarks (2 targets x 50
models, 10 blocks of 1,000 Invoke samples a benchmark: 10^4 samples per mode), written with the
real result store (tests/comparekit.py), with both targets' price and power declared, then

  report   `harness report RUN -o report.html --csv DIR`   (every section, 100 rows a figure)

as a user runs it (a fresh process, its start-up included), the best of --repeat; and where the
time goes, in this process: loading the run (reading the JSON lines, summarizing each benchmark),
each section (its tables and its matplotlib figure), and writing the page. Goal (issue 11):
seconds, not minutes.

    python benchmarks/report.py [--benchmarks 100] [--samples 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.render.report import SECTIONS, Options, html_page  # noqa: E402
from harness.render.report_model import load  # noqa: E402
from tests.comparekit import Bench, best_cli_time, steady, write_run  # noqa: E402

FACTS = {"local": {"kind": "local", "price_usd": 600.0, "power_w": 65.0, "idle_power_w": 20.0},
         "mcu": {"kind": "serial", "price_usd": 8.0, "power_w": 0.25, "idle_power_w": None}}


def build(results: Path, benchmarks: int, samples: int) -> Path:
    per_block = samples // 10
    benches = [Bench(target=target, model=f"model{m:02d}.tflite", model_bytes=f"m{m}".encode(),
                     sampler=steady(60_000 * (1 + m / 50) * (3 if target == "mcu" else 1), n=per_block),
                     board=("mcu-emulator", "host CPU") if target == "mcu" else (None, "AMD EPYC"))
               for target in ("local", "mcu") for m in range(benchmarks // 2)]
    return write_run(results, benches, run_id="big", seed=1, targets=FACTS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", type=int, default=100)
    ap.add_argument("--samples", type=int, default=10_000, help="Invoke samples per benchmark (per mode)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        t0 = time.perf_counter()
        run = build(results, args.benchmarks, args.samples)
        size = sum(f.stat().st_size for f in run.rglob("*.jsonl")) / 2**20
        print(f"wrote a run of {args.benchmarks} benchmarks, {args.samples} samples each ({size:.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        material = load([run])
        parts = [f"loading {time.perf_counter() - t0:.2f} s"]
        sections = []
        for builder in SECTIONS:
            t0 = time.perf_counter()
            section = builder(material, Options())
            if section is not None:
                sections.append(section)
                parts.append(f"{section.id} {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        page = html_page(material, sections)
        parts.append(f"page {time.perf_counter() - t0:.2f} s ({len(page.encode()) / 2**20:.1f} MiB)")
        print("in process: " + ", ".join(parts))
        out = Path(tmp) / "report.html"
        wall = best_cli_time(["report", "big", "--results", str(results), "-o", str(out), "--csv",
                              str(out.parent / "csv")], args.repeat)
        print(f"harness report: {wall:.2f} s (best of {args.repeat}, process "
              "start-up included)")


if __name__ == "__main__":
    main()
