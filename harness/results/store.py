"""The result store: ``results/<run-id>/``, written as the run goes, readable at any moment.

A run has one ``kind`` (in run.json; a run without one, from schema version 1, is a benchmark
run): "benchmark" for ``harness run``, "profile" for ``harness analyze MODEL --profile TARGET``,
"stream" for ``harness stream`` and ``harness soak`` (the plan's ``command`` says which). Each kind
keeps its record files in its own folder. Layout (schema version in every file, see
harness.results.benchmark for its history)::

    results/<run-id>/
        run.json                     kind, what was asked (plan, matrix or model and target,
                                     targets' facts), status (and the signal that
                                     interrupted it)
        benchmarks/NNN-<target>-<model>-t<threads>.jsonl          (kind "benchmark")
                                     header line, the board's messages verbatim, end line
        summary.jsonl                one `harness run --json` object per finished benchmark
        eval/*.npz                   with --eval: each model's samples as its boards were fed them
                                     (harness.models.evalset; written by the CLI, no labels)
        profiles/NNN-<target>-<model>-t<threads>.jsonl            (kind "profile")
                                     header line (the profile plan, each op's index, type and
                                     FLOPs), the agent's profile-mode messages verbatim (hello,
                                     models, plan, every ``round`` of raw Invoke samples,
                                     summary or error), end line
        streams/NNN-<target>-<model>-t<threads>.jsonl             (kind "stream")
                                     header line (the stream plan), the agent's stream-mode
                                     messages verbatim (raw per-frame times, board_state, ...);
                                     with --find-max each trial's between ``trial`` and
                                     ``trial_end`` lines, then a ``find_max`` line; end line

Every line is flushed as it arrives, so Ctrl-C or a crash leaves all samples received so far on
disk; ``load_run`` rebuilds benchmarks from the .jsonl files alone, complete or not,
harness.results.layers recomputes a profile from its stored rounds, and ``load_streams`` rebuilds
streams (harness.results.stream computes every figure from their raw frames). A line that cannot be read
back (cut short, damaged) is skipped with a warning naming the file and the line, never the
lines after it. Writing and reading fail with a StoreError (read-only, full disk, not a
directory), which names the path. No secrets are written: targets contribute only their facts
(Target.facts()), never connection details.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from harness import __version__
from harness.errors import ConfigError, HarnessError, MeasurementError, StoreError
from harness.plan import Job, ProfileJob
from harness.results.benchmark import READABLE_VERSIONS, SCHEMA_VERSION, Benchmark, from_lines
from harness.stream_plan import StreamJob

R = TypeVar("R")  # a record as read back: Benchmark, StreamRecord (harness.results.stream_store)

# The kinds of run, each with the folder of its record files.
FOLDERS = {"benchmark": "benchmarks", "profile": "profiles", "stream": "streams"}

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def io_error(what: str, path: Path, exc: OSError) -> StoreError:
    """One line for an I/O failure on ``path`` ("cannot write results/x/run.json: No space left
    on device"), with the fix its cause calls for."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free space on that disk, or pass --results DIR on another one"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "--results must name a directory (it is created if missing), not a file"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "pass --results DIR naming a directory you can write (and read)"
    else:
        hint = "check the disk and the directory given by --results"
    return StoreError(f"cannot {what} {path}: {why}", hint=hint, code="io")


def run_kind(meta: dict[str, Any]) -> str:
    """The kind of a run from its run.json; runs stored before kinds existed are benchmarks."""
    return str(meta.get("kind") or "benchmark")


class RecordWriter:
    """Appends one record's lines (a benchmark, a profile), flushed one by one.

    Thread-confined to its target's worker. ``header`` is the first line, as written.
    """

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        try:
            self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in end()
        except OSError as exc:
            raise io_error("create", path, exc) from exc
        self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self._file.flush()
        except OSError as exc:
            raise io_error("write", self.path, exc) from exc

    def message(self, msg: dict[str, Any]) -> None:
        self._write(msg)

    def end(self, *, complete: bool, reason: str | None = None, error: dict[str, Any] | None = None) -> None:
        if self._file.closed:
            return
        try:
            self._write({"type": "end", "complete": complete, "reason": reason, "error": error,
                         "finished_at": _now()})
        finally:
            with contextlib.suppress(OSError):  # what could not be flushed was reported by _write
                self._file.close()


class RunStore:
    """Writes one run directory, of one kind. Safe to use from the runner's worker threads."""

    def __init__(self, root: Path, run_id: str | None = None, kind: str = "benchmark") -> None:
        if kind not in FOLDERS:
            raise ValueError(f"unknown run kind {kind!r}")
        self.run_id = run_id or new_run_id()
        self.kind = kind
        self.path = root / self.run_id
        try:
            (self.path / FOLDERS[kind]).mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise io_error("create the run directory", self.path, exc) from exc
        self._meta: dict[str, Any] = {}
        self._count = 0
        self._lock = threading.Lock()

    def start(self, meta: dict[str, Any]) -> None:
        self._meta = {"schema_version": SCHEMA_VERSION, "kind": self.kind, "run_id": self.run_id,
                      "harness_version": __version__, "started_at": _now(), "status": "running", **meta}
        self._save_meta()

    def finish(self, status: str, **details: Any) -> None:
        """End the run with ``status``; ``details`` (e.g. ``signal`` of an interrupted run) go to
        run.json beside it."""
        self._meta.update(status=status, finished_at=_now(), **details)
        self._save_meta()

    def fail(self, message: str) -> None:
        """Record in run.json that the run failed, and why. Never raises: the failure itself is
        being reported already, and one that cannot be recorded is logged."""
        self._meta.update(status="failed", error=message, finished_at=_now())
        try:
            self._save_meta()
        except StoreError as exc:
            log.error("run.json still says %r: %s", "running", exc)

    def _save_meta(self) -> None:
        text = json.dumps(self._meta, indent=2) + "\n"
        tmp, path = self.path / "run.json.tmp", self.path / "run.json"
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # never a half-written run.json
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if not _overwrite_in_place(path, text.encode("utf-8")):
                raise io_error("write", path, exc) from exc

    def open_benchmark(self, job: Job) -> RecordWriter:
        # the target's facts (price, declared power, power reader) travel with each benchmark, so
        # one record file is enough to compute its energy and cost
        return self._open("benchmark", job.target, job.model, job.threads, {
            "model_sha256": job.model_sha256, "threads": job.threads, "plan": job.plan.as_dict(),
            "model_facts": job.model_facts, "target_facts": self._target_facts(job), **job.placement()})

    def _target_facts(self, job: Job) -> dict[str, Any] | None:
        # a pool's job runs on one of its places, but its facts are the pool's, as run.json has them
        targets = self._meta.get("targets") or {}
        return targets.get(job.target) or (targets.get(job.pool) if job.pool else None)

    def open_profile(self, job: ProfileJob) -> RecordWriter:
        return self._open("profile", job.target, job.model, job.threads, {
            "model_sha256": job.model_sha256, "threads": job.threads, "plan": job.plan.as_dict(),
            "prefixes": [p.name for p in job.prefixes], "ops": list(job.ops)})

    def open_stream(self, job: StreamJob) -> RecordWriter:
        return self._open("stream", job.target, job.model, job.threads, {
            "model_sha256": job.model_sha256, "threads": job.threads, "plan": job.plan.as_dict(),
            "model_facts": job.model_facts})

    def _open(self, kind: str, target: str, model: Path, threads: int, fields: dict[str, Any]) -> RecordWriter:
        if kind != self.kind:
            raise ValueError(f"a {kind} record in a {self.kind} run")
        with self._lock:
            self._count += 1
            count = self._count
        name = f"{count:03d}-{_slug(target)}-{_slug(model.stem)}-t{threads}.jsonl"
        header = {"type": "header", "schema_version": SCHEMA_VERSION, "kind": kind, "run_id": self.run_id,
                  "target": target, "model": model.name, "model_path": str(model), **fields,
                  "started_at": _now()}
        return RecordWriter(self.path / FOLDERS[kind] / name, header)

    def add_summary(self, obj: dict[str, Any]) -> None:
        path = self.path / "summary.jsonl"
        try:
            with self._lock, open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(obj) + "\n")
        except OSError as exc:
            raise io_error("write", path, exc) from exc


def _overwrite_in_place(path: Path, data: bytes) -> bool:
    """Rewrite ``path`` in the disk blocks it already has; True when done.

    On a full disk the atomic write (a new file) fails, yet run.json must still say how the run
    ended. Bytes that fit the blocks the file already owns need no new ones (ext4, tmpfs), so
    only a file big enough is overwritten, never left half-written for want of space.
    """
    try:
        with open(path, "r+b") as f:
            if os.fstat(f.fileno()).st_blocks * 512 < len(data):
                return False
            f.write(data)
            f.truncate()
            f.flush()
    except OSError:
        return False
    return True


Numbered = list[tuple[int, dict[str, Any]]]  # messages with their line numbers (from 1)


def read_record(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the following lines of one record file. A line that cannot be decoded
    (cut short by a crash mid-write, damaged on disk) is skipped, named in a warning; the lines
    after it are kept. Raises StoreError when the file cannot be read, MeasurementError for a
    file that is not a record, or of a schema version this harness cannot read."""
    header, numbered, skipped = read_lines(path)
    warn_skipped(path, skipped, len(numbered))
    return header, [msg for _, msg in numbered]


def read_lines(path: Path) -> tuple[dict[str, Any], Numbered, list[int]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise io_error("read", path, exc) from exc
    numbered: Numbered = []
    skipped: list[int] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            msg = json.loads(raw.decode("utf-8"))
        except ValueError:  # bad UTF-8 or bad JSON
            msg = None
        if isinstance(msg, dict):
            numbered.append((number, msg))
        else:
            skipped.append(number)
    if not numbered or numbered[0][0] != 1 or numbered[0][1].get("type") != "header":
        raise MeasurementError(f"{path} is not a harness record file (no header line)",
                               hint="remove it from the run directory, or restore it from a backup")
    version = numbered[0][1].get("schema_version")
    if version not in READABLE_VERSIONS:
        raise MeasurementError(f"{path} has schema version {version}; this harness reads "
                               f"{', '.join(map(str, READABLE_VERSIONS))}",
                               hint="use the harness version that wrote it")
    return numbered[0][1], numbered[1:], skipped


def warn_skipped(path: Path, skipped: list[int], kept: int) -> None:
    if skipped:
        which = ", ".join(map(str, skipped[:10])) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        log.warning("%s: skipped line%s %s, which cannot be read (cut short or damaged); the other "
                    "%d lines are kept", path, "s" if len(skipped) > 1 else "", which, kept)


def read_benchmark(path: Path) -> Benchmark:
    """One benchmark file. A line that cannot be read, or not interpreted as the message it
    claims to be (a samples line without its samples), is skipped and named in a warning."""
    header, numbered, skipped = read_lines(path)
    try:
        from_lines(header, [])  # a header that is wrong leaves nothing in the file to place
    except (TypeError, ValueError) as exc:
        raise MeasurementError(f"{path}: its header line cannot be read ({exc})",
                               hint="remove it from the run directory, or restore it from a backup") from exc
    kept: list[dict[str, Any]] = []
    for number, msg in numbered:
        try:
            from_lines(header, [msg])  # alone: so one bad message cannot take the others with it
        except (MeasurementError, KeyError, TypeError, ValueError, AttributeError):
            skipped.append(number)
        else:
            kept.append(msg)
    warn_skipped(path, sorted(skipped), len(kept))
    return from_lines(header, kept)


def resolve_run(root: Path, ref: str | None, kind: str | None = "benchmark") -> Path:
    """A run directory from a run id or a path (of any kind), or for None the latest run of
    ``kind`` under ``root`` (of any kind when ``kind`` is None)."""
    if ref and Path(ref).is_dir():
        return Path(ref)
    if ref and (root / ref).is_dir():
        return root / ref
    if ref:
        raise ConfigError(f"no run {ref!r} in {root}", hint="harness show with no argument shows the "
                          "latest run; ls results/ lists them")
    runs = sorted(root.glob("*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True) if root.is_dir() else []
    for run in runs:
        if kind is None or run_kind(load_meta(run.parent)) == kind:
            return run.parent
    what = f"{kind} runs" if kind else "runs"
    first = {"profile": "harness analyze MODEL --profile TARGET", "stream": "harness stream"}.get(kind or "", "harness run")
    first = f"run `{first}` first"
    raise ConfigError(f"no {what} in {root}", hint=f"{first}, or pass --results DIR")


def load_meta(path: Path) -> dict[str, Any]:
    """run.json of the run in directory ``path``, or {} when it is missing or unreadable."""
    return read_meta(path)[0]


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
    meta, benchmarks = load_records(path, "benchmark", read_benchmark)
    targets: dict[str, Any] = meta["targets"] if isinstance(meta.get("targets"), dict) else {}
    # files before schema 5 have no target facts of their own: run.json has them
    return meta, [b if b.target_facts or not isinstance(targets.get(b.target), dict)
                  else dataclasses.replace(b, target_facts=targets[b.target]) for b in benchmarks]


def load_records(path: Path, kind: str, read: Callable[[Path], R]) -> tuple[dict[str, Any], list[R]]:
    """run.json and every record of ``kind`` read by ``read``, in run order."""
    meta, problem = read_meta(path)
    if problem:
        log.warning("%s (in %s); the run's %ss are read without it", problem, path, kind)
    loaded: list[R] = []
    failures: list[HarnessError] = []
    for file in records(path, kind):
        try:
            loaded.append(read(file))
        except HarnessError as exc:  # one file that cannot be read hides none of the others
            log.warning("%s: the run's other %ss are read without it", exc.message, kind)
            failures.append(exc)
    if failures and not loaded:
        raise failures[0]
    return meta, loaded


def records(path: Path, kind: str) -> list[Path]:
    """The record files of ``kind`` in the run in directory ``path``, in run order."""
    return sorted((path / FOLDERS[kind]).glob("*.jsonl"))
