"""The result store: ``results/<run-id>/``, written as the run goes, readable at any moment.

Layout (schema version in every file, see harness.results.benchmark for its history)::

    results/<run-id>/
        run.json                     what was asked: plan, matrix, targets' facts, status
        benchmarks/NNN-<target>-<model>-t<threads>.jsonl
                                     header line, the board's messages verbatim, end line
        summary.jsonl                one `harness run --json` object per finished benchmark

Every line is flushed as it arrives, so Ctrl-C or a crash leaves all samples received so far on
disk; ``load_run`` rebuilds benchmarks from the .jsonl files alone, complete or not. No secrets
are written: targets contribute only their facts (Target.facts()), never connection details.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from harness import __version__
from harness.errors import ConfigError, MeasurementError
from harness.plan import Job
from harness.results.benchmark import SCHEMA_VERSION, Benchmark, from_lines

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class BenchmarkWriter:
    """Appends one benchmark's lines, flushed one by one. Thread-confined to its target's worker."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in end()
        self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()

    def message(self, msg: dict[str, Any]) -> None:
        self._write(msg)

    def end(self, *, complete: bool, reason: str | None = None, error: dict[str, Any] | None = None) -> None:
        if self._file.closed:
            return
        self._write({"type": "end", "complete": complete, "reason": reason, "error": error,
                     "finished_at": _now()})
        self._file.close()


class RunStore:
    """Writes one run directory."""

    def __init__(self, root: Path, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.path = root / self.run_id
        (self.path / "benchmarks").mkdir(parents=True, exist_ok=False)
        self._meta: dict[str, Any] = {}
        self._count = 0

    def start(self, meta: dict[str, Any]) -> None:
        self._meta = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id,
                      "harness_version": __version__, "started_at": _now(), "status": "running", **meta}
        self._save_meta()

    def finish(self, status: str) -> None:
        self._meta.update(status=status, finished_at=_now())
        self._save_meta()

    def _save_meta(self) -> None:
        tmp = self.path / "run.json.tmp"
        tmp.write_text(json.dumps(self._meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / "run.json")  # never a half-written run.json

    def open_benchmark(self, job: Job) -> BenchmarkWriter:
        self._count += 1
        name = f"{self._count:03d}-{_slug(job.target)}-{_slug(job.model.stem)}-t{job.threads}.jsonl"
        header = {"type": "header", "schema_version": SCHEMA_VERSION, "run_id": self.run_id,
                  "target": job.target, "model": job.model.name, "model_path": str(job.model),
                  "model_sha256": job.model_sha256, "threads": job.threads,
                  "plan": job.plan.as_dict(), "model_facts": job.model_facts, "started_at": _now()}
        return BenchmarkWriter(self.path / "benchmarks" / name, header)

    def add_summary(self, obj: dict[str, Any]) -> None:
        with open(self.path / "summary.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")


def read_benchmark(path: Path) -> Benchmark:
    """One benchmark file; a truncated last line (crash mid-write) is ignored."""
    lines: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                break  # only the very last line can be cut short
    if not lines or lines[0].get("type") != "header":
        raise MeasurementError(f"{path} is not a harness benchmark file (no header line)")
    version = lines[0].get("schema_version")
    if version != SCHEMA_VERSION:
        raise MeasurementError(f"{path} has schema version {version}; this harness reads "
                               f"{SCHEMA_VERSION}", hint="use the harness version that wrote it")
    return from_lines(lines[0], lines[1:])


def resolve_run(root: Path, ref: str | None) -> Path:
    """A run directory from a run id, a path, or None for the latest run under ``root``."""
    if ref and Path(ref).is_dir():
        return Path(ref)
    if ref and (root / ref).is_dir():
        return root / ref
    if ref:
        raise ConfigError(f"no run {ref!r} in {root}", hint="harness show with no argument shows the "
                          "latest run; ls results/ lists them")
    runs = sorted(p for p in root.glob("*/run.json")) if root.is_dir() else []
    if not runs:
        raise ConfigError(f"no runs in {root}", hint="run `harness run` first, or pass --results DIR")
    return max(runs, key=lambda p: p.stat().st_mtime).parent


def read_meta(path: Path) -> tuple[dict[str, Any], str | None]:
    """run.json of the run in ``path``, and why it cannot be used (then the dict is {})."""
    try:
        meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, f"run.json of {path.name} is missing"
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        return {}, f"run.json of {path.name} is unreadable: {exc}"
    if not isinstance(meta, dict):
        return {}, f"run.json of {path.name} is unreadable: not a JSON object"
    return meta, None


def load_run(path: Path) -> tuple[dict[str, Any], list[Benchmark]]:
    """run.json and every benchmark of the run, in run order. A run.json that cannot be read is
    named in a warning and gives {}: the benchmarks come from their own files and still load."""
    meta, problem = read_meta(path)
    if problem:
        log.warning("%s (in %s); the run's benchmarks are read without it", problem, path)
    return meta, list(_benchmarks(path))


def _benchmarks(path: Path) -> Iterator[Benchmark]:
    for file in sorted((path / "benchmarks").glob("*.jsonl")):
        yield read_benchmark(file)
