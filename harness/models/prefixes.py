"""Prefix surgery: the models that per-layer timing runs, ops 0..k-1 of a model each.

LiteRT's Python API exposes no per-operator profiler. So for a model of N ops, harness builds N+1
*prefix* models on the host: prefix k keeps ops 0..k-1 of the main subgraph (in execution order),
drops the rest, and makes every tensor those ops produce and nothing consumes a graph output, so
no kept op is dead code. Prefix 0 has no ops at all: its Invoke is the runtime's fixed overhead.
The board runs ``device_agents/linux/tflite_agent.py profile``, which times Invoke of every prefix and of
the original model in interleaved rounds (ABBA order, raw samples kept). Then, per round r,

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models.analysis import analyze_model, load_model, main_subgraph


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
