"""The object `harness stream --json` prints, and `harness show --json` recomputes, for one target,
model and thread count (README: `harness stream`, the contract), from a stream's raw record."""

from __future__ import annotations

from typing import Any

from harness.results.stream import StreamRecord, Trial, figures


def _rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def to_json(record: StreamRecord, run_id: str | None, schema_version: int,
            soak: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object `harness stream --json` prints for one target, model and thread count."""
    trial = record.main
    f = figures(trial) if trial is not None and trial.period_ns and len(trial.frames) else None
    runtime = record.hello.get("runtime") or {}
    obj: dict[str, Any] = {
        "kind": "stream", "schema_version": schema_version, "run_id": run_id, "target": record.target,
        "model": record.model, "model_sha256": record.model_sha256, "threads": record.threads,
        "command": record.plan.get("command", "stream"), "source": record.plan.get("source"),
        "arrivals": record.plan.get("arrivals"), "policy": record.plan.get("policy"),
        "window_s": record.plan.get("window_s"),
        "rate_hz": _rounded(f.rate_hz) if f else None, "deadline_ns": f.deadline_ns if f else None,
        "frames": f.frames if f else 0, "processed": f.processed if f else 0,
        "late": f.late if f else 0, "dropped": f.dropped if f else 0,
        "late_pct": _rounded(f.late_pct) if f else None, "dropped_pct": _rounded(f.dropped_pct) if f else None,
        "latency": f.latency.to_json() if f and f.latency else None,
        "queue_delay_median_ns": f.queue_delay_median_ns if f else None,
        "start_jitter_ns": f.start_jitter_ns if f else None,
        "service_median_ns": f.service_median_ns if f else None,
        "sustained_rate_hz": _rounded(f.sustained_rate_hz) if f else None,
        "busy_fraction": _rounded(f.busy_fraction, 4) if f else None,
        "max_sustainable_rate_hz": _rounded(trial.rate_hz) if record.searched and trial else None,
        "trials": [trial_json(t, v) for t, v in record.verdicts()] if record.searched else None,
        "soak": soak, "runtime": runtime.get("name"), "runtime_version": runtime.get("version"),
        "board": {k: (record.hello.get("board") or {}).get(k) for k in ("model", "cpu", "cores", "machine", "governor")},
        "emulated": record.emulated, "complete": record.complete, "error": record.error,
    }
    return obj


def trial_json(trial: Trial, verdict: str | None) -> dict[str, Any]:
    """One --find-max trial as `--json` lists it: its rate, its verdict and misses recomputed from
    its frames, how it ended (``by``, from its trial_end line)."""
    f = figures(trial) if trial.period_ns and len(trial.frames) else None
    return {"index": trial.index, "rate_hz": _rounded(trial.rate_hz), "verdict": verdict,
            "by": (trial.verdict or {}).get("by"), "frames": len(trial.frames),
            "misses": f.late + f.dropped if f else 0, "needed": (trial.verdict or {}).get("needed"),
            "median_ns": f.latency.median_ns if f and f.latency else None,
            "p99_ns": f.latency.p99_ns if f and f.latency else None}
