"""Will it fit? The TFLite Micro arena a model needs, and its flash size, against each board.

The arena is *measured*, not estimated: the TFLite Micro interpreter (the ``tflite-micro`` Python
package, the same C++ allocator the firmware links) is created with a candidate arena size, and
the smallest size that allocates is found by bisection down to the byte. TFLM can abort() or
segfault the process on a too-small arena or a broken model, so the interpreter only ever lives in
a child process (``python -m harness.models.arena --child``) that answers one probe per line; when it
dies, that size counts as "does not fit" and a fresh child continues.

Child protocol (stdin/stdout, one line each way per probe)::

    host -> child:  "<arena bytes> <invoke 0|1>"
    child -> host:  {"arena": N, "ok": bool, "error": str|null, "recorded": int|null, "tflm": "version"}

``recorded`` is the RecordingMicroAllocator total (head + tail) the interpreter reports for a
successful probe with Invoke. TFLM writes its diagnostics to fds 1 and 2; the child captures them
per probe (``error`` carries TFLM's reason), so stdout carries only the probe answers.

Flash is the .tflite file size alone: the firmware's code and TFLM's kernels come on top.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import SerialOptions, Target
from harness.errors import ConfigError, MeasurementError
from harness.models.micro import offset_buffers

# Probe sizes above this are not tried: no microcontroller of a lab has 64 MiB of SRAM, and a
# model that needs more is reported as not fitting anywhere rather than tried at any size.
MAX_ARENA = 64 * 1024 * 1024
PROBE_TIMEOUT_S = 60.0  # one interpreter creation (+ one Invoke); a large float model takes ~1 s


@dataclass(frozen=True)
class ArenaFit:
    """What a model needs on a microcontroller, measured with TFLite Micro on the host.

    ``arena_bytes``: smallest tensor arena (bytes) with which the TFLM interpreter allocates;
    an Invoke at that size was run too. ``recorded_bytes``: what TFLM's RecordingMicroAllocator
    reports at a generous size (head + tail, excluding the alignment slack bisection includes).
    ``flash_bytes``: the .tflite file (inlined, see measure_arena). ``probes``/``crashed_probes``: interpreter creations tried,
    and how many of them killed their process.
    """

    model: str
    arena_bytes: int
    recorded_bytes: int | None
    flash_bytes: int
    tflm_version: str
    probes: int
    crashed_probes: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "arena_bytes": self.arena_bytes, "recorded_bytes": self.recorded_bytes,
                "flash_bytes": self.flash_bytes, "tflm_version": self.tflm_version, "probes": self.probes,
                "crashed_probes": self.crashed_probes, "notes": list(self.notes),
                "method": "bisection with the TFLite Micro interpreter (host build)"}


@dataclass(frozen=True)
class FitRow:
    """One board of the "fits on" table. None where targets.toml does not say (ram/flash keys),
    or where the answer depends on the board's build (see ``exact``).

    The arena is measured with the host's 64-bit TFLite Micro. A board running that same build
    (the emulator, ``exact``) needs exactly that. A 32-bit MCU needs less, since the pointers in
    TFLM's bookkeeping halve, but at least half, since tensor data keeps its size: between the
    two, whether it fits is for the device to say.
    """

    target: str
    ram_bytes: int | None
    flash_bytes: int | None
    arena_bytes: int
    model_bytes: int
    exact: bool = False

    @property
    def arena_floor(self) -> int:
        """The least arena the board can need (bytes)."""
        return self.arena_bytes if self.exact else self.arena_bytes // 2

    @property
    def fits_ram(self) -> bool | None:
        if self.ram_bytes is None:
            return None
        if self.arena_bytes <= self.ram_bytes:
            return True
        return False if self.arena_floor > self.ram_bytes else None

    @property
    def fits_flash(self) -> bool | None:
        return None if self.flash_bytes is None else self.model_bytes <= self.flash_bytes

    @property
    def fits(self) -> bool | None:
        """False if either does not fit; None if nothing fails but something is undecided."""
        if self.fits_ram is False or self.fits_flash is False:
            return False
        if self.fits_ram is None or self.fits_flash is None:
            return None
        return True

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "ram_bytes": self.ram_bytes, "flash_bytes": self.flash_bytes,
                "arena_bytes": self.arena_bytes, "arena_floor_bytes": self.arena_floor, "exact": self.exact,
                "model_bytes": self.model_bytes, "fits_ram": self.fits_ram, "fits_flash": self.fits_flash,
                "fits": self.fits}


def fits_on(fit: ArenaFit, targets: Iterable[Target]) -> list[FitRow]:
    """The fit check against the ``ram`` and ``flash`` each target declares in targets.toml.
    Only an emulated MCU (``emulator = true``) runs the very TFLM build the arena was measured with."""
    return [FitRow(t.name, t.ram_bytes, t.flash_bytes, fit.arena_bytes, fit.flash_bytes,
                   exact=isinstance(t.options, SerialOptions) and t.options.emulator) for t in targets]


class _Child:
    """One TFLM child process; ``probe`` returns its answer, or None when the child died."""

    def __init__(self, model: Path, python: str) -> None:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        # stderr to a file, not a pipe: nobody reads it until the child dies, so a pipe could fill.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [python, "-m", "harness.models.arena", "--child", str(model)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        self.exit_detail = ""

    def probe(self, size: int, invoke: bool, timeout_s: float) -> dict[str, Any] | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{size} {int(invoke)}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died()
        deadline = time.monotonic() + timeout_s
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise MeasurementError(f"TFLite Micro took over {timeout_s:.0f} s to create an interpreter "
                                       f"with a {size} B arena", hint="check the model size; probes time out")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return self._died()
                line += chunk
        return dict(json.loads(line.decode()))

    def _died(self) -> dict[str, Any] | None:
        code = self.proc.wait(timeout=10)
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        what = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.exit_detail = f"{what}; {_tflm_message(err)}" if _tflm_message(err) else what
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            if stream is not None:
                stream.close()


def measure_arena(model_path: Path | str, *, python: str = sys.executable,
                  timeout_s: float = PROBE_TIMEOUT_S) -> ArenaFit:
    """Smallest TFLM tensor arena for the model, by bisection (see the module docstring).

    A model whose weights sit in offset buffers (ai-edge-quantizer writes large ones that way) is
    measured as the inlined copy a board must be flashed with: TFLM reads offset buffers as
    zeros and plans them into the arena, which would inflate the arena by the weights' size.

    Raises ConfigError naming the model when TFLM rejects it (float16 weights, dynamic-range
    "hybrid" ops, unsupported ops) or crashes even with a generous arena.
    """
    path = Path(model_path)
    try:
        path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read model {path}: {exc.strerror}",
                          hint="pass the path of an existing .tflite file") from exc
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harness-arena-") as tmp:
        measured = path
        offset = offset_buffers(path)
        if offset:
            from ai_edge_litert.tools import flatbuffer_utils

            measured = Path(tmp) / path.name
            flatbuffer_utils.write_model(flatbuffer_utils.read_model(str(path)), str(measured))
            notes.append(f"{offset} weight buffer(s) are stored after the flatbuffer (offset buffers), which "
                         "TFLite Micro reads as zeros: arena and flash are those of an inlined copy; flash "
                         "flatbuffer_utils.write_model(flatbuffer_utils.read_model(src), dst), not this file")
        arena, recorded, probes, crashed, tflm = _bisect(measured, path, python, timeout_s)
        flash = measured.stat().st_size
    if crashed:
        notes.append(f"{crashed} probe(s) below the minimum crashed TFLite Micro; counted as not fitting")
    return ArenaFit(model=str(path), arena_bytes=arena, recorded_bytes=recorded, flash_bytes=flash,
                    tflm_version=tflm, probes=probes, crashed_probes=crashed, notes=tuple(notes))


def _bisect(measured: Path, path: Path, python: str, timeout_s: float) -> tuple[int, int | None, int, int, str]:
    """(minimum arena, recorded bytes, probes, crashed probes, TFLM version) for the file
    ``measured``; errors name ``path``, the file the user gave."""
    probes = crashed = 0
    child: _Child | None = None
    tflm = ""

    def probe(arena: int, invoke: bool = False) -> tuple[bool, dict[str, Any] | None, str]:
        nonlocal child, probes, crashed, tflm
        probes += 1
        if child is None:
            child = _Child(measured, python)
        answer = child.probe(arena, invoke, timeout_s)
        if answer is None:
            crashed += 1
            detail = child.exit_detail
            child.close()
            child = None
            return False, None, f"TFLite Micro killed its process ({detail})"
        tflm = answer.get("tflm") or tflm
        return bool(answer["ok"]), answer, answer.get("error") or ""

    try:
        generous = min(MAX_ARENA, max(1 << 20, 16 * measured.stat().st_size))
        ok, answer, error = probe(generous, invoke=True)
        if not ok:
            raise ConfigError(f"{path}: TFLite Micro cannot run this model: {error}",
                              hint=_reject_hint(path, error))
        recorded = answer.get("recorded") if answer else None
        # Allocation needs more than it keeps (the memory planner's scratch), so the recorded
        # total is a first guess only: grow until it allocates, then bisect below.
        hi = int(recorded) if recorded else generous
        while not probe(hi)[0]:
            if hi >= generous:
                raise MeasurementError(f"{path}: TFLite Micro allocated with {generous} B but not with "
                                       f"{hi} B, after succeeding at the larger size",
                                       hint="re-run; report this model if it repeats")
            hi = min(generous, hi * 2)
        lo = hi // 2
        while lo >= 64 and probe(lo)[0]:
            hi, lo = lo, lo // 2
        while hi - lo > 1:  # invariant: lo fails (or is a size too small to try), hi allocates
            mid = (lo + hi) // 2
            if probe(mid)[0]:
                hi = mid
            else:
                lo = mid
        ok, _, error = probe(hi, invoke=True)
        if not ok:
            raise MeasurementError(f"{path}: allocation succeeded with a {hi} B arena but Invoke failed: {error}",
                                   hint="report this model; the arena bisection relies on allocation alone")
    finally:
        if child is not None:
            child.close()
    return hi, int(recorded) if recorded else None, probes, crashed, tflm


def _tflm_message(stderr: str) -> str:
    """TFLM's own reason, from its diagnostics: the last lines before the failure."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "RecordingMicroAllocator" not in ln]
    return " / ".join(lines[-2:])


def _reject_hint(path: Path, error: str) -> str:
    if "Hybrid" in error:
        return "TFLite Micro has no dynamic-range (hybrid) kernels: quantize to full int8 (static_wi8_ai8)"
    if "DEQUANTIZE" in error or "kTfLiteInt8" in error:
        return ("TFLite Micro cannot dequantize float16 weights: use the float32 model or full int8 "
                "(static_wi8_ai8)")
    if "Didn't find op" in error or "unsupported" in error.lower():
        return "the model uses an op TFLite Micro lacks: check `harness analyze` for its op types"
    return f"check that {path.name} runs in LiteRT first (`harness analyze {path}`)"


def _child_main(model: str) -> int:
    """The child: answer probes from stdin until it closes. Runs TFLM; may die at any probe."""
    import re
    import tempfile

    import numpy as np
    from tflite_micro.python.tflite_micro import _version, runtime

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        arena_s, invoke_s = line.split()
        answer: dict[str, Any] = {"arena": int(arena_s), "ok": False, "error": None, "recorded": None,
                                  "tflm": _version.__version__}
        # TFLM prints its reasons (and print_allocations' report) with printf to fds 1 and 2:
        # capture both for this probe, so the answer carries them and stdout stays clean.
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(1), os.dup(2)
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            try:
                interpreter = runtime.Interpreter.from_file(model, arena_size=int(arena_s))
                if invoke_s == "1":
                    for i in range(len(_input_indices(model))):
                        details = interpreter.get_input_details(i)
                        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), i)
                    interpreter.invoke()
                    interpreter.print_allocations()
                answer["ok"] = True
            except (RuntimeError, ValueError) as exc:
                answer["error"] = str(exc)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            captured.seek(0)
            text = captured.read().decode(errors="replace")
        m = re.search(r"Arena allocation total (\d+) bytes", text)
        answer["recorded"] = int(m.group(1)) if m else None
        if not answer["ok"] and _tflm_message(text):
            answer["error"] = f"{_tflm_message(text)} ({answer['error']})"
        answers.write(json.dumps(answer) + "\n")
    return 0


def _input_indices(model: str) -> list[int]:
    """Tensor indices of the main subgraph's inputs (TFLM's Python API has no input count)."""
    from ai_edge_litert import schema_py_generated as fb

    with open(model, "rb") as f:
        m = fb.Model.GetRootAs(f.read(), 0)
    sg = m.Subgraphs(0)
    return [sg.Inputs(i) for i in range(sg.InputsLength())]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2]))
    sys.stderr.write("usage: python -m harness.models.arena --child MODEL (internal: run by measure_arena)\n")
    sys.exit(2)
