"""Do separate invocations agree? Five (``--runs``) separate invocations per model of each of

  default   `harness run --target T --model M` with today's defaults (1 s per mode, one process)
  stable    `harness run --target T --model M --until-stable PCT` (processes until the 95 %
            interval of the median Invoke is within ±PCT %, at most --max-duration 60 s)
  litert    `litert-benchmark --model M` with its defaults (50 runs after 5 warm-ups, CPU, 1
            thread; it reports its median rounded to 0.01 ms), Linux targets only

run in interleaved rounds (default, stable, litert, default, ...) so that drift on a shared machine
hits all three alike (one after the other, never side by side); and print for each the medians of the invocations, their spread (half the
range over the mid-range: "±6.5 %" for medians from 90.7 to 103.4 µs) and the mean wall time of
one invocation (the host's clock around the whole command, start-up included). For `stable` it
adds how many processes ran, why they stopped, the mean half-width of the intervals, and how many
of the intervals hold the mean of all the invocations' medians (a check that they tell the truth).

Goal (issue 9): the `stable` medians agree within ±2 %, in less wall time per invocation than
`default` needs for its ±6.5 %.

    python benchmarks/stability.py [--runs 5] [--pct 1] [--target local] [--model PATH]...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.models.files import example_models  # noqa: E402


@dataclass
class Tool:
    name: str
    medians: list[float] = field(default_factory=list)  # ns
    walls: list[float] = field(default_factory=list)  # s
    objs: list[dict[str, Any]] = field(default_factory=list)  # harness's JSON objects


def harness_run(target: str, model: Path, extra: list[str], results: Path) -> tuple[dict[str, Any], float]:
    # A private TMPDIR gives these runs their own host-CPU lock (harness.scenarios.hostcpu): the wall
    # time is then this command's, not a wait behind other users' harness runs (their load still
    # reaches it).
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(results))
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "harness", "run", "--targets", str(ROOT / "targets.toml"),
                        "--target", target, "--model", str(model), *extra, "--results", str(results), "--json"],
                       capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - t0
    objs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or len(objs) != 1:
        raise SystemExit(f"harness run failed ({p.returncode}): {p.stderr[-2000:]}")
    return objs[0], wall


def litert(model: Path) -> tuple[float, float] | None:
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        t0 = time.monotonic()
        subprocess.run([exe, "--model", str(model), "--result_json", str(out)], capture_output=True,
                       text=True, check=True)
        wall = time.monotonic() - t0
        return json.loads(out.read_text())["latency"]["median_ms"] * 1e6, wall


def spread(values: list[float]) -> float:
    """Half the range over the mid-range, in %."""
    lo, hi = min(values), max(values)
    return 100 * (hi - lo) / (hi + lo) if hi + lo else 0.0


def measure(target: str, model: Path, runs: int, pct: float, results: Path) -> list[Tool]:
    default, stable, lr = Tool("harness run (defaults)"), Tool(f"harness run --until-stable {pct:g}"), \
        Tool("litert-benchmark (defaults)")
    for r in range(runs):
        for tool, extra in ((default, []), (stable, ["--until-stable", f"{pct:g}"])):
            obj, wall = harness_run(target, model, extra, results)
            tool.medians.append(obj["invoke"]["median_ns"])
            tool.walls.append(wall)
            tool.objs.append(obj)
        if target == "local" and (x := litert(model)) is not None:
            lr.medians.append(x[0])
            lr.walls.append(x[1])
        print(f"  {model.name} round {r + 1}/{runs}: default {default.medians[-1] / 1e3:.1f} µs, stable "
              f"{stable.medians[-1] / 1e3:.1f} µs ({stable.objs[-1]['processes']} processes, "
              f"{stable.objs[-1]['stopped_by']}, {stable.walls[-1]:.0f} s)", file=sys.stderr, flush=True)
    return [default, stable] + ([lr] if lr.medians else [])


def stable_notes(tool: Tool) -> str:
    procs = [o["processes"] for o in tool.objs]
    by = [o["stopped_by"] for o in tool.objs]
    cis = [o["invoke_median_ci"] for o in tool.objs]
    half = [100 * (hi - lo) / (hi + lo) for lo, hi in cis]
    grand = statistics.mean(tool.medians)
    covers = sum(lo <= grand <= hi for lo, hi in cis)
    return (f"processes {min(procs)}–{max(procs)}, stopped by stable {by.count('stable')}/{len(by)}, "
            f"interval ±{statistics.mean(half):.2f} % on average, {covers}/{len(cis)} intervals hold "
            "the mean of all the medians")


def report(target: str, model: Path, tools: list[Tool]) -> None:
    for tool in tools:
        unit, scale = ("ms", 1e6) if tool.name.startswith("litert") else ("µs", 1e3)
        meds = " ".join(f"{m / scale:.2f}" if unit == "ms" else f"{m / scale:.1f}" for m in tool.medians)
        line = (f"{target:<8} {model.name:<28} {tool.name:<32} {meds} {unit}   ±{spread(tool.medians):.1f} %   "
                f"{statistics.mean(tool.walls):.1f} s/invocation")
        if tool.objs and tool.objs[0]["stopped_by"] is not None:
            line += "\n" + " " * 38 + stable_notes(tool)
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="invocations of each tool per model")
    ap.add_argument("--pct", type=float, default=1.0, help="--until-stable PCT")
    ap.add_argument("--target", action="append", help="targets of ./targets.toml (default local)")
    ap.add_argument("--model", action="append", type=Path, help="models (default: the example models)")
    args = ap.parse_args()
    models = args.model or example_models()
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.target or ["local"]:
            for model in models:
                report(target, model, measure(target, model, args.runs, args.pct, Path(tmp)))
    print("\n±: half the range of the invocations' medians over their mid-range. Wall time: the whole "
          "command, start-up included.\nlitert-benchmark reports its median rounded to 0.01 ms and "
          "runs the CompiledModel API, another code path than the agent's Interpreter.")


if __name__ == "__main__":
    main()
