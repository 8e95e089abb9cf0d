"""What does fidelity cost? The extra wall time a variants run spends on its evaluation pass.

The digits classifier and two variants made here (int8 and mixed-top3) run as `harness run
--variants` runs them (the matrix of harness.scenarios.variants, the runner, the default plan:
1 s per mode, 10 blocks), once without an evaluation pass and once with it, on the same jobs:
with the whole labelled test set (`--eval digits_test.npz`, 450 samples) and with the timed
loop's seeded random inputs (16 samples, what a variants run uses without --eval or --inputs).
In-process, one target at a time, the three configurations interleaved within each round so
that drift on a shared machine hits them alike. Two figures, medians over rounds: the wall time
of the whole run (preparing the eval samples on the host included), and, timed around each part
of each benchmark on the host, its timed part (the processes) and its evaluation pass (starting
the pass, every sample through the board, the outputs back): the pass's own cost, which the
difference of two whole runs on a shared machine measures only roughly.

    python benchmarks/variants.py [--rounds 5] [--target local --target mcu-sim]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from harness import config  # noqa: E402
from harness.lab.drivers.base import Driver, Emit  # noqa: E402
from harness.models.files import example_models  # noqa: E402
from harness.models.variants import quantize  # noqa: E402
from harness.plan import EvalPlan, Job, Plan  # noqa: E402
from harness.results.store import RunStore  # noqa: E402
from harness.results.variants import VariantSet  # noqa: E402
from harness.scenarios.benchmark import (  # noqa: E402
    BenchmarkScenario,
    plan_jobs,
    prepare_eval,
    run_eval,
    run_processes,
)
from harness.scenarios.runner import Quiet, Runner  # noqa: E402
from harness.scenarios.variants import variant_matrix  # noqa: E402

DIGITS = next(m for m in example_models() if m.name == "digits_cnn.tflite")
TEST = DIGITS.with_name("digits_test.npz")
CONFIGS = {"no eval pass": None, "--eval (450 samples)": EvalPlan("file", TEST), "random (16 samples)": EvalPlan("random")}


class TimedScenario(BenchmarkScenario):
    """The benchmark scenario, with the host's wall time of each part of each job."""

    def __init__(self, variants: VariantSet) -> None:
        super().__init__(variants)
        self.parts: list[tuple[float, float]] = []  # (timed part, eval pass) per job, seconds

    def start(self, driver: Driver, job: Job, emit: Emit, cancel: threading.Event) -> None:
        t0 = time.perf_counter()
        run_processes(driver, job, emit, cancel)
        t1 = time.perf_counter()
        if job.eval is not None:
            run_eval(driver, job, emit, cancel)
        self.parts.append((t1 - t0, time.perf_counter() - t1))


def one_run(target: config.Target, work: Path, folder: Path,
            evaluation: EvalPlan | None) -> tuple[float, list[tuple[float, float]]]:
    """Wall seconds of one variants run of ``folder`` on ``target``, and each job's parts."""
    t0 = time.perf_counter()
    matrix = variant_matrix([], folder)
    jobs, refused = plan_jobs([target], list(matrix.models), None, Plan(eval=evaluation))
    store = RunStore(work, kind="benchmark")
    if evaluation is not None:
        jobs, unfit = prepare_eval(jobs, store.path / "eval", matrix.domain)
        refused = [*refused, *unfit]
    store.start({})
    scenario = TimedScenario(matrix.variants)
    outcomes = Runner(store, [target], scenario, Quiet()).run(jobs, refused)
    if any(o.error is not None for o in outcomes):
        raise SystemExit(f"{target.name}: a benchmark failed: {next(o.error for o in outcomes if o.error)}")
    return time.perf_counter() - t0, scenario.parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", action="append", help="targets of the default targets.toml (default local, mcu-sim)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    targets, source = config.load_targets(ROOT / "targets.toml")
    selected = config.select(targets, args.target or ["local", "mcu-sim"], source)
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        folder, work = Path(tmp) / "variants", Path(tmp) / "results"
        calibration = Path(tmp) / "calibration.npz"
        import numpy as np

        np.savez(calibration, x=np.load(TEST)["x"][:48])
        quantize(DIGITS, "int8", folder, calibration=calibration)
        quantize(DIGITS, "mixed", folder, calibration=calibration, top=3)
        print(f"digits_cnn, int8 and mixed-top3 (3 benchmarks a run): a variants run, default plan, "
              f"median of {args.rounds} rounds, seconds")
        print(f"{'target':10}{'configuration':24}{'whole run':>16}{'vs none':>9}{'timed part':>12}"
              f"{'eval pass':>11}{'pass/timed':>12}")
        for target in selected:
            walls: dict[str, list[float]] = {name: [] for name in CONFIGS}
            parts: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
            for _ in range(args.rounds):
                for name, evaluation in CONFIGS.items():
                    wall, job_parts = one_run(target, work, folder, evaluation)
                    walls[name].append(wall)
                    parts[name] += job_parts
            plain = statistics.median(walls["no eval pass"])
            for name, values in walls.items():
                median = statistics.median(values)
                timed = statistics.median(p[0] for p in parts[name])
                passed = statistics.median(p[1] for p in parts[name])
                print(f"{target.name:10}{name:24}{median:6.2f} ({min(values):.1f}–{max(values):.1f})"
                      f"{median / plain:9.3f}{timed:12.2f}{passed:11.3f}{passed / timed:12.3f}")


if __name__ == "__main__":
    main()
