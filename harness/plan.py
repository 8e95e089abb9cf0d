"""What to measure: the plan sent to every board, and one cell of the run matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Plan:
    """What to measure, sent explicitly to the device (no hidden defaults on the board).

    Defaults, and why:
    - warmup 10 iterations and at least 0.2 s: XNNPACK packs weights and caches fill during the
      first few invokes; 0.2 s also lets a CPU governor ramp up before samples count.
    - duration 1.0 s per mode, at least 100 iterations: enough samples for a stable p99 on
      millisecond models while a 3-model default run stays under a minute.
    - 10 blocks: with and without Invoke alternate (ABBA) so drift and heat hit both modes alike.
    """

    warmup: int = 10
    warmup_time_s: float = 0.2
    iterations: int = 0  # per mode; 0 = derive from duration_s
    duration_s: float = 1.0  # per mode, used when iterations == 0
    min_iterations: int = 100
    max_iterations: int = 20_000  # per mode: ~200 samples beyond p99, ~1 MB of raw samples on disk
    blocks: int = 10
    settle: int = 1  # per block, run but kept apart: talking to the host between blocks evicts caches
    seed: int = 0
    xnnpack: bool = True
    inputs: Path | None = None
    pipeline: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "warmup_time_s": self.warmup_time_s,
            "iterations": self.iterations,
            "duration_s": self.duration_s,
            "min_iterations": self.min_iterations,
            "max_iterations": self.max_iterations,
            "blocks": self.blocks,
            "settle": self.settle,
            "seed": self.seed,
            "xnnpack": self.xnnpack,
            "inputs": str(self.inputs) if self.inputs else None,
            "pipeline": str(self.pipeline) if self.pipeline else None,
        }


@dataclass(frozen=True)
class Job:
    """One cell of the matrix: a model on a target with a thread count."""

    target: str
    model: Path
    model_sha256: str
    threads: int
    plan: Plan
    # What the host knows of the model (harness analyze totals: flops, macs, params, scheme, ...),
    # stored with the results so tables can show achieved GFLOP/s; empty when it could not be read.
    model_facts: dict[str, Any] = field(default_factory=dict, compare=False)
