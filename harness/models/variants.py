"""Variants of a float32 model, made with ai-edge-quantizer: which layers, which recipe, and the
recipe file that ties each variant to its base.

The API (stable; `harness quantize` and `harness run --variants` use it)::

    quantize(model, kind, out_dir, *, calibration=None, layers=None, top=None, invert=False,
             by="flops", layer_times=None, profile_run=None) -> Variant
    choose_layers(analysis, *, layers=None, top=None, by="flops", layer_times=None) -> tuple[int, ...]
    read_calibration(path, model) -> Calibration
    read_recipe(path) -> Recipe          recipe_for(model_path) -> Recipe | None

(``read_calibration``, ``read_recipe``, ``recipe_for``, ``Recipe`` and the recipe format live in
harness.models.recipes and are re-exported here.)

Kinds (``KINDS``): ``float16`` (float16 weights, ai-edge-quantizer's ``float_casting``),
``dynamic_int8`` (``dynamic_wi8_afp32``), ``weight_only_int8`` (``weight_only_wi8_afp32``),
``int8`` (``static_wi8_ai8``: int8 weights and activations, calibrated) and ``mixed`` (the same
static int8 on the chosen layers only, float32 elsewhere; with ``invert``, int8 everywhere
except the chosen layers). ``int8`` and ``mixed`` need calibration data, and the quantizer's
calibration needs the model's signature.

A *layer* is an op with constant weights of a type static int8 quantizes: CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and BATCH_MATMUL (``LAYER_TYPES``). Layers
are named by their base op index, as `harness analyze` prints it. ai-edge-quantizer picks an op
by searching a rule's regex in the op's output tensor names joined by ";" plus a trailing ";",
so a plain name also matches every op whose names merely contain it: each chosen layer gets the
regex ``^<its names, escaped>;$``, which matches that one op's full scope and nothing else.

The exported model is checked with harness.models.analysis before it is kept: every base op is
found in the variant by its output tensor names (the quantizer inserts QUANTIZE and DEQUANTIZE
ops, so raw indices shift), and for ``int8`` and ``mixed`` the layers computing in int8 must be
exactly those asked for, or the variant is discarded with an error naming the layers that differ.

Files: ``<out_dir>/<stem>.<name>.tflite`` and ``<stem>.<name>.recipe.json`` beside it, where
``name`` is the kind, or for mixed its choice (``variant_name``). Errors are ConfigErrors whose
``code`` says what the caller may do: ``usage`` (a bad choice of layers), ``needs_calibration``,
``no_signature``, ``quantizer_failed`` and ``nothing_quantized`` (this kind cannot be made;
others may), and ``layers_differ`` (the quantizer did not do what was asked).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.models.analysis import ModelAnalysis, OpInfo, analyze
from harness.models.files import sha256
from harness.models.recipes import (
    QUANTIZER,
    Calibration,
    Recipe,
    read_calibration,
    read_recipe,
    recipe_for,
    recipe_json,
    recipe_path,
    write_json,
)

__all__ = ["KINDS", "LAYER_TYPES", "NEEDS_CALIBRATION", "Calibration", "LayerState", "Recipe", "Variant",
           "choose_layers", "layer_ops", "quantize", "read_calibration", "read_recipe", "recipe_for",
           "scope_regex", "variant_name"]

log = logging.getLogger(__name__)

KINDS = ("float16", "dynamic_int8", "weight_only_int8", "int8", "mixed")
NEEDS_CALIBRATION = frozenset({"int8", "mixed"})
# harness op type -> ai-edge-quantizer's operation name (TFLOperationName) for that op
LAYER_TYPES = {"CONV_2D": "CONV_2D", "DEPTHWISE_CONV_2D": "DEPTHWISE_CONV_2D", "FULLY_CONNECTED": "FULLY_CONNECTED",
               "TRANSPOSE_CONV": "CONV_2D_TRANSPOSE", "BATCH_MATMUL": "BATCH_MATMUL"}


@dataclass(frozen=True)
class LayerState:
    """One layer of the base and what the variant made of it: its op index there, its precision."""

    index: int
    variant_index: int
    type: str
    precision: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "variant_index": self.variant_index, "type": self.type,
                "precision": self.precision}


@dataclass(frozen=True)
class Variant:
    """One variant as made: its files, its scheme per `harness analyze`, and its base."""

    kind: str
    name: str
    path: Path
    recipe_path: Path
    size_bytes: int
    sha256: str
    scheme: str
    scheme_detail: str
    base_path: Path
    base_size_bytes: int
    base_sha256: str
    layers: tuple[LayerState, ...]
    seconds: float  # wall time of quantizing, calibration included

    @property
    def int8_layers(self) -> tuple[int, ...]:
        return tuple(s.index for s in self.layers if s.precision == "int8")

    def to_json(self) -> dict[str, Any]:
        """The object of `harness quantize --json`: ``kind`` is the variant's kind (README)."""
        return {"kind": self.kind, "name": self.name, "path": str(self.path), "size_bytes": self.size_bytes,
                "scheme": self.scheme, "scheme_detail": self.scheme_detail, "sha256": self.sha256,
                "base": str(self.base_path), "base_sha256": self.base_sha256,
                "base_size_bytes": self.base_size_bytes, "recipe": str(self.recipe_path),
                "int8_layers": list(self.int8_layers), "layers": [s.to_json() for s in self.layers],
                "seconds": round(self.seconds, 3)}


# --- which layers ------------------------------------------------------------------------------

def layer_ops(analysis: ModelAnalysis) -> tuple[OpInfo, ...]:
    """The model's layers: ops of ``LAYER_TYPES`` with constant weights, in execution order."""
    return tuple(op for op in analysis.ops if op.type in LAYER_TYPES and op.params > 0)


def choose_layers(analysis: ModelAnalysis, *, layers: Sequence[int] | None = None, top: int | None = None,
                  by: str = "flops", layer_times: Mapping[int, float] | None = None) -> tuple[int, ...]:
    """The chosen layers' op indices, sorted: ``layers`` as given (each must be a layer), or the
    ``top`` heaviest by FLOPs (``by="flops"``) or by measured time (``by="time"``: ns per op
    index in ``layer_times``, from a stored profile of this same model). Ties go to the earlier op.

    Raises ConfigError with code "usage", naming the model and the value at fault.
    """
    model = Path(analysis.path).name
    candidates = layer_ops(analysis)
    known = ", ".join(str(op.index) for op in candidates) or "none"
    if (layers is None) == (top is None):
        raise ConfigError("a mixed variant needs either layers or top", hint="pass --mixed-top K or --mixed-layers LIST",
                          code="usage")
    if layers is not None:
        if not layers:
            raise ConfigError("no layers were named", hint="--mixed-layers 3,7,12 (op indices)", code="usage")
        by_index = {op.index: op for op in analysis.ops}
        for i in layers:
            if i not in {op.index for op in candidates}:
                what = f"op {i} ({by_index[i].type})" if i in by_index else f"op {i} (it has ops 0-{len(by_index) - 1})"
                raise ConfigError(f"{what} of {model} is not a layer that can be quantized; its layers are {known}",
                                  hint="pick op indices from `harness analyze MODEL` among those layers", code="usage")
        chosen = set(layers)
    else:
        assert top is not None
        if not 1 <= top <= len(candidates):
            raise ConfigError(f"--mixed-top {top}: {model} has {len(candidates)} layers ({known})",
                              hint=f"give a K from 1 to {len(candidates)}", code="usage")
        weight = _weights(analysis, candidates, by, layer_times)
        chosen = set(sorted((op.index for op in candidates), key=lambda i: (-weight[i], i))[:top])
    return tuple(sorted(chosen))


def _weights(analysis: ModelAnalysis, candidates: Sequence[OpInfo], by: str,
             layer_times: Mapping[int, float] | None) -> dict[int, float]:
    if by == "flops":
        return {op.index: float(op.flops or 0) for op in candidates}
    if by != "time" or layer_times is None:
        raise ConfigError(f"layers ranked by {by!r} need by='flops', or by='time' with layer times",
                          hint="pass --by-time RUN with a profile run of this model", code="usage")
    missing = [op.index for op in candidates if op.index not in layer_times]
    if missing:
        raise ConfigError(f"the profile has no time for layer(s) {', '.join(map(str, missing))} of "
                          f"{Path(analysis.path).name}", hint="profile the same model file: harness analyze "
                          "MODEL --profile TARGET", code="usage")
    return {op.index: float(layer_times[op.index]) for op in candidates}


def variant_name(kind: str, chosen: Sequence[int] = (), *, top: int | None = None, invert: bool = False,
                 by: str = "flops") -> str:
    """The name in the file names: the kind, or for mixed "mixed-top3", "mixed-except-top3",
    "mixed-top3-by-time", "mixed-layers-3-7-12", "mixed-except-layers-3-7-12"."""
    if kind != "mixed":
        return kind
    choice = f"top{top}" + ("-by-time" if by == "time" else "") if top is not None else \
        "layers-" + "-".join(map(str, chosen))
    return f"mixed-{'except-' if invert else ''}{choice}"


def scope_regex(op: OpInfo) -> str:
    """The ai-edge-quantizer rule regex that matches this op's scope (its output tensor names
    joined by ";", plus the trailing ";") exactly, and so no op whose names merely contain it."""
    return "^" + re.escape(";".join(t.name for t in op.outputs if t.name)) + ";$"


def _check_scopes(analysis: ModelAnalysis, chosen: Sequence[int]) -> None:
    scopes = [";".join(t.name for t in op.outputs if t.name) + ";" for op in analysis.ops]
    for i in chosen:
        rx = re.compile(scope_regex(analysis.ops[i]))
        hits = [k for k, s in enumerate(scopes) if rx.search(s)]
        if hits != [i]:
            raise ConfigError(f"op {i} of {Path(analysis.path).name} cannot be told apart by its output names "
                              f"(ops {', '.join(map(str, hits))} share them)",
                              hint="rename its output tensors when converting the model", code="usage")


# --- making one variant --------------------------------------------------------------------------

def quantize(model: Path, kind: str, out_dir: Path, *, calibration: Path | Calibration | None = None,
             layers: Sequence[int] | None = None, top: int | None = None, invert: bool = False,
             by: str = "flops", layer_times: Mapping[int, float] | None = None,
             profile_run: str | None = None) -> Variant:
    """Make the ``kind`` variant of the float32 ``model`` in ``out_dir``, check it, and write its
    recipe file beside it (replacing an earlier variant of the same name). For ``mixed``, give
    ``layers`` (op indices) or ``top`` (with ``by`` "flops", or "time" and ``layer_times``);
    ``profile_run`` is recorded as the source of ``layer_times``. Raises ConfigError (codes in
    the module docstring); nothing is left in ``out_dir`` for a variant that failed.

    While the quantizer runs, fds 1 and 2 are captured (it prints reports, and its interpreter
    logs from C++): call it from one thread at a time.
    """
    aeq = _quantizer()  # imported before the clock starts: Took is the kind's own cost
    started = time.perf_counter()
    model = Path(model)
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}", hint=f"pick from {', '.join(KINDS)}", code="usage")
    base = analyze(model)
    if base.scheme != "float32":
        raise ConfigError(f"{model} is already quantized (scheme {base.scheme})",
                          hint="quantize its float32 base model instead")
    chosen: tuple[int, ...] = ()
    if kind == "mixed":
        chosen = choose_layers(base, layers=layers, top=top, by=by, layer_times=layer_times)
        _check_mixed(base, chosen, invert)
    elif layers is not None or top is not None:
        raise ConfigError(f"layers are chosen for kind mixed only, not {kind}", code="usage")
    calib = _calibration(model, kind, calibration)
    name = variant_name(kind, chosen, top=top, invert=invert, by=by)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{model.stem}.{name}.tflite"
    if dest.resolve() == model.resolve():
        raise ConfigError(f"{dest} would overwrite the base model", hint="pass another --out DIR")
    tmp = out_dir / f".{dest.name}.{secrets.token_hex(4)}.tmp"  # the check decides if it becomes dest
    try:
        aeq_recipe = _run_quantizer(aeq, model, kind, base, chosen, invert, calib, tmp)
        result = analyze(tmp)
        if result.scheme == "float32":
            raise ConfigError(f"{QUANTIZER} left {model.name} all float32 for kind {kind} (it has no layer "
                              "that kind quantizes)", hint=f"leave {kind} out with --kinds", code="nothing_quantized")
        states = _layer_states(base, result)
        if kind in NEEDS_CALIBRATION:
            want = tuple(op.index for op in layer_ops(base) if kind == "int8" or (op.index in chosen) != invert)
            _check_int8(dest.name, base, states, want)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    variant = Variant(kind, name, dest, recipe_path(dest), dest.stat().st_size, sha256(dest), result.scheme,
                      result.scheme_detail, model, base.size_bytes, sha256(model), states,
                      time.perf_counter() - started)
    write_json(variant.recipe_path, recipe_json(variant, model, chosen if kind == "mixed" else None,
                                                top, invert, by, profile_run, calib, aeq_recipe))
    return variant


def _check_mixed(base: ModelAnalysis, chosen: tuple[int, ...], invert: bool) -> None:
    total = len(layer_ops(base))
    if len(chosen) == total:
        what = "every layer int8 is kind int8" if not invert else "no layer int8 is the float32 base"
        raise ConfigError(f"the {len(chosen)} chosen layers are all the layers of {Path(base.path).name}: "
                          f"{what}, not mixed", hint="choose fewer layers, or --kinds int8", code="usage")
    _check_scopes(base, chosen)


def _calibration(model: Path, kind: str, calibration: Path | Calibration | None) -> Calibration | None:
    if kind not in NEEDS_CALIBRATION:
        return None
    if calibration is None:
        raise ConfigError(f"{model.name}: kind {kind} needs calibration data",
                          hint="pass --calibration FILE.npz (arrays keyed by input name, or x)",
                          code="needs_calibration")
    return calibration if isinstance(calibration, Calibration) else read_calibration(calibration, model)


def _quantizer() -> Any:
    """The ai_edge_quantizer package, with its ``quantizer`` and ``recipe`` modules loaded."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its progress bars, where it leaves the choice to tqdm
    try:
        import ai_edge_quantizer.quantizer
        import ai_edge_quantizer.recipe
    except ImportError as exc:
        raise ConfigError(f"{QUANTIZER} cannot be imported: {exc}",
                          hint="pip install 'ai-edge-quantizer==0.10.0'") from exc
    return ai_edge_quantizer


def _run_quantizer(aeq: Any, model: Path, kind: str, base: ModelAnalysis, chosen: Sequence[int], invert: bool,
                   calib: Calibration | None, dest: Path) -> list[dict[str, Any]]:
    """Quantize with ai-edge-quantizer into ``dest``; the recipe it used, as JSON."""
    quantizer, recipe = aeq.quantizer, aeq.recipe
    try:
        with _quiet():
            q = quantizer.Quantizer(str(model))
            if kind == "float16":
                q.add_weight_only_config(regex=".*", operation_name="*", num_bits=16, algorithm_key="float_casting")
            elif kind == "mixed":
                if invert:
                    q.load_quantization_recipe(recipe.static_wi8_ai8())
                for i in chosen:
                    op = base.ops[i]
                    if invert:
                        q.update_quantization_recipe(regex=scope_regex(op), operation_name=LAYER_TYPES[op.type],
                                                     algorithm_key="no_quantize")
                    else:
                        q.add_static_config(regex=scope_regex(op), operation_name=LAYER_TYPES[op.type],
                                            activation_num_bits=8, weight_num_bits=8)
            else:
                q.load_quantization_recipe({"dynamic_int8": recipe.dynamic_wi8_afp32,
                                            "weight_only_int8": recipe.weight_only_wi8_afp32,
                                            "int8": recipe.static_wi8_ai8}[kind]())
            qsvs = q.calibrate({calib.signature_key: list(calib.samples)}) if calib and q.need_calibration else None
            q.quantize(qsvs, enable_progress_report=False).export_model(str(dest), overwrite=True)
            return json.loads(json.dumps(q.get_quantization_recipe()))  # its enums are str: plain JSON
    except Exception as exc:  # the quantizer raises anything (ValueError, KeyError, RuntimeError...)
        said = " ".join(str(exc).split())  # one line, though it may say several
        raise ConfigError(f"{QUANTIZER} could not make the {kind} variant of {model.name}: "
                          f"{type(exc).__name__}: {said}",
                          hint=f"leave {kind} out with --kinds, or report it with the model", code="quantizer_failed"
                          ) from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer prints reports and progress bars, and its interpreter logs to fd 2 from C++:
    capture fds 1 and 2 (stdout carries results only) and log what was said at debug level."""
    with tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        text = io.StringIO()
        try:
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text), \
                    warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                yield
            for w in warned:
                text.write(f"{w.category.__name__}: {w.message}\n")
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            captured.seek(0)
            said = text.getvalue() + captured.read().decode("utf-8", "replace")
            if said.strip():
                log.debug("%s said: %s", QUANTIZER, said.strip())


# --- checking it ---------------------------------------------------------------------------------

def _layer_states(base: ModelAnalysis, variant: ModelAnalysis) -> tuple[LayerState, ...]:
    """Each base layer found in the variant by its output tensor names, with its precision there."""
    by_names = {tuple(t.name for t in op.outputs): op for op in variant.ops}
    states = []
    for op in layer_ops(base):
        found = by_names.get(tuple(t.name for t in op.outputs))
        if found is None:
            raise ConfigError(f"{Path(variant.path).name}: layer {op.index} ({op.type}) of the base is not in "
                              f"the variant (no op writes its output tensors)",
                              hint=f"report it to {QUANTIZER} with the model", code="layers_differ")
        states.append(LayerState(op.index, found.index, op.type, found.precision))
    return tuple(states)


def _check_int8(name: str, base: ModelAnalysis, states: Sequence[LayerState], want: Sequence[int]) -> None:
    got = [s.index for s in states if s.precision == "int8"]
    if list(want) == got:
        return
    differ = [f"{s.index} ({s.type}: {s.precision}, asked {'int8' if s.index in want else 'float32'})"
              for s in states if (s.precision == "int8") != (s.index in want)]
    raise ConfigError(f"{name} does not hold the layers asked for in int8: layer(s) {'; '.join(differ)}",
                      hint=f"choose other layers, or report it to {QUANTIZER} with the model", code="layers_differ")
