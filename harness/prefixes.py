"""Per-layer time on the device, for runtimes without a profiler: timing growing model prefixes.

LiteRT's Python API exposes no per-operator profiler. So for a model of N ops, harness builds N+1
*prefix* models on the host: prefix k keeps ops 0..k-1 of the main subgraph (in execution order),
drops the rest, and makes every tensor those ops produce and nothing consumes a graph output, so
no kept op is dead code. Prefix 0 has no ops at all: its Invoke is the runtime's fixed overhead.
The board runs ``device_agents/prefix_timer.py``, which times Invoke of every prefix and of the
original model in interleaved rounds (ABBA order, raw samples kept). Then, per round r,

    layer i time = T(prefix i+1, t) - T(prefix i, t)

where t is one *turn*: each round gives every model a few Invokes per turn, models taking turns
in alternating order, so prefixes i and i+1 are timed right beside each other and drift or a
burst of load cancels in the difference. A layer's time is the median of its per-turn
differences. Medians of differences do not
telescope, so "the layers add up to the whole model" is a real check:
``overhead + sum(layers)`` against the median Invoke of the original model, reported as
``sum_check`` (relative error) with its standard error from the samples' own noise
(``sum_check_se``, bootstrap over turns). Negative layer times are kept as measured: they mean the layer
is below the noise, and clipping them would bias the sum.

Caveat, stated in every profile: with XNNPACK (or any delegate) on, the full model may fuse ops
that a prefix boundary separates, so per-layer times are most faithful with ``xnnpack = off``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import store
from harness.analysis import ModelAnalysis, analyze, analyze_model, load_model, main_subgraph
from harness.config import Target
from harness.errors import AgentError, ConfigError, MeasurementError
from harness.summary import summarize
from harness.transports.base import Transport

PROTOCOL_VERSION = 1
HEARTBEATS_MISSED = 5  # as harness.drivers.linux: missed heartbeats before the board-side timer exits


@dataclass(frozen=True)
class Prefix:
    """Prefix model ``ops`` ops long (0 = no ops), written to ``path``."""

    ops: int
    path: Path
    last_op: str | None  # type of op ops-1, None for the empty prefix


def build_prefixes(model_path: Path | str, out_dir: Path | str) -> tuple[Prefix, ...]:
    """Write prefix_000.tflite (no ops) .. prefix_NNN.tflite (all N ops) into ``out_dir``.

    Weights no kept op reads are dropped from each prefix, so the files total about N/2 models.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = load_model(Path(model_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sg_index = main_subgraph(model)
    ops = model.subgraphs[sg_index].operators or []
    n_ops = len(ops)
    names = analyze_model(model).ops
    prefixes = []
    for k in range(n_ops + 1):
        prefix = _prefix_model(model, sg_index, k)
        path = out / f"prefix_{k:03d}.tflite"
        flatbuffer_utils.write_model(prefix, str(path))
        prefixes.append(Prefix(k, path, names[k - 1].type if k else None))
    return tuple(prefixes)


def _prefix_model(model: Any, sg_index: int, k: int) -> Any:
    """A deep copy of ``model`` whose main subgraph runs only its first ``k`` ops."""
    from ai_edge_litert import schema_py_generated as fb

    # Deep-copy the graph but not the weights: prefixes share the original's buffer arrays
    # (read-only here), which keeps building N prefixes cheap for large models.
    buffers, model.buffers = model.buffers, None
    try:
        m = copy.deepcopy(model)
    finally:
        model.buffers = buffers
    m.buffers = [copy.copy(b) for b in buffers]
    sg = m.subgraphs[sg_index]
    sg.operators = list((sg.operators or [])[:k])
    produced: list[int] = []
    consumed: set[int] = set()
    for op in sg.operators:
        consumed.update(i for i in (op.inputs or []) if i >= 0)
        produced.extend(i for i in (op.outputs or []) if i >= 0)
    outputs = [t for t in produced if t not in consumed]
    original_outputs = [t for t in (sg.outputs or []) if t in produced]
    outputs = list(dict.fromkeys(original_outputs + outputs)) or list(sg.inputs or [])
    sg.outputs = outputs
    # Drop the data of buffers only the removed ops read (other subgraphs keep theirs).
    used = {i for op in sg.operators for i in (op.inputs or []) if i >= 0}
    keep_buffers = {sg.tensors[i].buffer for i in used}
    for s, other in enumerate(m.subgraphs):
        if s != sg_index:
            keep_buffers.update(t.buffer for t in (other.tensors or []))
    for t_index, t in enumerate(sg.tensors or []):
        if t.buffer and t.buffer not in keep_buffers and t_index not in used:
            m.buffers[t.buffer].data = None
    for sig in m.signatureDefs or []:
        if sig.subgraphIndex == sg_index:
            inputs = set(sg.inputs or [])
            sig.outputs = []
            for t in outputs:
                if t in inputs:
                    continue
                tm = fb.TensorMapT()
                tm.name, tm.tensorIndex = sg.tensors[t].name, t
                sig.outputs.append(tm)
    return m


# --- the host side of a profile -------------------------------------------------------------

@dataclass(frozen=True)
class LayerTime:
    """One op's measured time (ns, median of paired per-round differences) next to its FLOPs."""

    index: int
    type: str
    ns: float
    flops: int | None
    time_share: float   # of sum(layers), 0..1
    flops_share: float | None  # of the model's counted FLOPs, 0..1

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "ns": round(self.ns), "flops": self.flops,
                "time_share": self.time_share, "flops_share": self.flops_share}


@dataclass(frozen=True)
class LayerProfile:
    """Per-layer times of one model on one board, with the sum check and every raw sample.

    ``whole_ns``: median Invoke of the original model. ``overhead_ns``: median Invoke of the
    empty prefix. ``sum_check``: (overhead + sum of layers - whole) / whole, and ``sum_check_se``
    its standard error from the samples' own noise (bootstrap over turns). ``clock``: "wall"
    (perf_counter_ns) or "cpu" (the Invoking thread's CPU time, threads = 1 only). ``rounds_ns``:
    [round][prefix 0..N, then the original model] -> that model's Invoke samples in the round.
    """

    model: str
    target: str
    runtime: str
    threads: int
    xnnpack: bool
    layers: tuple[LayerTime, ...]
    whole_ns: float
    overhead_ns: float
    sum_ns: float
    sum_check: float
    rounds_ns: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)
    slices: int = 1
    clock: str = "wall"
    notes: tuple[str, ...] = ()
    sum_check_se: float = float("nan")
    method: str = "prefix differencing (prefix_timer.py)"

    def heaviest(self, n: int = 5) -> tuple[LayerTime, ...]:
        return tuple(sorted(self.layers, key=lambda layer: layer.ns, reverse=True)[:n])

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "runtime": self.runtime, "threads": self.threads,
                "xnnpack": self.xnnpack, "method": self.method,
                "clock": self.clock, "slices": self.slices,
                "whole_ns": round(self.whole_ns), "overhead_ns": round(self.overhead_ns),
                "sum_ns": round(self.sum_ns), "sum_check": self.sum_check,
                "sum_check_se": self.sum_check_se,
                "layers": [layer.to_json() for layer in self.layers],
                "rounds_ns": [[list(s) for s in r] for r in self.rounds_ns], "notes": list(self.notes)}


def layer_profile(analysis: ModelAnalysis, rounds_ns: Sequence[Sequence[Sequence[int]]], *,
                  slices: int = 1, model: str = "", target: str = "", runtime: str = "", threads: int = 1,
                  xnnpack: bool = False, clock: str = "wall") -> LayerProfile:
    """Per-layer times from raw samples: ``rounds_ns[r][k]`` are the Invoke times (ns) of prefix k
    (k = 0..N) in round r, and ``rounds_ns[r][N+1]`` those of the original model, taken in
    ``slices`` equal turns per round. The unit of pairing is one turn: each model's median in a
    turn, differenced with the previous prefix's median of the same turn (timed right beside it).
    """
    n = len(analysis.ops)
    if (not rounds_ns or slices < 1
            or any(len(r) != n + 2 or any(not s or len(s) % slices for s in r) for r in rounds_ns)):
        raise MeasurementError(f"{model}: expected {n + 2} timed models per round ({n} ops + empty prefix + "
                               f"whole model), each with samples in each of {slices} turn(s)",
                               target=target or None)
    turns = []
    for r in rounds_ns:
        for t in range(slices):
            turns.append([statistics.median(s[t * (len(s) // slices):(t + 1) * (len(s) // slices)]) for s in r])
    layer_ns = [statistics.median(u[i + 1] - u[i] for u in turns) for i in range(n)]
    overhead = statistics.median(u[0] for u in turns)
    whole = statistics.median(u[n + 1] for u in turns)
    total = sum(layer_ns)
    layers = _layers(analysis, layer_ns)
    notes = []
    if xnnpack:
        notes.append("XNNPACK on: ops the whole model fuses are split at prefix boundaries; "
                     "run with xnnpack off for per-kernel times")
    negative = [op.index for op, ns in zip(analysis.ops, layer_ns, strict=True) if ns < 0]
    if negative:
        notes.append(f"{len(negative)} layer(s) measured below zero (below the noise): ops "
                     f"{', '.join(map(str, negative))}")
    return LayerProfile(model, target, runtime, threads, xnnpack, layers, whole, overhead, total,
                        (overhead + total - whole) / whole if whole else float("nan"),
                        tuple(tuple(tuple(int(x) for x in s) for s in r) for r in rounds_ns), slices, clock,
                        tuple(notes), _bootstrap_se(turns))


BOOTSTRAP = 200  # resamples; the standard error of a standard error this way is about 5 %


def _bootstrap_se(turns: list[list[float]]) -> float:
    """Standard error of ``sum_check``: recompute it over turns resampled with replacement.

    It is the noise of the measurement itself, so a sum check within a few of these is what
    noise alone would give; seeded, so a profile's figures are reproducible from its samples.
    """
    import numpy as np

    t = np.asarray(turns, dtype=float)
    if len(t) < 2:
        return float("nan")
    rng = np.random.default_rng(0)
    checks = []
    for _ in range(BOOTSTRAP):
        b = t[rng.integers(0, len(t), len(t))]
        whole = float(np.median(b[:, -1]))
        layers = float(np.median(np.diff(b[:, :-1], axis=1), axis=0).sum())
        checks.append((float(np.median(b[:, 0])) + layers - whole) / whole if whole else 0.0)
    return float(np.std(checks))



def _layers(analysis: ModelAnalysis, layer_ns: list[float]) -> tuple[LayerTime, ...]:
    """Each op's time with its share of the summed layer time and its share of the model's FLOPs."""
    total, flops_total = sum(layer_ns), analysis.total_flops
    return tuple(
        LayerTime(op.index, op.type, ns, op.flops, ns / total if total > 0 else 0.0,
                  (op.flops / flops_total) if (op.flops is not None and flops_total) else None)
        for op, ns in zip(analysis.ops, layer_ns, strict=True))

def firmware_profile(analysis: ModelAnalysis, ops: Sequence[dict[str, Any]], whole_ns: float, *,
                     model: str = "", target: str = "", runtime: str = "tflite-micro",
                     source: str = "firmware profiler") -> LayerProfile:
    """Per-layer times from a TFLite Micro firmware's own profiler (an ``op_profile`` message:
    ``ops`` = [{index, op, ns}] of one Invoke), checked against ``whole_ns``, the board's median
    Invoke (ns) of the same benchmark. One profiled Invoke has no spread: ``sum_check_se`` is NaN.

    Raises MeasurementError when the profiled ops are not this model's ops, in order.
    """
    got = [(int(o["index"]), str(o["op"])) for o in ops]
    want = [(op.index, op.type) for op in analysis.ops]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        raise MeasurementError(f"{model}: the firmware profiled {len(got)} ops, the model has {len(want)}; they "
                               f"differ from op {first} ({got[first] if first < len(got) else 'none'} vs "
                               f"{want[first] if first < len(want) else 'none'})", target=target or None,
                               hint="profile the same .tflite file that was benchmarked")
    layer_ns = [float(o["ns"]) for o in ops]
    total = sum(layer_ns)
    layers = _layers(analysis, layer_ns)
    notes = ("one profiled Invoke (the firmware keeps the last); the whole-model time is the median of "
             "the benchmark's Invoke samples",)
    return LayerProfile(model, target, runtime, 1, False, layers, whole_ns, 0.0, total,
                        (total - whole_ns) / whole_ns if whole_ns else float("nan"), (), 0, "device timer",
                        notes, float("nan"), source)


def firmware_profiles(run: Path, model: Path) -> list[LayerProfile]:
    """Per-layer profiles that MCU firmware profilers sent (``op_profile``) for ``model`` in the
    run in directory ``run``, one per benchmark of that exact file (matched by sha256).

    Raises ConfigError naming the run and the model when there is none.
    """
    analysis = analyze(model)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    _, benchmarks = store.load_run(run)
    profiles = []
    for b in benchmarks:
        s = summarize(b)
        for msg in b.extra:
            if msg.get("type") == "op_profile" and b.model_sha256 == sha and s.invoke is not None:
                target = b.target + (" (emulated)" if b.hello.get("emulated") else "")
                profiles.append(firmware_profile(analysis, msg.get("ops") or [], s.invoke.median, model=str(model),
                                                 target=target, source=str(msg.get("source", "firmware profiler"))))
    if not profiles:
        raise ConfigError(f"run {run.name} has no firmware op profile of {model.name}",
                          hint="benchmark this model on a serial target whose firmware has a profiler, "
                               "or use --profile TARGET on a local or ssh board")
    return profiles


def timer_path() -> Path:
    """device_agents/prefix_timer.py, as shipped with harness."""
    from importlib import resources

    return Path(str(resources.files("device_agents").joinpath("prefix_timer.py")))


def agent_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("device_agents").joinpath("tflite_agent.py")))


def profile(transport: Transport, python: str, model_path: Path | str, work_dir: Path | str, *,
            threads: int = 1, runtime: str = "auto", xnnpack: bool = False, rounds: int = 15,
            min_time_s: float = 0.005, slices: int = 5, seed: int = 0, clock: str = "wall",
            timeout_s: float = 600.0) -> LayerProfile:
    """Build the prefixes of ``model_path`` in ``work_dir``, time them on the board behind
    ``transport`` with prefix_timer.py, and return the per-layer profile.

    ``rounds``: interleaved rounds (each times every prefix); ``min_time_s``: seconds of samples
    per model per round, taken in ``slices`` turns. ``clock``: "wall" or "cpu" (see LayerProfile). The whole run must end within
    ``timeout_s`` seconds.
    """
    if clock not in ("wall", "cpu") or (clock == "cpu" and threads != 1):
        raise ConfigError(f"clock {clock!r} with {threads} threads: the CPU clock covers only the "
                          "calling thread", hint="use clock \"wall\", or \"cpu\" with 1 thread")
    path = Path(model_path)
    model = load_model(path)
    analysis = analyze_model(model, path=str(path), size_bytes=path.stat().st_size)
    prefixes = build_prefixes(path, work_dir)
    timer = transport.stage(timer_path()).remote_path
    agent = transport.stage(agent_path()).remote_path
    remote = [transport.stage(p.path).remote_path for p in prefixes] + [transport.stage(path).remote_path]
    argv = [python, timer, "--agent", agent, "--threads", str(threads), "--runtime", runtime,
            "--xnnpack", "on" if xnnpack else "off", "--rounds", str(rounds), "--min-time", str(min_time_s),
            "--slices", str(slices),
            "--seed", str(seed), "--lifeline"]
    heartbeat_s = getattr(transport, "heartbeat_s", None)  # newlines the transport writes to stdin
    if heartbeat_s:
        # The timer gives up on a host whose heartbeats stopped (a dead link the board missed),
        # after as many missed beats as the benchmark agent tolerates.
        argv += ["--heartbeat-timeout", repr(HEARTBEATS_MISSED * heartbeat_s)]
    argv += remote
    proc = transport.run(argv)
    slices_done = slices
    deadline = time.monotonic() + timeout_s
    runtime_name = runtime
    rounds_ns: list[list[list[int]]] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MeasurementError(f"{path.name}: prefix timing took over {timeout_s:.0f} s",
                                       target=transport.name, hint="lower --rounds or --min-time")
            try:
                line = proc.readline(timeout=min(left, 5.0))
            except EOFError:
                break
            if line is None:
                continue
            try:
                msg = json.loads(line)
            except ValueError as exc:
                raise AgentError(f"prefix_timer wrote a line that is not JSON: {line[:120]!r}",
                                 target=transport.name) from exc
            if msg.get("v") != PROTOCOL_VERSION:
                raise AgentError(f"prefix_timer speaks protocol {msg.get('v')!r}, harness {PROTOCOL_VERSION}",
                                 target=transport.name, hint="harness stages its own prefix_timer.py; re-run")
            kind = msg.get("type")
            if kind == "hello":
                runtime_name = (msg.get("runtime") or {}).get("name") or runtime
            elif kind == "plan":
                slices_done = int(msg.get("slices", slices))
            elif kind == "round":
                rounds_ns.append(msg["ns"] if clock == "wall" else msg["cpu_ns"])
            elif kind == "error":
                raise AgentError(f"{path.name}: prefix_timer failed: {msg.get('message')}",
                                 code=str(msg.get("code", "agent")), target=transport.name)
            elif kind == "summary":
                break
        status = proc.wait(timeout=10.0)
    finally:
        proc.terminate()  # idempotent; on any error it stops the timer on the board
    if not rounds_ns:
        raise AgentError(f"{path.name}: prefix_timer ended (status {status}) without timing anything: "
                         f"{proc.stderr_tail()[-400:]}", target=transport.name)
    return layer_profile(analysis, rounds_ns, slices=slices_done, model=str(path), target=transport.name,
                         runtime=runtime_name, threads=threads, xnnpack=xnnpack, clock=clock)



def profile_target(target: Target, model_path: Path | str, work_dir: Path | str, **options: Any) -> LayerProfile:
    """``profile`` on a target of targets.toml: its transport, its python, closed afterwards.

    Only boards that run commands (local, ssh) can time prefixes; microcontrollers would need
    firmware with TFLite Micro's profiler, which this does not provide.
    """
    from harness.transports import open_transport

    if target.kind not in ("local", "ssh"):
        raise ConfigError(f"per-layer timing needs a board that runs Python; {target.name} is kind "
                          f"{target.kind!r}", target=target.name,
                          hint="profile on a local or ssh target; for a microcontroller use `harness analyze "
                               "--fits` (arena) and a firmware build with the TFLM profiler")
    python = str(target.options.get("python", sys.executable if target.kind == "local" else "python3"))
    transport = open_transport(target)
    try:
        return profile(transport, python, model_path, work_dir, **options)
    finally:
        transport.close()
