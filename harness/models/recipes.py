"""What a variant is made from and how it is recorded: its calibration data and its recipe file.

A recipe file (``<stem>.<name>.recipe.json``, beside the variant ``<stem>.<name>.tflite``) is
how a variant finds its float32 base later (`harness run --variants`). ``recipe_for(model)``
returns the recipe of a variant file, or None for a model that has none; ``read_recipe(path)``
reads one file. Both raise ConfigError naming the file when it cannot be used; ``recipe_json``
builds the object harness quantize writes. Format, version ``RECIPE_VERSION`` (1)::

    recipe_version   1
    kind, name       the variant's kind (float16, dynamic_int8, weight_only_int8, int8, mixed)
                     and name (the kind, or "mixed-top3", "mixed-except-layers-3-7", ...)
    base             path (as given to harness quantize), resolved (absolute), sha256, size_bytes
    variant          file (name, in the recipe's folder), sha256, size_bytes, scheme, scheme_detail
    layers           int8: base op indices that compute in int8; ops: every layer as
                     {index, variant_index, type, precision}; for mixed: chosen (the layers
                     picked), by (flops | time | layers), top, invert, profile_run (for time)
    calibration      path, resolved, sha256, samples; null for kinds without calibration
    quantizer        name ("ai-edge-quantizer"), version, recipe (its get_quantization_recipe())
    harness_version  the harness that wrote it

Calibration data (``read_calibration``) is read as `harness run --inputs` reads an inputs file,
and recorded by path, hash and sample count.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.errors import ConfigError
from harness.models.analysis import analyze, load_model, main_subgraph
from harness.models.files import sha256

if TYPE_CHECKING:
    from harness.models.variants import Variant

QUANTIZER = "ai-edge-quantizer"
RECIPE_VERSION = 1
RECIPE_SUFFIX = ".recipe.json"
_HINT = "make the variant again with harness quantize (it rewrites the recipe beside it)"


@dataclass(frozen=True)
class Calibration:
    """Calibration samples for one model: ``samples`` are {signature input name: array}, one per
    sample, for the signature ``signature_key``."""

    path: Path
    sha256: str
    count: int
    signature_key: str
    samples: tuple[dict[str, Any], ...] = field(repr=False)


@dataclass(frozen=True)
class Recipe:
    """A recipe file as read. ``path`` is the recipe file; ``data`` the whole JSON object."""

    path: Path
    kind: str
    name: str
    base_path: str  # as given to harness quantize (relative to where it ran)
    base_resolved: Path
    base_sha256: str
    variant_file: str
    variant_sha256: str
    scheme: str
    int8_layers: tuple[int, ...]
    by: str | None
    top: int | None
    invert: bool
    profile_run: str | None
    quantizer_version: str
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def variant_path(self) -> Path:
        """The variant this recipe describes: ``variant_file`` in the recipe's own folder."""
        return self.path.parent / self.variant_file

    def locate_base(self, among: tuple[Path, ...] | list[Path] = ()) -> Path | None:
        """The base model file: the first of ``among`` whose sha256 is ``base_sha256``, else the
        recorded base path (resolved) when its content still matches; None when neither is."""
        for candidate in [*among, self.base_resolved]:
            if candidate.is_file() and sha256(candidate) == self.base_sha256:
                return candidate
        return None


def read_calibration(path: Path, model: Path) -> Calibration:
    """The calibration samples of ``path`` (an .npz, or .npy) for ``model``, read exactly as
    `harness run --inputs` reads an inputs file (the agent's ``inputs_from_file``: arrays keyed by
    input name, else ``x`` for a one-input model, else file order; N stacked samples), keyed by
    the model signature's input names as ai-edge-quantizer's calibration wants them.

    Raises ConfigError naming the file (code "no_signature" when the model has no signature).
    """
    import numpy as np

    from device_agents.linux.tflite_agent import AgentFailure, inputs_from_file

    key, names = _signature(model)
    analysis = analyze(model)
    details = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in analysis.inputs]
    try:
        samples = inputs_from_file(str(path), details, np)
    except AgentFailure as exc:
        raise ConfigError(f"--calibration {path}: {exc.message}",
                          hint="give an .npz with arrays keyed by input name (or x), N samples stacked") from exc
    return Calibration(path, sha256(path), len(samples), key,
                       tuple({n: a for n, a in zip(names, s, strict=True)} for s in samples))


def _signature(model: Path) -> tuple[str, tuple[str, ...]]:
    """(signature key, its input names in the main subgraph's input order) of the first signature."""
    fb = load_model(model)
    sigs = fb.signatureDefs or []
    if not sigs:
        raise ConfigError(f"{model} has no signature, which ai-edge-quantizer's calibration needs",
                          hint="convert the model with a signature (TFLiteConverter.from_saved_model or "
                               "from_keras_model write serving_default)", code="no_signature")
    sig = sigs[0]
    by_tensor = {m.tensorIndex: _text(m.name) for m in (sig.inputs or [])}
    inputs = fb.subgraphs[main_subgraph(fb)].inputs or []
    return _text(sig.signatureKey), tuple(by_tensor.get(i, f"input_{i}") for i in inputs)


def _text(value: bytes | str | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def recipe_path(variant: Path) -> Path:
    """``<variant minus .tflite>.recipe.json``."""
    return variant.with_name(variant.name.removesuffix(".tflite") + RECIPE_SUFFIX)


def recipe_for(model: Path) -> Recipe | None:
    """The recipe of the variant file ``model``, or None when there is none beside it.

    Raises ConfigError naming the recipe when it cannot be read, or describes another file
    (its ``variant.sha256`` is not the model's: the variant was replaced after quantizing).
    """
    path = recipe_path(Path(model))
    if not path.is_file():
        return None
    recipe = read_recipe(path)
    if Path(model).name != recipe.variant_file or sha256(Path(model)) != recipe.variant_sha256:
        raise ConfigError(f"{path} describes another file than {model} (its variant file or sha256 differs)",
                          hint=f"{_HINT}, or delete the stale recipe")
    return recipe


def read_recipe(path: Path) -> Recipe:
    """The recipe file at ``path``. Raises ConfigError naming the file and the field at fault."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror or exc}", hint=_HINT) from exc
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ConfigError(f"recipe {path} is not valid JSON ({exc})", hint=_HINT) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} is not a JSON object", hint=_HINT)
    version = data.get("recipe_version")
    if version != RECIPE_VERSION:
        raise ConfigError(f"recipe {path} has recipe_version {version!r}; this harness reads {RECIPE_VERSION}",
                          hint=_HINT)

    def get(key: str, kind: type, optional: bool = False) -> Any:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None and optional:
            return None
        if not isinstance(node, kind) or isinstance(node, bool) and kind is int:
            raise ConfigError(f"recipe {path}: field {key!r} is missing or not a {_type_name(kind)}", hint=_HINT)
        return node

    int8 = get("layers.int8", list)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in int8):
        raise ConfigError(f"recipe {path}: field 'layers.int8' must list op indices", hint=_HINT)
    return Recipe(Path(path), get("kind", str), get("name", str), get("base.path", str),
                  Path(get("base.resolved", str)), get("base.sha256", str), get("variant.file", str),
                  get("variant.sha256", str), get("variant.scheme", str), tuple(int8),
                  get("layers.by", str, optional=True), get("layers.top", int, optional=True),
                  bool(get("layers.invert", bool, optional=True)), get("layers.profile_run", str, optional=True),
                  get("quantizer.version", str), data)


def _type_name(kind: type) -> str:
    return {str: "string", int: "integer", list: "list", bool: "boolean"}.get(kind, kind.__name__)


def recipe_json(v: Variant, given: Path, chosen: Sequence[int] | None, top: int | None, invert: bool, by: str,
                profile_run: str | None, calib: Calibration | None, aeq_recipe: list[dict[str, Any]]) -> dict[str, Any]:
    """The recipe file's object for variant ``v`` of the model ``given`` (as the user named it)."""
    mixed = chosen is not None
    return {
        "recipe_version": RECIPE_VERSION, "kind": v.kind, "name": v.name,
        "base": {"path": str(given), "resolved": str(given.resolve()), "sha256": v.base_sha256,
                 "size_bytes": v.base_size_bytes},
        "variant": {"file": v.path.name, "sha256": v.sha256, "size_bytes": v.size_bytes, "scheme": v.scheme,
                    "scheme_detail": v.scheme_detail},
        "layers": {"int8": list(v.int8_layers), "chosen": None if chosen is None else list(chosen),
                   "by": ("layers" if top is None else by) if mixed else None, "top": top if mixed else None,
                   "invert": invert if mixed else False, "profile_run": profile_run if mixed and by == "time" else None,
                   "ops": [s.to_json() for s in v.layers]},
        "calibration": None if calib is None else {"path": str(calib.path), "resolved": str(calib.path.resolve()),
                                                   "sha256": calib.sha256, "samples": calib.count},
        "quantizer": {"name": QUANTIZER, "version": _quantizer_version(), "recipe": aeq_recipe},
        "harness_version": __version__,
    }


def _quantizer_version() -> str:
    try:
        return importlib.metadata.version(QUANTIZER)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
