"""How long does `harness quantize` take per kind? On each shipped model, calibrated on its whole
*_test.npz (as a user passes it), time each kind's work as the command does it, in-process:
analysis, ai-edge-quantizer (calibration included for int8 and mixed), export, the check with
harness analyze, and the recipe file. Kinds are interleaved within each round so that drift on a
shared machine hits them alike; a figure is the median wall time over rounds (min–max beside it).

Then the whole command as a user runs it (a fresh `python -m harness quantize` process making every
kind, with mixed-top3: interpreter start, imports and all), median over rounds, and the part of it
that is only starting Python and importing harness and ai-edge-quantizer.

    python benchmarks/quantize.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.models.files import example_models  # noqa: E402
from harness.models.variants import quantize, read_calibration  # noqa: E402

# (kind, options): every kind, and mixed both ways round
CASES = [("float16", {}), ("dynamic_int8", {}), ("weight_only_int8", {}), ("int8", {}),
         ("mixed", {"top": 3}), ("mixed", {"top": 3, "invert": True})]


def calibration_of(model: Path) -> Path:
    stem = model.stem.replace("_cnn", "") if model.stem == "digits_cnn" else model.stem
    return model.with_name(f"{stem}_test.npz")


def label(kind: str, options: dict) -> str:
    return {(): kind, (3, False): "mixed-top3", (3, True): "mixed-except-top3"}.get(
        (options["top"], options.get("invert", False)) if options else (), kind)


def in_process(models: list[Path], rounds: int, work: Path) -> dict[tuple[str, str], list[float]]:
    times: dict[tuple[str, str], list[float]] = {}
    calibrations = {m: read_calibration(calibration_of(m), m) for m in models}
    quantize(models[0], "float16", work)  # the quantizer's imports, once, before any clock runs
    for _ in range(rounds):
        for model in models:
            for kind, options in CASES:
                t0 = time.perf_counter()
                quantize(model, kind, work, calibration=calibrations[model], **options)  # type: ignore[arg-type]
                times.setdefault((model.name, label(kind, options)), []).append(time.perf_counter() - t0)
    return times


def whole_command(model: Path, rounds: int, work: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "harness", "quantize", str(model), "--calibration", str(calibration_of(model)),
           "--mixed-top", "3", "--out", str(work), "--json"]
    walls = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return walls


def imports(rounds: int) -> list[float]:
    """A fresh process that only imports what the command loads: its fixed cost."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import harness.cli, harness.models.variants, ai_edge_quantizer.quantizer, ai_edge_quantizer.recipe"
    walls = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    models = example_models()
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        work = Path(tmp)
        times = in_process(models, args.rounds, work)
        print(f"per kind, in-process, median of {args.rounds} rounds (min–max), seconds")
        names = [label(k, o) for k, o in CASES]
        print(f"{'model':38}" + "".join(f"{n:>19}" for n in names))
        for model in models:
            samples = read_calibration(calibration_of(model), model).count
            cells = [times[model.name, n] for n in names]
            print(f"{model.name + f' ({samples} cal.)':38}" + "".join(
                f"{statistics.median(c):>8.3f} ({min(c):.2f}–{max(c):.2f})" for c in cells))
        print(f"\nthe whole command (every kind + mixed-top3, a fresh process), median of {args.rounds}")
        for model in models:
            walls = whole_command(model, args.rounds, work)
            print(f"{model.name:38}{statistics.median(walls):8.2f} s ({min(walls):.2f}–{max(walls):.2f})")
        walls = imports(args.rounds)
        print(f"{'of which start-up and imports':38}{statistics.median(walls):8.2f} s "
              f"({min(walls):.2f}–{max(walls):.2f})")


if __name__ == "__main__":
    main()
