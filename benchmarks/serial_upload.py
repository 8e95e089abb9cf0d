"""How close does the serial protocol get to the wire? Measured on the paced emulated MCU.

1. Upload throughput: a model uploaded with UPLOAD_BEGIN / CHUNK / END, as a percentage of the
   raw line rate (baud / 10 bytes per second, 8N1), at 115200 and 921600 baud. Goal: >= 90 %.
   The figure includes framing (13 bytes per frame), the ACK of every chunk and the turnaround on
   both sides, but not UPLOAD_END's model load.
2. Per-batch overhead of RUN: the host-measured round trip of one RUN batch minus the device's own
   loop time and minus the line time of the request and its reply. What is left is the protocol's
   cost per batch (frame handling on the device and the host, scheduling); divided by the batch
   size it is the cost per measured iteration. The device's samples never include it: the timer
   runs only inside the loop.

The emulator paces bytes like a UART (bytes * 10 / baud), so these are the rates a real USB-serial
link at that baud would give, plus the emulator's own Python turnaround (a C firmware's is smaller).

    python benchmarks/serial_upload.py [--bauds 115200,921600] [--model PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device_agents.wire import serial_frames as sf  # noqa: E402
from harness.lab.drivers.emulator import EmulatedMcu  # noqa: E402
from harness.lab.transports.serial import FramedLink, SerialLink  # noqa: E402
from harness.models.files import example_models  # noqa: E402


def upload(link: FramedLink, model: bytes) -> float:
    """Seconds from UPLOAD_BEGIN to the last chunk's ACK."""
    t0 = time.perf_counter()
    reply = link.request(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + hashlib.sha256(model).digest())
    chunk = min(struct.unpack("<I", reply.payload)[0], link.max_payload - 4)
    offset = 0
    while offset < len(model):
        r = link.request(sf.T.UPLOAD_CHUNK, struct.pack("<I", offset) + model[offset:offset + chunk])
        offset = struct.unpack("<I", r.payload)[0]
    elapsed = time.perf_counter() - t0
    link.request(sf.T.UPLOAD_END, work_s=30)
    return elapsed


def batch_overhead(link: FramedLink, batch: int, rounds: int) -> tuple[float, float, float]:
    """Median (round trip, device loop time, line time) of a RUN batch, in seconds."""
    trips, loops = [], []
    line = link.line_time_s(2 * sf.OVERHEAD + 4 + 4 + 16 * batch)
    for _ in range(rounds):
        t0 = time.perf_counter()
        reply = link.request(sf.T.RUN, struct.pack("<BBH", sf.MODE_WITHOUT, 0, batch), work_s=5)
        trips.append(time.perf_counter() - t0)
        _, rows = sf.unpack_samples(reply.payload)
        loops.append(sum(r[0] for r in rows) / 1e9)
    return statistics.median(trips), statistics.median(loops), line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bauds", default="115200,921600")
    ap.add_argument("--model", type=Path, help="model to upload (default: the smallest example model "
                                               "of at least 50 kB, else the largest)")
    ap.add_argument("--repeat", type=int, default=3, help="uploads per baud; the median is reported")
    args = ap.parse_args()
    if args.model:
        model_path = args.model
    else:
        models = sorted(example_models(), key=lambda p: p.stat().st_size)
        model_path = next((p for p in models if p.stat().st_size >= 50_000), models[-1])
    model = model_path.read_bytes()
    print(f"model {model_path.name}: {len(model)} bytes", file=sys.stderr)
    print(f"{'baud':>8} {'line B/s':>9} {'upload B/s':>10} {'% of line':>9}   per-batch overhead of RUN (ms)")
    for baud in (int(b) for b in args.bauds.split(",")):
        sim = EmulatedMcu("bench", baud=baud, arena=4 * 1024 * 1024)
        link = FramedLink(SerialLink("bench", sim.port, baud))
        try:
            link.hello()
            times = [upload(link, model) for _ in range(args.repeat)]
            rate = len(model) / statistics.median(times)
            line_rate = baud / sf.BITS_PER_BYTE
            link.request(sf.T.RANDOM_INPUT, struct.pack("<I", 1), work_s=5)
            parts = []
            for batch in (1, 16, 64, 255):
                trip, loop, line = batch_overhead(link, batch, rounds=15)
                over = trip - loop - line
                parts.append(f"b={batch}: {over * 1e3:.2f} ({over / batch * 1e6:.0f} µs/iter)")
            print(f"{baud:>8} {line_rate:>9.0f} {rate:>10.0f} {100 * rate / line_rate:>8.1f}%   " + ", ".join(parts))
        finally:
            link.close()
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
