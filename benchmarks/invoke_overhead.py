"""Does the agent measure Invoke truthfully? Compare, side by side in one run, on the same models
and thread counts:

  agent   the median Invoke stage of device_agents/linux/tflite_agent.py (its with-Invoke loop)
  bare    a bare loop that times interpreter.invoke() and nothing else
  litert  litert-benchmark, which ships with ai-edge-litert (CompiledModel API, 0.01 ms resolution)

and print the ratios and the agent's per-iteration overhead (the median loop without Invoke).
Goal: agent/bare within 2 % for models of 100 µs and more.

Each tool runs in a fresh process, in interleaved rounds (agent, bare, litert, agent, ...) so that
drift on a shared machine hits all three alike; the figure of a cell is the median over rounds and
the ± is half the spread of the per-round ratios.

    python benchmarks/invoke_overhead.py [--rounds 5] [--iterations 300] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.models.files import example_models  # noqa: E402

AGENT = ROOT / "device_agents" / "linux" / "tflite_agent.py"

BARE = r"""
import sys, time
from ai_edge_litert.interpreter import Interpreter
import numpy as np
model, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model_path=model, num_threads=threads)
it.allocate_tensors()
rng = np.random.default_rng(0)
for d in it.get_input_details():
    it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(d["dtype"]))
invoke, clock = it.invoke, time.perf_counter_ns
for _ in range(max(10, n // 10)):
    invoke()
samples = []
for _ in range(n):
    t0 = clock(); invoke(); samples.append(clock() - t0)
samples.sort()
print(samples[len(samples) // 2])
"""


def agent(model: Path, threads: int, n: int) -> tuple[float, float]:
    """Median Invoke stage and median without-Invoke loop of one agent run, in ns."""
    p = subprocess.run([sys.executable, str(AGENT), "run", "--model", str(model), "--threads", str(threads),
                        "--iterations", str(n), "--blocks", "4", "--warmup", str(max(10, n // 10))],
                       capture_output=True, text=True, check=True)
    msgs = [json.loads(line) for line in p.stdout.splitlines()]
    invoke = [x for m in msgs if m["type"] == "samples" and m["mode"] == "with" for x in m["stages"]["invoke"]]
    without = [x for m in msgs if m["type"] == "samples" and m["mode"] == "without" for x in m["loop_ns"]]
    return statistics.median(invoke), statistics.median(without)


def bare(model: Path, threads: int, n: int) -> float:
    p = subprocess.run([sys.executable, "-c", BARE, str(model), str(threads), str(n)],
                       capture_output=True, text=True, check=True)
    return float(p.stdout.strip())


def litert(model: Path, threads: int, n: int) -> float | None:
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([exe, "--model", str(model), "--num_threads", str(threads), "--num_runs", str(n),
                        "--warmup_runs", str(max(10, n // 10)), "--result_json", str(out)],
                       capture_output=True, text=True, check=True)
        return json.loads(out.read_text())["latency"]["median_ms"] * 1e6


def spread(ratios: list[float]) -> float:
    return (max(ratios) - min(ratios)) / 2 if len(ratios) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    print(f"{'model':<28} {'thr':>3} {'agent':>10} {'bare':>10} {'agent/bare':>14} {'litert':>10} "
          f"{'agent/litert':>14} {'overhead/iter':>14}")
    for model in example_models():
        for t in threads:
            a_inv, a_wo, b, lr = [], [], [], []
            for _ in range(args.rounds):
                inv, wo = agent(model, t, args.iterations)
                a_inv.append(inv)
                a_wo.append(wo)
                b.append(bare(model, t, args.iterations))
                x = litert(model, t, args.iterations)
                if x is not None:
                    lr.append(x)
            r_bare = [x / y for x, y in zip(a_inv, b, strict=True)]
            line = (f"{model.name:<28} {t:>3} {statistics.median(a_inv) / 1e3:>8.1f}µs "
                    f"{statistics.median(b) / 1e3:>8.1f}µs {statistics.median(r_bare):>8.3f}±{spread(r_bare):.3f}")
            if lr:
                r_lr = [x / y for x, y in zip(a_inv, lr, strict=True)]
                line += (f" {statistics.median(lr) / 1e3:>8.1f}µs "
                         f"{statistics.median(r_lr):>8.3f}±{spread(r_lr):.3f}")
            else:
                line += f" {'n/a':>10} {'n/a':>14}"
            line += f" {statistics.median(a_wo) / 1e3:>12.2f}µs"
            print(line, flush=True)
    print("\nagent/bare: 1.000 means the agent's Invoke figure is the bare interpreter.invoke() time; "
          "goal within 2 % for models of 100 µs and more.\nlitert-benchmark runs the CompiledModel API "
          "and rounds to 0.01 ms, so agent/litert compares two different code paths.\noverhead/iter is "
          "the agent's median loop without Invoke: default load, set_input, get_output and timers.")


if __name__ == "__main__":
    main()
