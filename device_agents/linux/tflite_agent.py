#!/usr/bin/env python3
"""harness board agent: times a TFLite model's application loop with and without Invoke.

Runs on the board with only Python >= 3.8, numpy and one TFLite runtime. It never imports
harness. It writes JSON lines on stdout as documented in PROTOCOL.md beside this file; logs go
to stderr. All times are integer nanoseconds from time.perf_counter_ns (a monotonic clock).

    python3 tflite_agent.py run --model m.tflite --threads 1 ...   # measure
    python3 tflite_agent.py profile --rounds 15 ... M0.tflite M1 ...  # time a model's prefixes
    python3 tflite_agent.py eval --model m.tflite --inputs e.npz ... # outputs of every sample
    python3 tflite_agent.py power --model m.tflite --source ina3221 ... # power: idle, then Invoking
    python3 tflite_agent.py stream --model m.tflite --period-ns ...  # the loop fed by a schedule
    python3 tflite_agent.py probe                                    # describe the board
"""

import argparse
import contextlib
import gc
import glob
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import List, NamedTuple, Sequence, Tuple

PROTOCOL_VERSION = 1
AGENT_VERSION = "1.0"
RUNTIME_ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")
STAGES = ("load", "preprocess", "set_input", "invoke", "get_output", "postprocess")
INPUT_POOL = 16  # distinct random inputs cycled by the default load(i): caches see varied data
# An `eval` message carries at most this many output values, and one is sent at least every
# EVAL_CHUNK_S seconds: lines stay small, and the host hears from a slow model within its timeout.
EVAL_CHUNK_VALUES = 16384
EVAL_CHUNK_S = 1.0

clock = time.perf_counter_ns


class AgentFailure(Exception):
    """A failure reported to the host as an `error` message."""

    def __init__(self, code, message, file=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.file = file


_channel = sys.stdout  # where protocol lines go: the real stdout's own fd once claim_stdout() ran


def emit(kind, **fields):
    fields["v"] = PROTOCOL_VERSION
    fields["type"] = kind
    _channel.write(json.dumps(fields, separators=(",", ":")) + "\n")
    _channel.flush()


def claim_stdout():
    """Keep the real stdout for protocol lines only; everything else written to stdout goes to stderr.

    A pipeline's print or sys.stdout.write(".") would otherwise glue itself onto the next JSON
    line (which the host then drops), or pass for a message. Python-level writes are caught by
    pointing sys.stdout at stderr (as labgrid's agent does); OS-level ones (C libraries, a
    runtime's printf, os.write(1, ...), child processes) by pointing fd 1 itself at stderr, after
    duplicating the real stdout to a private fd that only emit() writes to. Call it before any
    user code or runtime loads. The private fd is not inherited by child processes.
    """
    global _channel
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    _channel = os.fdopen(private, "w", encoding="utf-8", newline="\n")
    sys.stdout = sys.stderr


# --- the board ---------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").strip("\x00\n ")
    except OSError:
        return None


def _number(path, scale):
    text = _read(path)
    try:
        return float(text) / scale if text is not None else None
    except ValueError:
        return None


def board_env():
    """Temperature (deg C, hottest thermal zone) and CPU0 frequency (kHz); None where unknown."""
    temps = []
    base = "/sys/class/thermal"
    if os.path.isdir(base):
        for zone in sorted(os.listdir(base)):
            t = _number(os.path.join(base, zone, "temp"), 1000.0)
            if t is not None and -40 < t < 150:
                temps.append(t)
    freq = _number("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", 1.0)
    return {"temp_c": max(temps) if temps else None, "freq_khz": int(freq) if freq else None}


def board_info():
    model = (_read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
             or _read("/sys/class/dmi/id/product_name"))
    cpu = None
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            cpu = value.strip()
            break
    info = {
        "model": model, "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "python": platform.python_version(),
    }
    info.update(board_env())
    return info


def _zone_order(name):
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else -1, name)


def read_thermal(root="/"):
    """Every thermal zone with a readable temperature, as {"zone", "type", "temp_c"}; None when
    the board has none (PROTOCOL.md, stream mode: the board's state)."""
    base = os.path.join(root, "sys", "class", "thermal")
    if not os.path.isdir(base):
        return None
    zones = []
    for name in sorted(os.listdir(base), key=_zone_order):
        if not name.startswith("thermal_zone"):
            continue
        temp = _number(os.path.join(base, name, "temp"), 1000.0)
        if temp is None or not -40 < temp < 150:
            continue
        zones.append({"zone": name, "type": _read(os.path.join(base, name, "type")), "temp_c": round(temp, 3)})
    return zones or None


def _khz(path):
    value = _number(path, 1.0)
    return int(value) if value is not None else None


def read_cpufreq(root="/"):
    """Every CPU's clock (kHz) and governor as {"cpu", "cur_khz", "min_khz", "max_khz",
    "governor"}; None without cpufreq (a container, a VM, a board without DVFS)."""
    base = os.path.join(root, "sys", "devices", "system", "cpu")
    if not os.path.isdir(base):
        return None
    cpus = []
    for name in sorted(os.listdir(base), key=_zone_order):
        freq = os.path.join(base, name, "cpufreq")
        if not (name.startswith("cpu") and name[3:].isdigit() and os.path.isdir(freq)):
            continue
        cur = _khz(os.path.join(freq, "scaling_cur_freq"))
        cpus.append({"cpu": int(name[3:]),
                     "cur_khz": cur if cur is not None else _khz(os.path.join(freq, "cpuinfo_cur_freq")),
                     "min_khz": _khz(os.path.join(freq, "scaling_min_freq")),
                     "max_khz": _khz(os.path.join(freq, "scaling_max_freq")),
                     "governor": _read(os.path.join(freq, "scaling_governor"))})
    return cpus or None


def read_devfreq(root="/"):
    """Every devfreq device (a Jetson's GPU, a Mali GPU, a memory bus) as {"name", "cur_hz",
    "max_hz"}; None where there is none."""
    base = os.path.join(root, "sys", "class", "devfreq")
    if not os.path.isdir(base):
        return None
    devices = []
    for name in sorted(os.listdir(base)):
        cur = _khz(os.path.join(base, name, "cur_freq"))
        if cur is not None:
            devices.append({"name": name, "cur_hz": cur, "max_hz": _khz(os.path.join(base, name, "max_freq"))})
    return devices or None


def parse_throttled(text):
    """The flags of `vcgencmd get_throttled` output ("throttled=0x50005"), or None."""
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "throttled":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def find_vcgencmd():
    """Raspberry Pi firmware's tool, where the board has it (older images keep it in /opt/vc)."""
    found = shutil.which("vcgencmd")
    if found is None and os.access("/opt/vc/bin/vcgencmd", os.X_OK):
        found = "/opt/vc/bin/vcgencmd"
    return found


def read_throttled(vcgencmd):
    """The throttle flags from ``vcgencmd get_throttled``; None without it, or when it fails."""
    if vcgencmd is None:
        return None
    try:
        done = subprocess.run([vcgencmd, "get_throttled"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=2.0)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(done.stdout.decode("utf-8", "replace")) if done.returncode == 0 else None


def board_state(root="/", vcgencmd=None):
    """The board's state for `board_state` messages: thermal zones, CPU clocks, devfreq clocks,
    Raspberry Pi throttle flags; each None where the board does not have it."""
    return {"thermal": read_thermal(root), "cpufreq": read_cpufreq(root), "devfreq": read_devfreq(root),
            "throttled": read_throttled(vcgencmd)}


def hottest(state):
    """The hottest zone of a board_state (deg C), or None without thermal zones."""
    zones = state.get("thermal") or []
    return max(z["temp_c"] for z in zones) if zones else None


# --- the runtime -------------------------------------------------------------------------

def _version_of(name):
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
        return None
    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
            "tensorflow": "tensorflow"}[name]
    for candidate in (dist, dist + "-cpu"):
        try:
            return metadata.version(candidate)
        except Exception:
            continue
    return None


def _load_runtime(name):
    """(Interpreter class, OpResolverType or None) of one runtime; raises ImportError."""
    if name == "ai_edge_litert":
        mod = importlib.import_module("ai_edge_litert.interpreter")
        return mod.Interpreter, getattr(mod, "OpResolverType", None)
    if name == "tflite_runtime":
        mod = importlib.import_module("tflite_runtime.interpreter")
        return mod.Interpreter, getattr(mod, "OpResolverType", None)
    tf = importlib.import_module("tensorflow")
    return tf.lite.Interpreter, getattr(tf.lite.experimental, "OpResolverType", None)


def available_runtimes():
    """Version of each runtime installed on the board (None where absent), without importing them."""
    found = {}
    for name in RUNTIME_ORDER:
        spec = importlib.util.find_spec(name)
        found[name] = (_version_of(name) or "unknown") if spec is not None else None
    return found


def pick_runtime(wanted):
    names = RUNTIME_ORDER if wanted == "auto" else (wanted,)
    errors = []
    for name in names:
        try:
            interpreter, resolver = _load_runtime(name)
        except Exception as exc:  # ImportError, or a broken install raising anything
            errors.append("%s: %s" % (name, exc))
            continue
        return name, interpreter, resolver
    raise AgentFailure(
        "runtime_missing",
        "no TFLite runtime could be imported (%s); install one for %s: pip install ai-edge-litert "
        "(or tflite-runtime on older boards)" % ("; ".join(errors), sys.executable))


# --- inputs ------------------------------------------------------------------------------

def random_input(detail, rng, np):
    shape = [max(1, int(d)) for d in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # quantized inputs: every code is a valid value, so the whole range is in-distribution
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise AgentFailure("bad_inputs", "input %r has dtype %s, which the agent cannot generate; "
                       "pass --inputs" % (detail["name"], dtype))


def _check_array(arr, detail, where, np):
    shape = tuple(int(d) for d in detail["shape"])
    if arr.dtype != np.dtype(detail["dtype"]):
        raise AgentFailure("bad_inputs", "%s has dtype %s but input %r needs %s"
                           % (where, arr.dtype, detail["name"], np.dtype(detail["dtype"])))
    if tuple(arr.shape) == shape:
        return [arr]
    if tuple(arr.shape[1:]) == shape:  # a stack of samples
        return [a for a in arr]
    if len(shape) > 0 and shape[0] == 1 and tuple(arr.shape[1:]) == shape[1:]:
        return [a[None] for a in arr]  # N samples of a batch-1 input
    raise AgentFailure("bad_inputs", "%s has shape %s but input %r needs %s (or N stacked samples)"
                       % (where, tuple(arr.shape), detail["name"], shape))


def inputs_from_file(path, details, np):
    """The samples of an inputs file: a list of samples, each a list of arrays in model input order.

    ``details`` are the model's inputs ({"name", "shape", "dtype"}, in order). A .npy feeds a
    one-input model; an .npz is matched by input name, else by "x" for a one-input model, else
    one array per input in file order. An array is one sample or N stacked samples; the file
    holds as many samples as its shortest column. Raises AgentFailure("bad_inputs") naming the
    file. The MCU driver imports this on the host, so every board kind reads a file alike.
    """
    name = os.path.basename(path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise AgentFailure("bad_inputs", "cannot read %s: %s" % (name, exc), path)
    if isinstance(data, np.ndarray):
        if len(details) != 1:
            raise AgentFailure("bad_inputs", "%s holds one array but the model has %d inputs; use an "
                               ".npz keyed by input name" % (name, len(details)), path)
        arrays = [data]
    else:
        keys = list(data.keys())
        by_name = [d["name"] for d in details]
        if all(n in keys for n in by_name):
            arrays = [data[n] for n in by_name]
        elif len(details) == 1 and "x" in keys:  # the usual x (inputs), y (labels) test file
            arrays = [data["x"]]
        elif len(keys) == len(details):
            arrays = [data[k] for k in keys]
        else:
            raise AgentFailure("bad_inputs", "%s has arrays %s; the model's inputs are %s"
                               % (name, keys, by_name), path)
    try:
        columns = [_check_array(a, d, name, np) for a, d in zip(arrays, details)]
    except AgentFailure as exc:
        exc.file = path
        raise
    count = min(len(c) for c in columns)
    if not count:
        raise AgentFailure("bad_inputs", "%s holds no samples" % name, path)
    return [[c[i] for c in columns] for i in range(count)]


# --- the user's pipeline -------------------------------------------------------------------

def load_pipeline(path):
    name = os.path.basename(path)
    try:
        spec = importlib.util.spec_from_file_location("harness_pipeline", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except SystemExit as exc:
        raise pipeline_exit(exc, path)
    except Exception as exc:
        raise AgentFailure("pipeline", "%s failed to load: %s" % (name, _where(exc, path)), path)
    hooks = {k: getattr(module, k) for k in ("load", "preprocess", "postprocess") if hasattr(module, k)}
    if not hooks:
        raise AgentFailure("pipeline", "%s defines none of load(i), preprocess(raw), postprocess(outputs)"
                           % name, path)
    return hooks


def _where(exc, path):
    """'line 12 in preprocess: ValueError: msg' for the innermost frame of the user's file."""
    at = _frame(exc, path)
    return "%s%s: %s" % (at + ": " if at else "", type(exc).__name__, exc)


def _frame(exc, path):
    """'line 12 in preprocess' for the innermost frame of the user's file in exc's traceback, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return ("line %d in %s" % (frames[-1].lineno, frames[-1].name)) if frames else ""


def pipeline_exit(exc, path):
    """The pipeline called sys.exit: without this the agent would just end, and the host could
    only quote the runtime's last stderr line as the reason."""
    at = _frame(exc, path)
    return AgentFailure("pipeline", "the pipeline %s called sys.exit(%s)%s; a pipeline must return, not exit"
                        % (os.path.basename(path), "" if exc.code is None else repr(exc.code),
                           " at " + at if at else ""), path)


# --- the measurement -----------------------------------------------------------------------

class Loop(object):
    """The application loop: load -> preprocess -> set inputs -> [invoke] -> outputs -> postprocess."""

    def __init__(self, interpreter, pool, hooks, pipeline_path):
        self.interpreter = interpreter
        self.pool = pool
        self.pipeline_path = pipeline_path
        inputs = interpreter.get_input_details()
        self.input_index = [d["index"] for d in inputs]
        self.input_names = [d["name"] for d in inputs]
        self.output_index = [d["index"] for d in interpreter.get_output_details()]
        self.user_hooks = tuple(h for h in ("load", "preprocess") if h in hooks)  # what makes inputs
        # the user's hooks where the pipeline file defines them, the defaults elsewhere
        self.load_fn = hooks.get("load", self.load)
        self.preprocess_fn = hooks.get("preprocess", self.preprocess)
        self.postprocess_fn = hooks.get("postprocess", self.postprocess)

    def load(self, i):
        return self.pool[i % len(self.pool)]

    @staticmethod
    def preprocess(raw):
        return raw

    @staticmethod
    def postprocess(outputs):
        return outputs

    def arrays(self, x):
        if isinstance(x, dict):
            try:
                return [x[n] for n in self.input_names]
            except KeyError as exc:
                raise AgentFailure("pipeline", "preprocess returned no array for input %s; inputs are %s"
                                   % (exc, self.input_names), self.pipeline_path)
        if not isinstance(x, (list, tuple)):
            x = [x]
        if len(x) != len(self.input_index):
            raise AgentFailure("pipeline", "preprocess returned %d arrays for %d inputs"
                               % (len(x), len(self.input_index)), self.pipeline_path)
        return x

    def input_arrays(self, i):
        """The input arrays of iteration i, through the pipeline's load and preprocess."""
        return self.arrays(self.preprocess_fn(self.load_fn(i)))

    def run(self, n, with_invoke, start):
        """Run n iterations; return (loop_ns, {stage: ns}) lists. Identical code in both modes."""
        interpreter = self.interpreter
        set_tensor = interpreter.set_tensor
        get_tensor = interpreter.get_tensor
        invoke = interpreter.invoke
        load = self.load_fn
        preprocess = self.preprocess_fn
        postprocess = self.postprocess_fn
        arrays = self.arrays
        inputs = self.input_index
        outputs = self.output_index
        loop = [0] * n
        st = [[0] * n for _ in STAGES]
        s_load, s_pre, s_set, s_inv, s_get, s_post = st
        for k in range(n):
            t0 = clock()
            raw = load(start + k)
            t1 = clock()
            x = arrays(preprocess(raw))
            t2 = clock()
            for index, array in zip(inputs, x):
                set_tensor(index, array)
            t3 = clock()
            if with_invoke:
                invoke()
            t4 = clock()
            result = [get_tensor(index) for index in outputs]
            t5 = clock()
            postprocess(result)
            t6 = clock()
            loop[k] = t6 - t0
            s_load[k] = t1 - t0
            s_pre[k] = t2 - t1
            s_set[k] = t3 - t2
            s_inv[k] = t4 - t3
            s_get[k] = t5 - t4
            s_post[k] = t6 - t5
        stages = dict(zip(STAGES, st))
        if not with_invoke:
            del stages["invoke"]
        return loop, stages


    def frame(self, i, work_ns):
        """Frame i of a stream: the loop of ``run`` once, with Invoke, after ``work_ns`` of spinning
        (the application's own work, a known load); returns the Invoke's ns."""
        x = self.arrays(self.preprocess_fn(self.load_fn(i)))
        set_tensor = self.interpreter.set_tensor
        for index, array in zip(self.input_index, x):
            set_tensor(index, array)
        if work_ns:
            until = clock() + work_ns
            while clock() < until:
                pass
        t0 = clock()
        self.interpreter.invoke()
        t1 = clock()
        get_tensor = self.interpreter.get_tensor
        self.postprocess_fn([get_tensor(index) for index in self.output_index])
        return t1 - t0


def _tensor_details(details):
    out = []
    for d in details:
        q = d.get("quantization", (0.0, 0))
        out.append({"name": d["name"], "index": int(d["index"]), "shape": [int(x) for x in d["shape"]],
                    "dtype": d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else str(d["dtype"]),
                    "quantization": [float(q[0]), int(q[1])]})
    return out


def create_interpreter(args, interpreter_cls, resolver):
    kwargs = {"model_path": args.model, "num_threads": args.threads}
    if args.xnnpack == "off":
        if resolver is None:
            raise AgentFailure("usage", "this runtime cannot disable its default delegate; use --xnnpack on")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    name = os.path.basename(args.model)
    if not os.path.isfile(args.model):
        raise AgentFailure("bad_model", "model file %s does not exist" % args.model, args.model)
    with open(args.model, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise AgentFailure("bad_model", "%s is not a TFLite model (no TFL3 identifier at byte 4)" % name,
                           args.model)
    t0 = clock()
    try:
        interpreter = interpreter_cls(**kwargs)
    except Exception as exc:
        raise AgentFailure(_classify(exc), "%s could not be loaded: %s" % (name, _first_line(exc)),
                           args.model)
    t1 = clock()
    try:
        interpreter.allocate_tensors()
    except Exception as exc:
        raise AgentFailure(_classify(exc), "%s could not be prepared: %s" % (name, _first_line(exc)),
                           args.model)
    t2 = clock()
    return interpreter, t1 - t0, t2 - t1


def _first_line(exc):
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    useful = [x for x in lines if "custom op" in x.lower() or "op " in x.lower()] or lines or [repr(exc)]
    return useful[0]


def _classify(exc):
    text = str(exc).lower()
    if "custom op" in text or "unresolved" in text or "didn't find op" in text or "op builtin_code" in text:
        return "unsupported_op"
    return "bad_model"


class Schedule(NamedTuple):
    """What the measured part of a run does; computed by ``schedule``."""

    iterations: int  # per mode, a multiple of blocks
    blocks: int  # at least 1
    per_block: int  # iterations per mode in each block
    order: Tuple[Tuple[int, bool], ...]  # (block, with_invoke) in the order they run


def schedule(iterations: int, duration_s: float, min_iterations: int, max_iterations: int, blocks: int,
             per_iteration_ns: int) -> Schedule:
    """The iteration count and the ABBA block order of a plan: the one definition of both.

    Iterations per mode: ``iterations`` when > 0, else enough for ``duration_s`` seconds at
    ``per_iteration_ns`` (the median warm-up iteration), clamped to [min_iterations,
    max_iterations]; then rounded up to a multiple of the blocks. ``blocks`` < 1 runs one block.
    Block 0 runs with then without Invoke, block 1 without then with, and so on, so drift and
    heat hit both modes alike. The Linux agent runs it on the board; the MCU driver imports it
    on the host.
    """
    blocks = max(1, blocks)
    if iterations > 0:
        n = iterations
    else:
        n = int(duration_s * 1e9 / max(per_iteration_ns, 1))
        n = min(max(n, min_iterations), max_iterations)
    n = max(blocks, -(-n // blocks) * blocks)
    order: List[Tuple[int, bool]] = []
    for block in range(blocks):
        order += [(block, True), (block, False)] if block % 2 == 0 else [(block, False), (block, True)]
    return Schedule(iterations=n, blocks=blocks, per_block=n // blocks, order=tuple(order))


def median_ns(values: Sequence[int], fallback: int) -> int:
    """The median of warm-up samples (the upper one of an even count), or ``fallback`` if none."""
    return sorted(values)[len(values) // 2] if values else fallback


# --- the lifeline: a watchdog process that ends the agent when the host is gone -------------

WATCHDOG_GRACE_S = 1.0  # between the watchdog's SIGTERM and SIGKILL of the agent's process group
WATCHDOG_POLL_S = 1.0  # how often it also checks that the agent, its parent, still lives
GROUP_ENV = "HARNESS_PROCESS_GROUP"  # set by the SSH wrapper: the group it leads, the agent's

_watchdog = None  # (pid, write end of the pipe whose end of file tells it the agent ended)


def start_watchdog(heartbeat_timeout):
    """Fork the watchdog: a process that owns stdin and kills the agent when the host is gone.

    The host keeps the agent's stdin open for the whole run, and over SSH writes a newline every
    few seconds. The watchdog ends the agent's process group when stdin reaches end of file or,
    with heartbeat_timeout > 0, stays silent that many seconds. It is a process, not a thread,
    so a pipeline that never lets the interpreter run (a long C call holding the GIL) cannot stop
    it. Called before numpy, the runtime or user code load: the agent has one thread, so forking
    is safe, and it uses the standard library only. The agent's own stdin becomes /dev/null, so
    user code can neither swallow the heartbeats nor block on them. The watchdog exits when the
    agent does (end of file on a pipe only the agent writes; getppid() as a backstop).
    """
    global _watchdog
    agent = os.getpid()
    alive_r, alive_w = os.pipe()  # non-inheritable: programs the pipeline runs never hold it
    try:
        pid = os.fork()
    except OSError as exc:
        raise AgentFailure("internal", "cannot start the watchdog process: %s" % exc)
    if pid == 0:  # the watchdog; it never returns into the agent's code
        status = 4
        try:
            os.close(alive_w)
            status = watch_host(agent, alive_r, heartbeat_timeout)
        finally:
            os._exit(status)
    os.close(alive_r)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _watchdog = (pid, alive_w)


def stop_watchdog():
    """At the agent's normal exit: tell the watchdog (end of file on its pipe) and reap it."""
    if _watchdog is None:
        return
    pid, alive_w = _watchdog
    os.close(alive_w)
    deadline = time.monotonic() + WATCHDOG_GRACE_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.005)


def watch_host(agent, alive_r, heartbeat_timeout):
    """The watchdog's life: returns its exit status once the agent ended on its own; else stops
    the agent (and, SIGKILLing the agent's group, itself)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the agent's Python handlers mean nothing here
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the host's TERM of the group ends us too
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the agent's protocol pipe is the agent's: its end of file must not wait for us
    os.close(null)
    for fd in _open_fds():
        if fd not in (0, 1, 2, alive_r):
            with contextlib.suppress(OSError):  # the listing's own fd is closed already
                os.close(fd)
    deadline = time.monotonic() + heartbeat_timeout if heartbeat_timeout > 0 else None
    while True:
        wait = WATCHDOG_POLL_S if deadline is None else min(WATCHDOG_POLL_S, max(0.0, deadline - time.monotonic()))
        ready, _, _ = select.select([alive_r, 0], [], [], wait)
        if alive_r in ready or os.getppid() != agent:
            return 0  # the agent ended: nothing left to guard
        if 0 in ready:
            try:
                data = os.read(0, 4096)
            except OSError as exc:
                return stop_agent(agent, alive_r, "stdin failed (%s)" % exc)
            if not data:
                return stop_agent(agent, alive_r, "stdin closed")
            if deadline is not None:
                deadline = time.monotonic() + heartbeat_timeout
        elif deadline is not None and time.monotonic() >= deadline:
            return stop_agent(agent, alive_r, "no heartbeat from the host for %g s" % heartbeat_timeout)


def _open_fds():
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def stop_agent(agent, alive_r, reason):
    """SIGTERM the agent's process group, SIGKILL it WATCHDOG_GRACE_S later (this process too).

    The group is the agent's when the agent leads it (the local transport starts it in a new
    session) or when the SSH wrapper that leads it says so (GROUP_ENV); else only the agent is
    killed, so an agent run by hand never takes its caller's group down with it.
    """
    note = ("tflite_agent watchdog: %s, the host is gone: stopping the agent\n" % reason).encode()
    try:
        if select.select([], [2], [], 0)[1]:  # never block on a stderr nobody reads
            os.write(2, note)
    except OSError:
        pass  # the host's end of stderr is gone too: say nothing, stop the agent all the same
    group = os.getpgrp()
    ours = group == agent or os.environ.get(GROUP_ENV) == str(group)
    kill, victim = (os.killpg, group) if ours else (os.kill, agent)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # our own TERM is for the others
    try:
        kill(victim, signal.SIGTERM)
        select.select([alive_r], [], [], WATCHDOG_GRACE_S)  # end of file as soon as the agent is gone
        kill(victim, signal.SIGKILL)  # what ignored TERM; and this process, when it is in the group
    except OSError:
        pass  # nothing left to kill
    return 3


def run(args):
    """Measure: init, the first (cold) Invoke, warm-up, the ABBA blocks, the summary."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("runtime_missing", "numpy is not installed for %s: pip install numpy"
                           % sys.executable)
    loop = setup(args, np)
    first_ns = time_first_invoke(args, loop)
    warm = warm_up(args, loop)
    plan = schedule(args.iterations, args.duration, args.min_iterations, args.max_iterations, args.blocks,
                    median_ns(warm, first_ns))
    emit("plan", warmup=len(warm), warmup_time_s=args.warmup_time, iterations=plan.iterations,
         blocks=plan.blocks, settle=args.settle,
         seed=args.seed, inputs=os.path.basename(args.inputs) if args.inputs else "random",
         pipeline=os.path.basename(args.pipeline) if args.pipeline else None, stages=list(STAGES))
    emit("first_invoke", ns=first_ns)
    emit("warmup", loop_ns=warm)
    wall0 = clock()
    run_blocks(args, loop, plan)
    emit("summary", iterations=plan.iterations, wall_ns=clock() - wall0, max_rss_kb=_max_rss_kb(),
         env_end=board_env())


def setup(args, np, mode=None):
    """Pick the runtime, load the model, read or draw the inputs: the Loop, ready to run."""
    name, interpreter_cls, resolver = pick_runtime(args.runtime)
    extra = {"mode": mode} if mode else {}
    emit("hello", agent="tflite_agent", agent_version=AGENT_VERSION, board=board_info(),
         runtime={"name": name, "version": _version_of(name)}, runtimes=available_runtimes(),
         clock=_clock_info(), emulated=False, **extra)
    interpreter, create_ns, allocate_ns = create_interpreter(args, interpreter_cls, resolver)
    raw_details = interpreter.get_input_details()
    emit_model(args, interpreter, create_ns, allocate_ns)
    if args.inputs:
        pool = inputs_from_file(args.inputs, raw_details, np)
    else:
        rng = np.random.default_rng(args.seed)
        pool = [[random_input(d, rng, np) for d in raw_details] for _ in range(INPUT_POOL)]
    hooks = load_pipeline(args.pipeline) if args.pipeline else {}
    return Loop(interpreter, pool, hooks, args.pipeline)


def emit_model(args, interpreter, create_ns, allocate_ns):
    emit("model", path=os.path.basename(args.model), size_bytes=os.path.getsize(args.model),
         inputs=_tensor_details(interpreter.get_input_details()),
         outputs=_tensor_details(interpreter.get_output_details()),
         init_ns=create_ns + allocate_ns, create_ns=create_ns, allocate_ns=allocate_ns,
         threads=args.threads, xnnpack=args.xnnpack == "on")


def guarded(args, code, fn, *a):
    """Call fn; blame the user's pipeline when the failure comes from its file, else ``code``."""
    try:
        return fn(*a)
    except AgentFailure:
        raise
    except SystemExit as exc:
        if args.pipeline:
            raise pipeline_exit(exc, args.pipeline)
        raise
    except Exception as exc:
        if args.pipeline and any(f.filename == args.pipeline for f in traceback.extract_tb(exc.__traceback__)):
            raise AgentFailure("pipeline", "%s raised at %s" % (os.path.basename(args.pipeline),
                                                                 _where(exc, args.pipeline)), args.pipeline)
        culprit = args.model if code != "bad_inputs" else (args.inputs or args.model)
        raise AgentFailure(code, "%s: %s: %s" % (os.path.basename(culprit), type(exc).__name__,
                                                 _first_line(exc)), culprit)


def time_first_invoke(args, loop):
    """The first (cold) inference on its own, through the user's pipeline; only Invoke is timed."""
    x = guarded(args, "bad_inputs", loop.input_arrays, 0)
    for index, name, array in zip(loop.input_index, loop.input_names, x):
        try:
            loop.interpreter.set_tensor(index, array)
        except Exception as exc:
            raise refused_input(args, loop, name, array, exc)
    t0 = clock()
    guarded(args, "bad_model", loop.interpreter.invoke)
    return clock() - t0


def refused_input(args, loop, name, array, exc):
    """The model refused the first input array: blame what made it, the pipeline's load or
    preprocess, else the --inputs file, else the model (the agent drew it from its details)."""
    reason = _first_line(exc)
    if loop.user_hooks:
        if hasattr(array, "dtype") and hasattr(array, "shape"):
            got = "a %s array of shape %s" % (array.dtype, tuple(array.shape))
        else:
            got = "a %s" % type(array).__name__
        return AgentFailure("pipeline", "%s of %s returned %s for input %r, which the model refuses: %s"
                            % (" + ".join(loop.user_hooks), os.path.basename(args.pipeline), got, name, reason),
                            args.pipeline)
    culprit = args.inputs or args.model
    return AgentFailure("bad_inputs" if args.inputs else "bad_model", "%s: input %r: %s"
                        % (os.path.basename(culprit), name, reason), culprit)


def warm_up(args, loop):
    """At least --warmup iterations and --warmup-time seconds with Invoke, kept apart from samples."""
    warm = []
    deadline = clock() + int(args.warmup_time * 1e9)
    while len(warm) < args.warmup or clock() < deadline:
        samples, _ = guarded(args, "bad_model", loop.run, 1, True, len(warm))
        warm.extend(samples)
    return warm


def run_blocks(args, loop, plan):
    """The blocks in ``plan.order``; iteration k of a block reads input block * per_block + k in both modes."""
    for i, (block, with_invoke) in enumerate(plan.order):
        start = block * plan.per_block
        gc.collect()  # start each block with an empty nursery, so no block inherits its neighbour's garbage
        # Settle: the host-talk between blocks (JSON out) evicts caches; a real application
        # loop never pays that, so the first iterations of a block are run but kept apart.
        settle, _ = guarded(args, "bad_model", loop.run, args.settle, with_invoke, start)
        loop_ns, stages = guarded(args, "bad_model", loop.run, plan.per_block, with_invoke, start)
        emit("samples", mode="with" if with_invoke else "without", block=block, loop_ns=loop_ns,
             stages=stages, settle_ns=settle, env=board_env())
        if i % 2:  # both modes of the block are done
            emit("progress", done=(i + 1) * plan.per_block, total=2 * plan.iterations)


# --- profile mode: Invoke of several models (a model's prefixes) in interleaved rounds ------

cpu_clock = time.thread_time_ns  # this thread's CPU time: the whole Invoke only with --threads 1


def load_models(args, interpreter_cls, resolver, np):
    """An interpreter per model, each given one seeded random input set (prefixes of one model
    share their inputs); returns the interpreters and their descriptions for `models`."""
    rng = np.random.default_rng(args.seed)
    interpreters, described, inputs = [], [], None
    for path in args.models:
        t0 = clock()
        options = argparse.Namespace(model=path, threads=args.threads, xnnpack=args.xnnpack)
        interpreter, _, _ = create_interpreter(options, interpreter_cls, resolver)
        init_ns = clock() - t0
        details = interpreter.get_input_details()
        if inputs is None:
            inputs = [random_input(d, rng, np) for d in details]
        if len(details) != len(inputs):
            raise AgentFailure("bad_model", "%s has %d inputs, the first model %d: not prefixes of one "
                               "model" % (os.path.basename(path), len(details), len(inputs)), path)
        for d, value in zip(details, inputs):
            interpreter.set_tensor(d["index"], value)
        interpreters.append(interpreter)
        described.append({"path": os.path.basename(path), "init_ns": init_ns,
                          "inputs": _tensor_details(details),
                          "outputs": _tensor_details(interpreter.get_output_details()),
                          "delegated": delegated_ops(interpreter)})
    return interpreters, described


def delegated_ops(interpreter):
    """The ops each delegate node of the execution plan took over, as sorted lists of op indices
    (one per node; [] when no delegate applied), or None when the runtime does not list its nodes.

    After delegation `_get_ops_details()` lists the model's ops, then one DELEGATE node per
    partition, whose inputs are everything the partition reads (activations and weights) and
    whose outputs are what it writes: its ops are those found walking back from its outputs to
    its inputs."""
    try:
        nodes = interpreter._get_ops_details()
    except Exception:
        return None
    producer = {}
    for node in nodes:
        if node["op_name"] != "DELEGATE":
            for t in node["outputs"]:
                producer[int(t)] = int(node["index"])
    by_index = dict((int(node["index"]), node) for node in nodes)
    partitions = []
    for node in nodes:
        if node["op_name"] != "DELEGATE":
            continue
        reads = set(int(t) for t in node["inputs"])
        stack, taken = [int(t) for t in node["outputs"]], set()
        while stack:
            t = stack.pop()
            if t in reads or t not in producer or producer[t] in taken:
                continue
            taken.add(producer[t])
            stack.extend(int(i) for i in by_index[producer[t]]["inputs"] if int(i) >= 0)
        partitions.append(sorted(taken))
    return partitions


def per_slice_counts(interpreters, args):
    """Invokes per model per turn: enough for --min-time over --slices turns, from the best of 3
    calibration Invokes (not reported); at least --min-per-slice, at most 1000."""
    counts = []
    slice_ns = args.min_time * 1e9 / args.slices
    for interpreter in interpreters:
        best = None
        for _ in range(3):
            t0 = clock()
            interpreter.invoke()
            elapsed = clock() - t0
            best = elapsed if best is None else min(best, elapsed)
        counts.append(max(args.min_per_slice, min(1000, int(slice_ns // max(best, 1)))))
    return counts


def time_round(interpreters, per_slice, args, r):
    """One round: every model gets its Invokes in --slices turns, models taking turns in forward,
    then reverse order, so a drift within a turn hits neighbouring prefixes with opposite signs in
    turns of opposite order and cancels between them. Returns the samples and each turn's order."""
    forward = list(range(len(interpreters)))
    ns = [[] for _ in interpreters]
    cpu = [[] for _ in interpreters]
    orders = [(r + s) % 2 == 0 for s in range(args.slices)]
    for s in range(args.slices):
        for k in (forward if orders[s] else forward[::-1]):
            invoke, samples, cpu_samples = interpreters[k].invoke, ns[k], cpu[k]
            for _ in range(per_slice[k]):
                c0 = cpu_clock()
                t0 = clock()
                invoke()
                t1 = clock()
                cpu_samples.append(cpu_clock() - c0)
                samples.append(t1 - t0)
    return ns, cpu, orders


def profile(args):
    """Time Invoke of every model given, in --rounds interleaved rounds, or fewer when one more
    would end after --max-time seconds since the agent started (PROTOCOL.md, profile mode)."""
    started = clock()
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("runtime_missing", "numpy is not installed for %s: pip install numpy"
                           % sys.executable)
    if args.rounds < 1 or args.slices < 1 or args.min_per_slice < 1 or args.min_time < 0 or args.max_time < 0:
        raise AgentFailure("usage", "--rounds, --slices and --min-per-slice must be at least 1, "
                           "--min-time and --max-time at least 0")
    name, interpreter_cls, resolver = pick_runtime(args.runtime)
    emit("hello", agent="tflite_agent", agent_version=AGENT_VERSION, mode="profile", board=board_info(),
         runtime={"name": name, "version": _version_of(name)}, runtimes=available_runtimes(),
         clock=_clock_info(), emulated=False)
    interpreters, described = load_models(args, interpreter_cls, resolver, np)
    emit("models", models=described)
    t0 = clock()
    per_slice = per_slice_counts(interpreters, args)
    emit("plan", rounds=args.rounds, max_time_s=args.max_time, slices=args.slices, per_slice=per_slice,
         min_time_s=args.min_time, min_per_slice=args.min_per_slice, threads=args.threads,
         xnnpack=args.xnnpack == "on", seed=args.seed,
         order="models take turns per slice, order reversed every slice")
    w0 = clock()
    time_round(interpreters, per_slice, args, -1)  # a warm-up round at the calibrated length, not reported
    longest = clock() - w0
    done, stopped_by = 0, "rounds"
    while done < args.rounds:
        if done and args.max_time and clock() - started + longest > args.max_time * 1e9:
            stopped_by = "max_time"  # one more round, as long as the longest, would pass the bound
            break
        r0 = clock()
        ns, cpu, orders = time_round(interpreters, per_slice, args, done)
        longest = max(longest, clock() - r0)
        emit("round", round=done, ns=ns, cpu_ns=cpu, forward=orders, wall_ns=clock() - r0)
        done += 1
    emit("summary", rounds=done, stopped_by=stopped_by, wall_ns=clock() - t0)


# --- eval mode: the raw outputs of every sample of an evaluation set, untimed ----------------

class EvalChunks(object):
    """The outputs of consecutive samples, sent as `eval` messages (PROTOCOL.md, eval mode).

    ``add(outputs)`` takes one sample's outputs (one flat list per output, as the runtime returned
    them: int8 stays int8). A message holds at most EVAL_CHUNK_VALUES values (or one sample, when
    that alone has more) and goes out at least every EVAL_CHUNK_S seconds; ``flush()`` sends what
    is left. ``send(fields)`` writes one message. The MCU driver uses this class on the host too,
    so every board kind cuts its `eval` messages alike.
    """

    def __init__(self, n_outputs, send, now=time.monotonic):
        self.send = send
        self.now = now
        self.first = 0  # index of the first sample held
        self.count = 0
        self.values = [[] for _ in range(n_outputs)]
        self.held = 0
        self.since = now()

    def add(self, outputs):
        size = sum(len(v) for v in outputs)
        if self.count and self.held + size > EVAL_CHUNK_VALUES:
            self.flush()
        for held, values in zip(self.values, outputs):
            held.extend(values)
        self.held += size
        self.count += 1
        if self.held >= EVAL_CHUNK_VALUES or self.now() - self.since >= EVAL_CHUNK_S:
            self.flush()

    def flush(self):
        if self.count:
            self.send({"first": self.first, "count": self.count, "outputs": self.values})
        self.first += self.count
        self.count = self.held = 0
        self.values = [[] for _ in self.values]
        self.since = self.now()


def evaluate(args):
    """One Invoke per sample of --inputs, fed straight to the model's inputs (no pipeline) and
    untimed; the raw outputs of every sample go to the host (PROTOCOL.md, eval mode)."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("runtime_missing", "numpy is not installed for %s: pip install numpy"
                           % sys.executable)
    name, interpreter_cls, resolver = pick_runtime(args.runtime)
    emit("hello", agent="tflite_agent", agent_version=AGENT_VERSION, mode="eval", board=board_info(),
         runtime={"name": name, "version": _version_of(name)}, runtimes=available_runtimes(),
         clock=_clock_info(), emulated=False)
    interpreter, create_ns, allocate_ns = create_interpreter(args, interpreter_cls, resolver)
    emit_model(args, interpreter, create_ns, allocate_ns)
    details = interpreter.get_input_details()
    samples = inputs_from_file(args.inputs, details, np)
    outputs = [d["index"] for d in interpreter.get_output_details()]
    chunks = EvalChunks(len(outputs), lambda fields: emit("eval", **fields))
    t0 = clock()
    for k, sample in enumerate(samples):
        for d, array in zip(details, sample):
            try:
                interpreter.set_tensor(d["index"], array)
            except Exception as exc:
                raise AgentFailure("bad_inputs", "%s: sample %d, input %r: %s" % (
                    os.path.basename(args.inputs), k, d["name"], _first_line(exc)), args.inputs)
        try:
            interpreter.invoke()
        except Exception as exc:
            raise AgentFailure(_classify(exc), "%s: Invoke failed on sample %d: %s" % (
                os.path.basename(args.model), k, _first_line(exc)), args.model)
        chunks.add([interpreter.get_tensor(i).ravel().tolist() for i in outputs])
    chunks.flush()
    emit("eval_summary", samples=len(samples), wall_ns=clock() - t0)


# --- power mode: the board's power, sampled while idle and while Invoking back to back ------

POWER_SOURCES = ("ina3221", "rpi5-pmic")
POWER_ROOT_ENV = "HARNESS_POWER_ROOT"  # tests only: a recorded sysfs tree that stands in for "/"
INA3221_GLOB = ("sys", "bus", "i2c", "drivers", "ina3221", "*", "hwmon", "hwmon*")
# The module's input rail: every other rail of its monitor is fed by it. POM_5V_IN is the
# Jetson Nano's name for it (NVIDIA's documents call it VDD_IN there too).
INA3221_TOTALS = ("VDD_IN", "POM_5V_IN")
SUM_OF_RAILS = "sum of rails"
VCGENCMD_TIMEOUT_S = 2.0
_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(current|volt)\(\d+\)=(\S*?)([AV])\s*$")


class PowerReadError(Exception):
    """One reading of a power sensor that cannot be used; the message says why."""


def _finite(text):
    """A finite number from a sysfs value or a vcgencmd figure, or None (garbage, nan, inf)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def ina3221_dirs(root):
    """The hwmon directories of the INA3221 monitors under the filesystem root ``root``, sorted."""
    return sorted(glob.glob(os.path.join(root, *INA3221_GLOB)))


def _ina3221_channels(d):
    """(label, channel) of the channels of one monitor that measure a rail, and the labels left
    out. An INA3221 has three channels, 1 to 3 (in4..in7 are shunt voltages, in7 their sum): a
    channel with an ``inN_label`` is a rail unless it is labelled NC (not connected) or disabled
    (``inN_enable`` = 0). A channel without a label is not named by the board: left out."""
    found, skipped = [], []
    for n in (1, 2, 3):
        label = _read(os.path.join(d, "in%d_label" % n))
        if not label:
            continue
        if label.upper() == "NC" or _read(os.path.join(d, "in%d_enable" % n)) == "0":
            skipped.append(label)
        else:
            found.append((label, n))
    return found, skipped


def read_ina3221(root):
    """One reading of every INA3221 rail under ``root`` ("/" on a board).

    A rail's power is its bus voltage ``inN_input`` (mV) times its current ``currN_input`` (mA).
    The board's total is the VDD_IN rail where there is one (the module's input, which feeds the
    others: adding them would count them twice); else the sum of every rail, which says so
    (total "sum of rails"): it counts a rail that feeds another twice (AGX Orin's VIN_SYS_5V0
    feeds VDDQ_VDD2_1V8AO) and never the carrier board. Returns {"watts", "rails" {label: W},
    "total" (VDD_IN or "sum of rails"), "parts" (the rails the total is made of), "unreadable"
    (rails whose files are missing or hold no number), "skipped" (NC or disabled channels)}.
    Raises PowerReadError when there is no monitor or no rail, or a rail the total needs cannot
    be read: a total that quietly left a rail out would pass for a lower power.
    """
    dirs = ina3221_dirs(root)
    if not dirs:
        raise PowerReadError("no INA3221 monitor under %s" % os.path.join(root, *INA3221_GLOB[:5]))
    rails, unreadable, skipped = {}, [], []
    for d in dirs:
        channels, left_out = _ina3221_channels(d)
        skipped += left_out
        for label, n in channels:
            key = label if label not in rails and label not in unreadable else \
                "%s (%s)" % (label, os.path.basename(os.path.dirname(os.path.dirname(d))))
            mv = _finite(_read(os.path.join(d, "in%d_input" % n)))
            ma = _finite(_read(os.path.join(d, "curr%d_input" % n)))
            if mv is None or ma is None:
                unreadable.append(key)
            else:
                rails[key] = round(mv * ma / 1e6, 6)
    total = next((t for t in INA3221_TOTALS if t in rails or t in unreadable), None)
    parts = [total] if total else sorted(rails) + sorted(unreadable)
    missing = [p for p in parts if p in unreadable]
    if missing or not parts:
        raise PowerReadError("INA3221 rails %s cannot be read in %s" % (", ".join(missing), ", ".join(dirs))
                             if missing else "no INA3221 rail with a label and a current in %s" % ", ".join(dirs))
    watts = rails[total] if total else sum(rails.values())
    return {"watts": round(watts, 6), "rails": rails, "total": total or SUM_OF_RAILS, "parts": parts,
            "unreadable": unreadable, "skipped": skipped}


def parse_pmic_adc(text):
    """One reading from the output of ``vcgencmd pmic_read_adc`` on a Raspberry Pi 5.

    Lines read "  VDD_CORE_A current(7)=0.71235000A" and "  VDD_CORE_V volt(15)=0.72000000V".
    Current and voltage are paired by the rail's name, never by the number in parentheses: a
    rail's two lines carry different channel numbers, and the lines come in channel order. The
    total is the sum of V x A over the rails that have both lines (total "sum of rails"): the
    power of the PMIC's outputs, without USB devices, the fan or the PMIC's own losses. Names with
    one line only (EXT5V_V and BATT_V: the 5 V input and the RTC battery, which have no current
    sensor) are skipped. Returns the same dict as read_ina3221. Raises PowerReadError for output
    without any pair (not a Pi 5, or a firmware without the command) and for a value that is no
    number on a rail that has both lines.
    """
    lines = {}  # name -> {"A": value or None (garbage), "V": ...}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if m:
            name, suffix, kind, value, unit = m.groups()
            good = unit == suffix and (kind == "current") == (suffix == "A")
            lines.setdefault(name, {})[suffix] = _finite(value) if good else None
    pairs = sorted(n for n, v in lines.items() if "A" in v and "V" in v)
    bad = [n for n in pairs if lines[n]["A"] is None or lines[n]["V"] is None]
    if bad:
        raise PowerReadError("vcgencmd pmic_read_adc gave a value that is not a number for %s" % ", ".join(bad))
    if not pairs:
        first = next((x.strip() for x in text.splitlines() if x.strip()), "")
        raise PowerReadError("no rail with both a current (_A) and a voltage (_V) line in the output of "
                             "vcgencmd pmic_read_adc (%r)" % first[:120])
    rails = {n: round(lines[n]["A"] * lines[n]["V"], 6) for n in pairs}
    return {"watts": round(sum(rails.values()), 6), "rails": rails, "total": SUM_OF_RAILS, "parts": pairs,
            "unreadable": [], "skipped": sorted(n for n in lines if n not in rails)}


def read_pmic():
    """One reading of ``vcgencmd pmic_read_adc`` (find_vcgencmd's), through parse_pmic_adc."""
    vcgencmd = find_vcgencmd()
    if vcgencmd is None:
        raise PowerReadError("vcgencmd is not on PATH (Raspberry Pi OS has it in raspi-utils)")
    try:
        p = subprocess.run([vcgencmd, "pmic_read_adc"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=VCGENCMD_TIMEOUT_S)
    except FileNotFoundError:
        raise PowerReadError("vcgencmd is not on PATH (Raspberry Pi OS has it in raspi-utils)")
    except subprocess.TimeoutExpired:
        raise PowerReadError("vcgencmd pmic_read_adc took over %g s" % VCGENCMD_TIMEOUT_S)
    except OSError as exc:
        raise PowerReadError("vcgencmd cannot be started: %s" % exc)
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        said = (p.stderr.decode("utf-8", "replace") + text).strip().splitlines()
        raise PowerReadError("vcgencmd pmic_read_adc exited with status %d%s"
                             % (p.returncode, ": " + said[0][:120] if said else ""))
    return parse_pmic_adc(text)


def power_reader(source):
    """(a function returning one reading, where it reads) for a source of POWER_SOURCES."""
    if source == "ina3221":
        root = os.environ.get(POWER_ROOT_ENV) or "/"
        return (lambda: read_ina3221(root)), ina3221_dirs(root) or [os.path.join(root, *INA3221_GLOB)]
    return read_pmic, ["%s pmic_read_adc" % (find_vcgencmd() or "vcgencmd")]


class PowerSampler(object):
    """Reads the power in a thread of its own, every ``interval_s`` seconds from ``t0`` to ``t1``
    (clock() values), while the caller's thread makes the load (sleeps, or Invokes).

    A good reading becomes a sample {"t_ns" (the middle of the read), "watts", "rails"}. A reading
    that fails, or whose total is made of other rails than ``parts`` (those of the first reading:
    a total that changes what it adds up is not the same quantity), counts in ``failed``, the
    reason of the last one in ``failure``. A read slower than the interval skips the slots it
    overran rather than bunching up samples after it. Soak and stream runs sample the board's
    state the same way.
    """

    def __init__(self, read, parts, interval_s):
        self.read = read
        self.parts = list(parts)
        self.interval_ns = max(1, int(interval_s * 1e9))
        self.samples = []
        self.failed = 0
        self.failure = None
        self.thread = None

    def start(self, t0, t1):
        self.thread = threading.Thread(target=self._run, args=(t0, t1), name="power-sampler")
        self.thread.daemon = True
        self.thread.start()

    def join(self):
        self.thread.join()
        return self.samples

    def _run(self, t0, t1):
        slot = 0
        while t0 + slot * self.interval_ns < t1:
            wait = t0 + slot * self.interval_ns - clock()
            if wait > 0:
                time.sleep(wait / 1e9)
            before = clock()
            try:
                reading = self.read()
                if list(reading["parts"]) != self.parts:
                    raise PowerReadError("the total is made of %s, not %s as at the start"
                                         % (", ".join(reading["parts"]), ", ".join(self.parts)))
            except Exception as exc:  # a bad reading is counted, never the end of the window
                self.failed += 1
                self.failure = str(exc) if isinstance(exc, PowerReadError) else "%s: %s" % (type(exc).__name__, exc)
            else:
                self.samples.append({"t_ns": (before + clock()) // 2, "watts": reading["watts"],
                                     "rails": reading["rails"]})
            slot = max(slot + 1, -(-(clock() - t0) // self.interval_ns))


def sleep_until(t1):
    """The idle window's load: none. Returns None (no Invokes)."""
    while True:
        left = t1 - clock()
        if left <= 0:
            return None
        time.sleep(min(0.05, left / 1e9))


def invoke_until(interpreter, model, t0, t1):
    """The active window's load: Invoke back to back until ``t1``; returns how many Invokes
    ended between ``t0`` and ``t1`` (the sampled window)."""
    invoke = interpreter.invoke
    n = 0
    try:
        while True:
            invoke()
            now = clock()
            if now >= t1:
                return n
            if now >= t0:
                n += 1
    except Exception as exc:
        raise AgentFailure(_classify(exc), "%s: Invoke failed in the power window: %s"
                           % (os.path.basename(model), _first_line(exc)), model)


def power_window(name, sampler, args, load):
    """One window: ``load(t0, t1)`` runs from now until ``t1``; the sampler reads from ``t0``,
    --settle seconds after the load began, to ``t1``, --window seconds later."""
    t0 = clock() + int(args.settle * 1e9)
    t1 = t0 + int(args.window * 1e9)
    sampler.start(t0, t1)
    invokes = load(t0, t1)
    samples = sampler.join()
    emit("power_window", window=name, t0_ns=t0, t1_ns=t1, samples=samples, failed=sampler.failed,
         failure=sampler.failure, invokes=invokes)


def measure_power(args):
    """The power pass (PROTOCOL.md, power mode): the board idle, then Invoking back to back."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("runtime_missing", "numpy is not installed for %s: pip install numpy"
                           % sys.executable)
    if args.window <= 0 or args.settle < 0 or args.interval <= 0:
        raise AgentFailure("usage", "--window and --interval must be above 0, --settle at least 0")
    name, interpreter_cls, resolver = pick_runtime(args.runtime)
    emit("hello", agent="tflite_agent", agent_version=AGENT_VERSION, mode="power", board=board_info(),
         runtime={"name": name, "version": _version_of(name)}, runtimes=available_runtimes(),
         clock=_clock_info(), emulated=False)
    interpreter, create_ns, allocate_ns = create_interpreter(args, interpreter_cls, resolver)
    emit_model(args, interpreter, create_ns, allocate_ns)
    details = interpreter.get_input_details()
    if args.inputs:
        sample = inputs_from_file(args.inputs, details, np)[0]
    else:
        rng = np.random.default_rng(args.seed)
        sample = [random_input(d, rng, np) for d in details]
    for d, array in zip(details, sample):
        interpreter.set_tensor(d["index"], array)
    read, where = power_reader(args.source)
    try:
        first = read()
    except PowerReadError as exc:
        raise AgentFailure("power_unavailable", "power = %s: %s" % (args.source, exc))
    emit("power_source", source=args.source, where=where, total=first["total"], parts=first["parts"],
         rails=sorted(first["rails"]), unreadable=first["unreadable"], skipped=first["skipped"],
         window_s=args.window, settle_s=args.settle, interval_s=args.interval)
    t0 = clock()
    power_window("idle", PowerSampler(read, first["parts"], args.interval), args,
                 lambda start, end: sleep_until(end))
    power_window("active", PowerSampler(read, first["parts"], args.interval), args,
                 lambda start, end: invoke_until(interpreter, args.model, start, end))
    emit("power_summary", wall_ns=clock() - t0)


# --- stream mode: the application loop fed by a schedule that runs here, on the board -------

STREAM_LEAD_NS = 20000000  # the origin is this long after the warm-up: the first frame's wait is a normal one
STREAM_CHUNK_FRAMES = 1000  # frames per `stream` message at most
STREAM_FLUSH_NS = 500000000  # frames go out at least this often when the board has slack ...
STREAM_FORCE_NS = 2000000000  # ... and this often when it has none (an overloaded board)
COOLDOWN_NEAR_C = 1.0  # a cool-down ends within this much of its target temperature
XORSHIFT_DEFAULT = 0x9E3779B9  # the xorshift32 state for seed 0 (SERIAL_PROTOCOL.md 3.7)


def xorshift32(seed):
    """The generator of SERIAL_PROTOCOL.md 3.7: a function returning the next u32."""
    state = [seed & 0xFFFFFFFF or XORSHIFT_DEFAULT]

    def next_u32():
        x = state[0]
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        state[0] = x
        return x
    return next_u32


def stream_schedule(arrivals, period_ns, frames, seed):
    """Each frame's scheduled time (integer ns after the origin): PROTOCOL.md, stream mode.

    ``fixed``: i * period_ns. ``poisson``: exponential gaps of mean period_ns by the inverse CDF,
    u = ((next() >> 8) + 1) / 2^24 from xorshift32(seed), gap = floor(-ln(u) * period_ns + 0.5);
    frame 0 is at the origin. The host imports this to check what any board sent.
    """
    if arrivals == "fixed":
        return [i * period_ns for i in range(frames)]
    if arrivals != "poisson":
        raise AgentFailure("usage", "unknown arrivals %r: fixed or poisson" % (arrivals,))
    next_u32 = xorshift32(seed)
    times = [0] * frames
    for i in range(1, frames):
        u = ((next_u32() >> 8) + 1) / 16777216.0
        times[i] = times[i - 1] + int(math.floor(-math.log(u) * period_ns + 0.5))
    return times


class StreamOut(object):
    """What a stream sends while it runs: its frames in `stream` messages and the board's state in
    `board_state` ones, each when the board has slack before its next frame (PROTOCOL.md)."""

    def __init__(self, origin, state_interval_s, read_state):
        self.origin = origin
        self.read_state = read_state
        self.state_interval = int(state_interval_s * 1e9)
        self.next_state = clock()
        self.state_cost = 0
        self.flush_cost = 0
        self.first = 0
        self.since = clock()
        self.columns = ([], [], [], [], [])  # scheduled, start, end, invoke, status

    def add(self, scheduled, start, end, invoke, status):
        for column, value in zip(self.columns, (scheduled, start, end, invoke, status)):
            column.append(value)

    def flush(self):
        if not self.columns[0]:
            return
        t0 = clock()
        scheduled, start, end, invoke, status = self.columns
        emit("stream", first=self.first, count=len(scheduled), scheduled_ns=scheduled, start_ns=start,
             end_ns=end, invoke_ns=invoke, status="".join(status))
        self.first += len(scheduled)
        self.columns = ([], [], [], [], [])
        self.since = clock()
        self.flush_cost = max(self.since - t0, self.flush_cost // 2)

    def state(self):
        t0 = clock()
        fields = self.read_state()
        t1 = clock()
        emit("board_state", phase="stream", t_ns=t0 - self.origin, read_ns=t1 - t0, **fields)
        self.state_cost = max(clock() - t0, self.state_cost // 2)
        self.next_state = t0 + self.state_interval

    def idle(self, until, spin_ns):
        """Wait for ``until``: send and read in the slack first, then sleep, then spin."""
        now = clock()
        if self.columns[0] and (now - self.since >= STREAM_FLUSH_NS or len(self.columns[0]) >= STREAM_CHUNK_FRAMES) \
                and until - now > 2 * self.flush_cost + spin_ns:
            self.flush()
            now = clock()
        if now >= self.next_state and until - now > 2 * self.state_cost + spin_ns:
            self.state()
            now = clock()
        rest = until - spin_ns - now
        if rest > 0:
            time.sleep(rest / 1e9)
        while clock() < until:
            pass

    def overdue(self):
        """After a frame of a board with no slack: send and read anyway once they are long overdue."""
        now = clock()
        if len(self.columns[0]) >= STREAM_CHUNK_FRAMES or (self.columns[0] and now - self.since >= STREAM_FORCE_NS):
            self.flush()
        if now - self.next_state >= STREAM_FORCE_NS:
            self.state()


def run_frames(args, loop, times, out):
    """The frames of ``times`` (ns after ``out.origin``); returns (processed, late, dropped, last end)."""
    origin, deadline, spin, work = out.origin, args.deadline_ns, args.spin_ns, args.device_work_ns
    drop = args.policy == "drop-late"
    processed = late = dropped = 0
    end = origin
    for i, offset in enumerate(times):
        scheduled = origin + offset
        start = clock()
        if start < scheduled:
            out.idle(scheduled, spin)
            start = clock()
        elif drop and start - scheduled > deadline:
            out.add(offset, None, None, None, "d")
            dropped += 1
            out.overdue()
            continue
        invoke_ns = guarded(args, "bad_model", loop.frame, i, work)
        end = clock()
        status = "l" if end - scheduled > deadline else "o"
        late += status == "l"
        processed += 1
        out.add(offset, start - origin, end - origin, invoke_ns, status)
        out.overdue()
    return processed, late, dropped, end - origin


def cool_down(args, read_state):
    """Wait until the hottest zone is within COOLDOWN_NEAR_C of --cooldown-temp, at most
    --cooldown-max seconds (all of it without a temperature), sending the board's state meanwhile."""
    target = args.cooldown_temp
    t0 = clock()
    deadline = t0 + int(args.cooldown_max * 1e9)
    while True:
        r0 = clock()
        fields = read_state()
        emit("board_state", phase="cooldown", t_ns=r0 - t0, read_ns=clock() - r0, **fields)
        temp = hottest(fields)
        if target is not None and temp is not None and temp <= target + COOLDOWN_NEAR_C:
            reached = True
            break
        if clock() >= deadline:
            reached = False if target is not None and temp is not None else None
            break
        time.sleep(max(0.0, min(args.state_interval, (deadline - clock()) / 1e9)))
    emit("cooldown", target_temp_c=target, temp_c=temp, waited_ns=clock() - t0, reached=reached)


def stream(args):
    """Run the schedule's frames through the application loop (PROTOCOL.md, stream mode)."""
    try:
        import numpy as np
    except ImportError:
        raise AgentFailure("runtime_missing", "numpy is not installed for %s: pip install numpy"
                           % sys.executable)
    if args.period_ns < 1 or args.frames < 1 or args.deadline_ns < 1 or args.spin_ns < 0 \
            or args.device_work_ns < 0 or not args.state_interval > 0:
        raise AgentFailure("usage", "--period-ns, --frames and --deadline-ns must be at least 1, "
                           "--spin-ns and --device-work-ns at least 0, --state-interval above 0")
    times = stream_schedule(args.arrivals, args.period_ns, args.frames, args.seed)
    loop = setup(args, np, mode="stream")
    vcgencmd = find_vcgencmd()

    def read_state():
        return board_state("/", vcgencmd)
    if args.cooldown_max > 0:
        cool_down(args, read_state)
    emit("stream_plan", arrivals=args.arrivals, period_ns=args.period_ns, rate_hz=1e9 / args.period_ns,
         frames=args.frames, deadline_ns=args.deadline_ns, policy=args.policy, seed=args.seed,
         spin_ns=args.spin_ns, device_work_ns=args.device_work_ns, state_interval_s=args.state_interval,
         warmup=args.warmup, warmup_time_s=args.warmup_time,
         inputs=os.path.basename(args.inputs) if args.inputs else "random",
         pipeline=os.path.basename(args.pipeline) if args.pipeline else None,
         stages=["load", "preprocess", "set_input", "work", "invoke", "get_output", "postprocess"])
    time_first_invoke(args, loop)  # the model's first (cold) Invoke, and a clear error for inputs it refuses
    emit("warmup", loop_ns=warm_up(args, loop))
    gc.collect()
    gc.freeze()  # what exists now is never scanned again: collections during the stream stay short
    out = StreamOut(clock() + STREAM_LEAD_NS, args.state_interval, read_state)
    out.state()  # the board as the stream starts (t_ns < 0)
    processed, late, dropped, wall = run_frames(args, loop, times, out)
    out.flush()
    out.state()
    emit("stream_summary", frames=len(times), processed=processed, late=late, dropped=dropped, wall_ns=wall,
         max_rss_kb=_max_rss_kb())


def _max_rss_kb():
    try:
        import resource
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except Exception:
        return None


def _clock_info():
    info = time.get_clock_info("perf_counter")
    return {"name": "perf_counter_ns (%s)" % info.implementation,
            "resolution_ns": max(1, int(round(info.resolution * 1e9)))}


def probe(args):
    emit("hello", agent="tflite_agent", agent_version=AGENT_VERSION, board=board_info(),
         runtime=None, runtimes=available_runtimes(), clock=_clock_info(), emulated=False,
         numpy=_version_of_numpy(), executable=sys.executable)


def _version_of_numpy():
    try:
        import numpy
        return numpy.__version__
    except ImportError:
        return None


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")
    sub.add_parser("probe", help="describe the board and its runtimes")
    r = sub.add_parser("run", help="benchmark one model")
    r.add_argument("--model", required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIME_ORDER)
    r.add_argument("--xnnpack", default="on", choices=("on", "off"))
    r.add_argument("--warmup", type=int, default=10)
    r.add_argument("--warmup-time", type=float, default=0.2)
    r.add_argument("--iterations", type=int, default=0)
    r.add_argument("--duration", type=float, default=1.0)
    r.add_argument("--min-iterations", type=int, default=100)
    r.add_argument("--max-iterations", type=int, default=20000)
    r.add_argument("--blocks", type=int, default=10)
    r.add_argument("--settle", type=int, default=1, help="untimed-into-samples iterations at each block start")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--inputs")
    r.add_argument("--pipeline")
    _lifeline_args(r)
    _profile_parser(sub)
    _eval_parser(sub)
    _power_parser(sub)
    _stream_parser(sub)
    return p


def _lifeline_args(r):
    """The watchdog's options, the same in every mode the host starts."""
    r.add_argument("--lifeline", action="store_true",
                   help="a watchdog process stops the agent's process group when stdin closes "
                        "(the host always sets this; off for runs by hand)")
    r.add_argument("--heartbeat-timeout", type=float, default=0.0,
                   help="with --lifeline: also when stdin stays silent this many seconds")


def _profile_parser(sub):
    r = sub.add_parser("profile", help="time Invoke of several models (a model's prefixes) in rounds")
    r.add_argument("models", nargs="+", metavar="MODEL")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIME_ORDER)
    r.add_argument("--xnnpack", default="off", choices=("on", "off"))
    r.add_argument("--rounds", type=int, default=15)
    r.add_argument("--max-time", type=float, default=0.0,
                   help="seconds since the agent started after which no round starts that, as long as "
                        "the longest so far, would end past them (at least one round runs; 0: no bound)")
    r.add_argument("--min-time", type=float, default=0.005,
                   help="seconds of Invoke samples per model per round (at least one sample per slice)")
    r.add_argument("--slices", type=int, default=5, help="turns per round in which the models alternate")
    r.add_argument("--min-per-slice", type=int, default=3,
                   help="Invokes per model per turn at least: a turn's median then shrugs off one "
                        "Invoke the OS interrupted")
    r.add_argument("--seed", type=int, default=0)
    _lifeline_args(r)


def _eval_parser(sub):
    r = sub.add_parser("eval", help="the raw outputs of every sample of an inputs file, untimed")
    r.add_argument("--model", required=True)
    r.add_argument("--inputs", required=True, help=".npy or .npz: the samples, in the model's dtypes")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIME_ORDER)
    r.add_argument("--xnnpack", default="on", choices=("on", "off"))
    _lifeline_args(r)


def _power_parser(sub):
    r = sub.add_parser("power", help="sample the board's power while idle, then while Invoking back to back")
    r.add_argument("--model", required=True)
    r.add_argument("--source", required=True, choices=POWER_SOURCES)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIME_ORDER)
    r.add_argument("--xnnpack", default="on", choices=("on", "off"))
    r.add_argument("--window", type=float, default=3.0, help="seconds sampled in each window")
    r.add_argument("--settle", type=float, default=1.0,
                   help="seconds of each window's load (sleep, Invokes) before its sampling starts")
    r.add_argument("--interval", type=float, default=0.2, help="seconds between readings")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--inputs", help="the model is fed the file's first sample (default: seeded random)")
    _lifeline_args(r)


def _stream_parser(sub):
    r = sub.add_parser("stream", help="the application loop fed by a schedule of frames (PROTOCOL.md)")
    r.add_argument("--model", required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIME_ORDER)
    r.add_argument("--xnnpack", default="on", choices=("on", "off"))
    r.add_argument("--arrivals", default="fixed", choices=("fixed", "poisson"))
    r.add_argument("--period-ns", type=int, default=33333333, help="the period (poisson: the mean gap)")
    r.add_argument("--frames", type=int, default=900)
    r.add_argument("--deadline-ns", type=int, default=33333333, help="after each frame's scheduled time")
    r.add_argument("--policy", default="queue", choices=("queue", "drop-late"))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--warmup", type=int, default=10)
    r.add_argument("--warmup-time", type=float, default=0.2)
    r.add_argument("--spin-ns", type=int, default=500000, help="spin, not sleep, this long before a frame")
    r.add_argument("--device-work-ns", type=int, default=0, help="spin this long before each Invoke")
    r.add_argument("--state-interval", type=float, default=1.0, help="seconds between board_state reads")
    r.add_argument("--cooldown-temp", type=float, default=None, help="cool down to this temperature first")
    r.add_argument("--cooldown-max", type=float, default=0.0, help="... for at most this many seconds")
    r.add_argument("--inputs")
    r.add_argument("--pipeline")
    _lifeline_args(r)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help(sys.stderr)
        return 2
    claim_stdout()
    try:
        if args.command == "probe":
            probe(args)
            return 0
        if args.lifeline:
            start_watchdog(args.heartbeat_timeout)  # before numpy, the runtime and user code load
        if args.command == "profile":
            profile(args)
            return 0
        if args.command == "eval":
            evaluate(args)
            return 0
        if args.command == "power":
            measure_power(args)
            return 0
        if args.pipeline:
            args.pipeline = os.path.abspath(args.pipeline)
        if args.command == "stream":
            stream(args)
            return 0
        run(args)
        return 0
    except AgentFailure as exc:
        emit("error", code=exc.code, message=exc.message,
             file=os.path.basename(exc.file) if exc.file else None)
        return 1
    except KeyboardInterrupt:
        emit("error", code="interrupted", message="interrupted", file=None)
        return 130
    except BrokenPipeError:
        return 3  # the host went away; nobody is left to tell
    except Exception as exc:
        traceback.print_exc()
        emit("error", code="internal", message="%s: %s" % (type(exc).__name__, exc), file=None)
        return 1


if __name__ == "__main__":
    status = main()
    _channel.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    stop_watchdog()
    os._exit(status)  # skip interpreter shutdown: runtime threads may still hold locks
