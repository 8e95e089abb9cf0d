"""How long `harness compare` takes on big runs: two stored runs of 100 benchmarks each (2 targets x
50 models, 10 blocks of 1,000 Invoke samples a benchmark: 10^4 samples per mode), written with
the real result store (tests/comparekit.py), then

  runs     `harness compare A B`                    (100 pairs)
  within   `harness compare --within A --by board`  (50 pairs)
  json     `harness compare A B --json`

each as a user runs it (a fresh process, its start-up included), the best of --repeat; and where
the time goes, in this process: loading the runs (reading and parsing the JSON lines) against
comparing the pairs (units, test, bootstrap interval). Goal (issue 11): seconds, not minutes.

    python benchmarks/compare.py [--benchmarks 100] [--samples 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.results import pairing  # noqa: E402
from harness.results.compare import compare, run_sides  # noqa: E402
from tests.comparekit import Bench, best_cli_time, steady, write_run  # noqa: E402


def build(results: Path, benchmarks: int, samples: int) -> tuple[str, str]:
    per_block = samples // 10
    benches = [Bench(target=target, model=f"model{m:02d}.tflite", model_bytes=f"m{m}".encode(),
                     sampler=steady(60_000 * (1 + m / 50) * (3 if target == "mcu" else 1), n=per_block),
                     board=("mcu-emulator", "host CPU") if target == "mcu" else (None, "AMD EPYC"))
               for target in ("local", "mcu") for m in range(benchmarks // 2)]
    a = write_run(results, benches, run_id="a", seed=1)
    b = write_run(results, benches, run_id="b", seed=2)
    return a.name, b.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", type=int, default=100)
    ap.add_argument("--samples", type=int, default=10_000, help="Invoke samples per benchmark (per mode)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        t0 = time.perf_counter()
        a, b = build(results, args.benchmarks, args.samples)
        size = sum(f.stat().st_size for f in results.rglob("*.jsonl")) / 2**20
        print(f"wrote 2 runs of {args.benchmarks} benchmarks, {args.samples} samples each "
              f"({size:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        sides_a, sides_b = run_sides(results / a), run_sides(results / b)
        load = time.perf_counter() - t0
        pairs, _ = pairing.across_runs(sides_a, [sides_b])
        t0 = time.perf_counter()
        comparisons = [compare(p) for p in pairs]
        work = time.perf_counter() - t0
        print(f"in process: loading both runs {load:.2f} s, comparing {len(comparisons)} pairs {work:.2f} s "
              f"({1000 * work / len(comparisons):.1f} ms a pair)")
        for name, cli in (("runs", [a, b]), ("within", ["--within", a, "--by", "board"]), ("json", [a, b, "--json"])):
            wall = best_cli_time(["compare", "--results", str(results), *cli], args.repeat, ok=(0, 1))
            print(f"harness compare ({name}): {wall:.2f} s "
                  f"(best of {args.repeat}, process start-up included)")


if __name__ == "__main__":
    main()
