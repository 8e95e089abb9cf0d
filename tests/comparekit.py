"""Stored benchmark runs with samples of a known distribution, written with the real result store
(harness.results.store: RunStore, RecordWriter), for the comparison's tests and its benchmark.
The files are what `harness run` writes: a header, per process its hello, model, plan and blocks
of samples in ABBA order, a summary, an end line; run.json with the matrix and harness version."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.plan import Job, Plan
from harness.results.store import RunStore

# (process, block, rng) -> the Invoke samples of one with-Invoke block, in ns
Sampler = Callable[[int, int, np.random.Generator], np.ndarray]


def steady(median_ns: float, spread: float = 0.02, block_spread: float = 0.01, n: int = 100) -> Sampler:
    """Samples around ``median_ns``: each block's level moves by ``block_spread`` (sd, relative),
    each sample by ``spread`` around it."""
    def sample(process: int, block: int, rng: np.random.Generator) -> np.ndarray:
        level = median_ns * (1 + block_spread * rng.standard_normal())
        return level * (1 + spread * rng.standard_normal(n))
    return sample


@dataclass(frozen=True)
class Bench:
    """One benchmark to store: where it ran, on what, and how its Invoke samples are drawn."""

    target: str = "local"
    model: str = "ds_cnn_kws.tflite"
    threads: int = 1
    sampler: Sampler = field(default=steady(60_000))
    model_bytes: bytes = b"model"  # its sha256 is the model's identity
    board: tuple[str | None, str] = (None, "AMD EPYC")  # hello's board model and cpu
    runtime: tuple[str, str] = ("ai_edge_litert", "2.3.0")
    xnnpack: bool = True
    emulated: bool = False
    blocks: int = 10
    processes: int = 1
    overhead_ns: int = 3_000  # the loop without Invoke


def write_run(root: Path, benches: Sequence[Bench], *, run_id: str | None = None, seed: int = 0,
              harness_version: str | None = None, targets: dict[str, dict] | None = None) -> Path:
    """A complete benchmark run under ``root``; returns its directory. ``targets``: run.json's
    targets facts, {name: Target.facts()-like dict (price_usd, power_w, ...)}."""
    rng = np.random.default_rng(seed)
    run = RunStore(root, run_id, kind="benchmark")
    meta: dict = {"plan": Plan().as_dict(),
                  "matrix": [{"target": b.target, "model": b.model, "threads": b.threads} for b in benches]}
    if targets is not None:
        meta["targets"] = targets
    if harness_version is not None:
        meta["harness_version"] = harness_version
    run.start(meta)
    for b in benches:
        _write(run, b, rng)
    run.finish("complete")
    return run.path


def _write(run: RunStore, b: Bench, rng: np.random.Generator) -> None:
    sha = hashlib.sha256(b.model_bytes).hexdigest()
    plan = Plan(blocks=b.blocks, processes=b.processes)
    writer = run.open_benchmark(Job(b.target, Path(b.model), sha, b.threads, plan))
    for p in range(b.processes):
        writer.message({"type": "process", "index": p, "host_measured": True})
        writer.message({"type": "hello", "v": 1, "board": {"model": b.board[0], "cpu": b.board[1]},
                        "runtime": {"name": b.runtime[0], "version": b.runtime[1]},
                        "clock": {"resolution_ns": 1}, "emulated": b.emulated})
        writer.message({"type": "model", "v": 1, "path": b.model, "init_ns": 1_000_000, "threads": b.threads,
                        "xnnpack": b.xnnpack})
        writer.message({"type": "plan", "v": 1, "blocks": b.blocks, "stages": ["invoke"]})
        for block in range(b.blocks):
            invoke = np.maximum(b.sampler(p, block, rng), 1).astype(np.int64)
            halves = [("with", invoke + b.overhead_ns, invoke), ("without", np.full(invoke.size, b.overhead_ns), None)]
            for mode, loop, stage in halves if block % 2 == 0 else halves[::-1]:
                writer.message({"type": "samples", "v": 1, "mode": mode, "block": block, "loop_ns": loop.tolist(),
                                "stages": {} if stage is None else {"invoke": stage.tolist()}, "env": {}})
        writer.message({"type": "summary", "v": 1, "iterations": b.blocks})
    writer.end(complete=True)


def best_cli_time(argv: Sequence[str], repeat: int, ok: Sequence[int] = (0,)) -> float:
    """The best wall time of ``python -m harness *argv`` over ``repeat`` fresh processes (start-up
    included, as a user runs it), for the benchmarks of compare and report; stops on an exit
    status outside ``ok`` with harness's stderr."""
    import os
    import subprocess
    import sys
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, env=env,
                           check=False)
        best = min(best, time.perf_counter() - t0)
        if p.returncode not in ok:
            raise SystemExit(f"harness {' '.join(argv)} failed ({p.returncode}): {p.stderr}")
    return best
