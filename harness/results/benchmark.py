"""The measurement data model: one benchmark's raw record, rebuilt from the messages on disk.

A benchmark file (``results/<run-id>/benchmarks/*.jsonl``) is a header line, the normalized
messages of device_agents/wire/PROTOCOL.md exactly as the board sent them, and an end line. The
``Benchmark`` below is derived from those lines and never stored on its own, so a run cut short
by Ctrl-C or a crash is read back the same way as a complete one.

Schema history (``SCHEMA_VERSION``, in every header and run.json; layout in harness.results.store):
- 1: first version.
- 2: runs of several kinds in one store. run.json has ``kind``: "benchmark" (``harness run``,
  files under ``benchmarks/``) or "profile" (``harness analyze --profile``, files under
  ``profiles/``: a header, the agent's profile-mode messages verbatim, every ``round`` of raw
  samples included, an end line). Every ``--json`` object carries ``kind`` too. A version 1 run
  has no ``kind`` and is read as a benchmark run; its files are read unchanged.
  Added later, without a new version: run.json of a ``failed`` run has ``error`` (the message); the
  end line's and ``--json``'s ``error`` has ``hint`` and ``file`` for errors found on the host too.
- 2 (unchanged version): run.json of an interrupted run names the signal that stopped it:
  ``"signal"``: "SIGINT" (Ctrl-C), "SIGTERM" or "SIGHUP".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import MeasurementError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # what this harness reads back (store.read_record)


@dataclass(frozen=True)
class Block:
    """One block of one mode: its loop samples, per-stage samples and the board's state after it."""

    mode: str  # "with" | "without"
    index: int
    loop_ns: tuple[int, ...]
    stages: dict[str, tuple[int, ...]]
    temp_c: float | None
    freq_khz: int | None


@dataclass(frozen=True)
class Benchmark:
    """Everything one benchmark measured, raw. Validated on construction."""

    target: str
    model: str
    model_sha256: str
    threads: int
    plan: dict[str, Any]
    hello: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    resolved_plan: dict[str, Any] = field(default_factory=dict)
    first_invoke_ns: int | None = None
    warmup_ns: tuple[int, ...] = ()
    blocks: tuple[Block, ...] = ()
    summary: dict[str, Any] | None = None
    extra: tuple[dict[str, Any], ...] = ()  # messages of types this version does not interpret
    model_facts: dict[str, Any] = field(default_factory=dict)  # host-side analysis totals (flops, ...)
    pushed_bytes: int = 0
    push_ns: int = 0
    error: dict[str, Any] | None = None
    end: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for b in self.blocks:
            if b.mode not in ("with", "without"):
                raise MeasurementError(f"{self.target}: block {b.index} has unknown mode {b.mode!r}")
            if any(len(v) != len(b.loop_ns) for v in b.stages.values()):
                raise MeasurementError(f"{self.target}: block {b.index} ({b.mode}) has stage sample "
                                       "counts that differ from its loop samples")
            if any(x < 0 for x in b.loop_ns):
                raise MeasurementError(f"{self.target}: negative loop sample in block {b.index}")

    @property
    def complete(self) -> bool:
        """True when the board sent its summary and no error, and samples of both modes came:
        every planned sample is here. A benchmark without samples is never complete."""
        return (self.summary is not None and self.error is None
                and any(b.loop_ns for b in self.blocks if b.mode == "with")
                and any(b.loop_ns for b in self.blocks if b.mode == "without"))

    def loop(self, mode: str) -> list[int]:
        """All loop samples of one mode, in the order they were measured."""
        return [x for b in self.blocks if b.mode == mode for x in b.loop_ns]

    def stage(self, name: str, mode: str = "with") -> list[int]:
        return [x for b in self.blocks if b.mode == mode for x in b.stages.get(name, ())]

    @property
    def runtime(self) -> str | None:
        rt = self.hello.get("runtime") or {}
        return rt.get("name")

    @property
    def runtime_version(self) -> str | None:
        rt = self.hello.get("runtime") or {}
        return rt.get("version")

    @property
    def emulated(self) -> bool:
        return bool(self.hello.get("emulated", False))


def from_lines(header: dict[str, Any], lines: list[dict[str, Any]]) -> Benchmark:
    """Rebuild a Benchmark from a header and the messages that followed it, in order."""
    fields: dict[str, Any] = {}
    blocks: list[Block] = []
    extra: list[dict[str, Any]] = []
    pushed = push_ns = 0
    for msg in lines:
        kind = msg.get("type")
        if kind == "hello":
            fields["hello"] = msg
        elif kind == "model":
            fields["model_info"] = msg
        elif kind == "plan":
            fields["resolved_plan"] = msg
        elif kind == "first_invoke":
            fields["first_invoke_ns"] = int(msg["ns"])
        elif kind == "warmup":
            fields["warmup_ns"] = tuple(int(x) for x in msg["loop_ns"])
        elif kind == "samples":
            env = msg.get("env") or {}
            blocks.append(Block(
                mode=msg["mode"], index=int(msg["block"]), loop_ns=tuple(int(x) for x in msg["loop_ns"]),
                stages={k: tuple(int(x) for x in v) for k, v in (msg.get("stages") or {}).items()},
                temp_c=env.get("temp_c"), freq_khz=env.get("freq_khz"),
            ))
        elif kind == "summary":
            fields["summary"] = msg
        elif kind == "push":
            pushed += int(msg.get("bytes", 0))
            push_ns += int(msg.get("ns", 0))
        elif kind in ("error", "end"):
            # the board's error and the host's account of it (which adds the hint) are merged
            error = msg if kind == "error" else msg.get("error")
            if error:
                merged = dict(fields.get("error") or {})
                merged.update({k: v for k, v in error.items() if v is not None and k not in ("v", "type")})
                fields["error"] = merged
            if kind == "end":
                fields["end"] = msg
        elif kind != "progress":
            extra.append(msg)
    try:
        return Benchmark(
            target=header["target"], model=header["model"], model_sha256=header["model_sha256"],
            threads=int(header["threads"]), plan=header.get("plan", {}), blocks=tuple(blocks),
            model_facts=header.get("model_facts") or {},
            extra=tuple(extra), pushed_bytes=pushed, push_ns=push_ns, **fields,
        )
    except KeyError as exc:
        raise MeasurementError(f"benchmark header lacks {exc}") from exc
