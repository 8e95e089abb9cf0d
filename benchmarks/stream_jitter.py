"""How precisely does the Linux agent start frames on schedule, and what does stream mode cost per
frame? The agent's stream mode (device_agents/linux/tflite_agent.py) runs here as on a board, with
no host in the loop, for each --spin-us (the final spin before a frame's time: sleep until
``spin`` before it, then spin):

  jitter    start - scheduled of the frames that found the board idle (the definition of
            harness.results.stream: ``start_jitter_ns`` is its p99); goal under 100 µs p99 on an
            idle Linux board
  overhead  end - start - Invoke of each frame with no pipeline and no device work: what the
            stream loop itself adds to a frame (set input, get output, records, the clock reads)

Rounds interleave the spin settings so that drift on a shared machine hits them alike; each cell
is the median over rounds of the per-round figure, with the range over rounds. The load average
is printed: on a busy machine the p99 measures the machine's scheduler, not the agent.

    python benchmarks/stream_jitter.py [--rounds 3] [--rate 100] [--frames 1000] [--spin-us 0,100,500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import stats  # noqa: E402

AGENT = ROOT / "device_agents" / "linux" / "tflite_agent.py"
MODEL = ROOT / "harness" / "example_models" / "digits_cnn.tflite"


def one_stream(rate: float, frames: int, spin_us: int) -> dict[str, float]:
    """One agent stream; its jitter (p50, p99, max) and per-frame overhead (median, p99), in µs."""
    period = round(1e9 / rate)
    out = subprocess.run([sys.executable, str(AGENT), "stream", "--model", str(MODEL), "--period-ns", str(period),
                          "--frames", str(frames), "--deadline-ns", str(period), "--spin-ns", str(spin_us * 1000),
                          "--warmup", "20"], capture_output=True, text=True, timeout=600, check=True).stdout
    sched: list[int] = []
    start: list[int] = []
    end: list[int] = []
    invoke: list[int] = []
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("type") == "stream":
            sched += msg["scheduled_ns"]
            start += msg["start_ns"]
            end += msg["end_ns"]
            invoke += msg["invoke_ns"]
    idle = [a - s for i, (s, a) in enumerate(zip(sched, start, strict=True)) if i == 0 or end[i - 1] <= s]
    over = [e - a - v for a, e, v in zip(start, end, invoke, strict=True)]
    return {"j50": stats.percentile(idle, 50) / 1e3, "j99": stats.percentile(idle, 99) / 1e3,
            "jmax": max(idle) / 1e3, "o50": stats.percentile(over, 50) / 1e3, "o99": stats.percentile(over, 99) / 1e3,
            "idle": len(idle), "frames": len(sched)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--spin-us", default="0,100,500")
    a = ap.parse_args()
    spins = [int(x) for x in a.spin_us.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {a.frames} frames at {a.rate:g} Hz of "
          f"{MODEL.name}, {a.rounds} rounds", flush=True)
    results: dict[int, list[dict[str, float]]] = {s: [] for s in spins}
    for _ in range(a.rounds):
        for s in spins:
            results[s].append(one_stream(a.rate, a.frames, s))
    print(f"{'spin':>7}  {'jitter p50':>11}  {'jitter p99':>17}  {'jitter max':>11}  {'overhead p50':>13}  "
          f"{'overhead p99':>13}")
    for s in spins:
        r = results[s]

        def cell(key: str, r: list[dict[str, float]] = r) -> str:
            return f"{statistics.median(x[key] for x in r):.1f}"
        j99 = [x["j99"] for x in r]
        print(f"{s:>5}µs  {cell('j50'):>9}µs  {cell('j99'):>6}µs ({min(j99):.0f}–{max(j99):.0f})  "
              f"{cell('jmax'):>9}µs  {cell('o50'):>11}µs  {cell('o99'):>11}µs")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
