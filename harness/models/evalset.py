"""The evaluation pass's samples, prepared on the host: one real-valued set, each model's own codes.

Where the samples come from (harness.plan.EvalPlan): an --eval file (arrays ``x`` and ``y``, or
keyed by input name plus ``y``; ``y``, the labels, stays on the host), the timed loop's --inputs
file (read as the board reads it: an .npy for a one-input model, an .npz by input name, else
``x``, else file order), or the timed loop's seeded random inputs (``tflite_agent.random_input``
with the plan's seed: on a Linux board the very inputs the timed loop cycles through).

An ``EvalSet`` is kept in the input domain of the model it was read or drawn for, its *domain
model* (for a quantized variant: its float32 base): real values for a float input, or the codes
of a quantized input together with their scale and zero point (random data for an int8-only
model is drawn as codes, as the timed loop draws it). ``for_model`` converts the one set for each
model with that model's own input quantization: q = round(x / scale) + zero_point, rounded half
away from zero as TFLite's QUANTIZE rounds, clipped to the dtype; codes are dequantized first
where a model takes real values or other codes. So a float32 base and its int8 variants receive
the same real-valued samples, each in the form it takes them. ``write`` stores one model's
samples as an .npz keyed by input name, the file staged on the board like an --inputs file.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agents.linux.tflite_agent import AgentFailure, random_input
from harness.errors import ConfigError, StoreError
from harness.models.analysis import load_model
from harness.models.files import sha256
from harness.plan import EvalInputs, EvalPlan

HINT = ("an eval file holds `x` (N stacked samples) and `y` (N labels), or one array per input name "
        "plus `y`; harness analyze MODEL lists the inputs")


@dataclass(frozen=True)
class InputSpec:
    """One model input as the runtimes see it (subgraph 0, as LiteRT and TFLite Micro run it)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: float32, int8, uint8, ...
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """True for integer codes of real values (a scale above 0), false for real values or raw integers."""
        return self.scale > 0 and np.dtype(self.dtype).kind in "iu"


@dataclass(frozen=True, eq=False)
class EvalSet:
    """N samples, one stacked array (N, *shape) per input of the domain model, and their labels.

    ``codes[i]`` is (scale, zero_point) when column i holds quantized codes, None for real values
    (or raw integers, which only a model of the same dtype takes).
    """

    source: str  # harness.plan.EvalPlan.label
    names: tuple[str, ...]
    columns: tuple[np.ndarray, ...]
    codes: tuple[tuple[float, int] | None, ...]
    labels: np.ndarray | None = None

    @property
    def samples(self) -> int:
        return len(self.columns[0])

    def sha256(self) -> str:
        """The digest of the samples (not the labels): equal for every model given this set."""
        h = hashlib.sha256()
        for name, column, codes in zip(self.names, self.columns, self.codes, strict=True):
            h.update(f"{name}|{column.dtype.str}|{column.shape}|{codes}|".encode())
            h.update(np.ascontiguousarray(column).tobytes())
        return h.hexdigest()


def model_inputs(path: Path) -> tuple[InputSpec, ...]:
    """The inputs of subgraph 0 of the .tflite at ``path``, with their quantization."""
    from ai_edge_litert import schema_py_generated as fb

    model = load_model(path)
    sg = model.subgraphs[0]
    type_names = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    specs = []
    for i in sg.inputs or []:
        t = sg.tensors[i]
        q = t.quantization
        scales = list(q.scale) if q is not None and q.scale is not None else []
        zps = list(q.zeroPoint) if q is not None and q.zeroPoint is not None else []
        name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
        specs.append(InputSpec(name, tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                               type_names.get(t.type, f"type{t.type}"),
                               float(scales[0]) if scales else 0.0, int(zps[0]) if zps else 0))
    return tuple(specs)


def _fail(message: str, hint: str = HINT) -> ConfigError:
    return ConfigError(message, code="bad_inputs", hint=hint)


def _stack(array: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    """``array`` as N stacked samples (N, *shape): one sample, N samples, or N of a batch-1 input."""
    shape = spec.shape
    if array.shape == shape:
        return array[None]
    if array.shape[1:] == shape:
        return array
    if shape and shape[0] == 1 and array.shape[1:] == shape[1:]:
        return array[:, None]
    raise _fail(f"{where} has shape {array.shape} but input {spec.name!r} needs {shape} (or N stacked samples)")


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """Class indices from ``y``: N integers (N or N x 1), or N rows of scores or one-hot (their argmax)."""
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    elif y.ndim in (1, 2):
        y = y.reshape(-1)
    else:
        raise _fail(f"{where}: y has shape {y.shape}; labels are N class indices (or N rows of one-hot)")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise _fail(f"{where}: y holds values that are not class indices")
    if y.dtype.kind not in "iuf":
        raise _fail(f"{where}: y has dtype {y.dtype}; labels are class indices")
    return y.astype(np.int64)


def load(path: Path, specs: Sequence[InputSpec], source: str, limit: int | None = None) -> EvalSet:
    """The samples of an --eval or --inputs file for a model with inputs ``specs``, as real values
    (or raw integers) as the file holds them, at most ``limit`` of them; ``y`` becomes the labels."""
    name = path.name
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise _fail(f"cannot read {name}: {exc}") from exc
    labels = None
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise _fail(f"{name} holds one array but the model has {len(specs)} inputs")
        arrays = [data]
    else:
        keys = list(data.keys())
        inputs = [k for k in keys if k != "y"]
        names = [s.name for s in specs]
        if all(n in keys for n in names):
            arrays = [data[n] for n in names]
        elif len(specs) == 1 and "x" in keys:
            arrays = [data["x"]]
        elif len(inputs) == len(specs):
            arrays = [data[k] for k in inputs]
        else:
            raise _fail(f"{name} has arrays {keys}; the model's inputs are {names}")
        if "y" in keys:
            labels = _labels(np.asarray(data["y"]), name)
    columns = [_stack(np.asarray(a), s, name) for a, s in zip(arrays, specs, strict=True)]
    n = min(len(c) for c in columns)
    if n == 0:
        raise _fail(f"{name} holds no samples")
    if labels is not None and len(labels) != n:
        raise _fail(f"{name}: y holds {len(labels)} labels for {n} samples")
    n = min(n, limit or n)
    return EvalSet(source, tuple(s.name for s in specs), tuple(c[:n] for c in columns),
                   (None,) * len(specs), labels[:n] if labels is not None else None)


def random_set(specs: Sequence[InputSpec], seed: int, n: int) -> EvalSet:
    """``n`` seeded random samples drawn exactly as the Linux agent draws its timed loop's inputs:
    real values for float inputs, every code of the dtype for integer inputs (kept as codes)."""
    rng = np.random.default_rng(seed)
    details = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    try:
        pool = [[random_input(d, rng, np) for d in details] for _ in range(n)]
    except AgentFailure as exc:
        raise _fail(exc.message, hint="give the samples with --eval FILE.npz") from exc
    columns = tuple(np.stack([sample[i] for sample in pool]) for i in range(len(specs)))
    codes = tuple((s.scale, s.zero_point) if s.quantized else None for s in specs)
    return EvalSet("random", tuple(s.name for s in specs), columns, codes)


def quantize(real: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Real values as the codes of ``spec``: round(x / scale) + zero_point, half away from zero, clipped."""
    scaled = real / spec.scale
    rounded = np.where(scaled >= 0, np.floor(scaled + 0.5), np.ceil(scaled - 0.5))
    info = np.iinfo(np.dtype(spec.dtype))
    return np.clip(rounded + spec.zero_point, info.min, info.max).astype(spec.dtype)


def _convert(column: np.ndarray, codes: tuple[float, int] | None, spec: InputSpec, where: str) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if codes is None and column.dtype.kind == "f" and dtype.kind == "f":
        return column.astype(dtype)
    if codes is None and column.dtype == dtype:
        return column  # integers in the model's own dtype: taken as they are
    if codes is not None and spec.quantized and codes == (spec.scale, spec.zero_point) and column.dtype == dtype:
        return column
    if codes is not None:
        real = (column.astype(np.float64) - codes[1]) * codes[0]
    elif column.dtype.kind == "f":
        real = column.astype(np.float64)
    else:
        raise _fail(f"{where} holds {column.dtype} values but input {spec.name!r} takes {dtype}",
                    hint="give real values (float) in the eval file; they are quantized for each model")
    if dtype.kind == "f":
        return real.astype(dtype)
    if not np.all(np.isfinite(real)):
        raise _fail(f"{where} holds values that are not finite for the {dtype} input {spec.name!r}")
    if spec.quantized:
        return quantize(real, spec)
    if dtype.kind in "iu" and np.all(real == np.round(real)):
        return real.astype(dtype)
    raise _fail(f"{where}: input {spec.name!r} takes {dtype} values without a scale, and the samples "
                "are not whole numbers", hint="give the input's own values in the eval file")


def for_model(eset: EvalSet, specs: Sequence[InputSpec], model: str) -> dict[str, np.ndarray]:
    """The set's samples for the model ``model`` with inputs ``specs``: {input name: (N, *shape)
    array in that input's dtype}. Inputs are matched by name, else by position."""
    where = f"the eval samples ({eset.source}) for {model}"
    if len(specs) != len(eset.names):
        raise _fail(f"{where}: {len(eset.names)} inputs in the set, {len(specs)} in the model")
    index = {n: i for i, n in enumerate(eset.names)}
    order = [index[s.name] for s in specs] if all(s.name in index for s in specs) else list(range(len(specs)))
    out: dict[str, np.ndarray] = {}
    for spec, i in zip(specs, order, strict=True):
        column = eset.columns[i]
        if column.shape[1:] != spec.shape:
            raise _fail(f"{where}: samples of shape {column.shape[1:]}, input {spec.name!r} needs {spec.shape}")
        out[spec.name] = np.ascontiguousarray(_convert(column, eset.codes[i], spec, where))
    return out


def write(arrays: dict[str, np.ndarray], path: Path) -> None:
    """An .npz keyed by input name. Written entry by entry (np.savez takes the names as keyword
    arguments, and an input may be called "file"); fixed zip timestamps make equal samples equal
    files, which board caches then reuse."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def prepare(plan: EvalPlan, model: Path, domain: Path, seed: int, directory: Path) -> EvalInputs:
    """``model``'s eval samples, written under ``directory``: the set read or drawn for the domain
    model ``domain`` (``model`` itself, or a variant's float32 base), converted for ``model``.
    Raises ConfigError (code ``bad_inputs``) naming the file and the model when they do not fit."""
    specs = model_inputs(model)
    domain_specs = specs if domain == model else model_inputs(domain)
    try:
        if plan.source == "random":
            eset = random_set(domain_specs, seed, plan.as_dict()["samples"])
        else:
            assert plan.path is not None  # EvalPlan checks it
            eset = load(plan.path, domain_specs, plan.label, plan.samples)
    except ConfigError as exc:  # name the model the file was read for
        raise ConfigError(f"{domain.name}: {exc.message}", code=exc.code, hint=exc.hint) from exc
    arrays = for_model(eset, specs, model.name)
    digest = eset.sha256()
    path = directory / f"{model.stem}-{sha256(model)[:12]}-{digest[:12]}.npz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write(arrays, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="free space on that disk, or pass --results DIR on another one") from exc
    labels = tuple(int(v) for v in eset.labels) if eset.labels is not None else None
    return EvalInputs(path=path, source=eset.source, samples=eset.samples, set_sha256=digest, labels=labels)
