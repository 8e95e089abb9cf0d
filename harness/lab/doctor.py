"""`harness doctor`: is each board ready to benchmark, and if not, the exact fix.

For a target it checks, in order: reachability, host key and authentication (by connecting through
the target's own transport, so it fails exactly as a run would), then runs ONE small self-contained
program on the board with the board's python: device_agents/linux/board_probe.py, sent as
``python -c TEXT`` so that it needs no writable directory there. It reports the python version,
numpy, which TFLite runtimes import (with versions), free disk where the cache lives, the board
model, the CPU frequency governors, throttling (``vcgencmd get_throttled`` on a Raspberry Pi,
thermal zones elsewhere) and the load. A labgrid target's coordinator, place, holder and resources
are checked first (harness.lab.labgrid_doctor), then the board behind a free place. A serial board (or the emulated MCU) is asked for its HELLO
over its own port: what it is, its TFLite Micro, arena, largest model and timer. Every finding is a
value with a level and, unless it is fine, the command or `targets.toml` key that fixes it.
Rendering lives in harness.render.doctor.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.config import DEFAULT_WORKDIR, LabgridOptions, SerialOptions, SshOptions, Target
from harness.errors import HarnessError
from harness.lab.transports import open_transport
from harness.lab.transports.base import Transport

log = logging.getLogger(__name__)

OK, WARN, ERROR = "ok", "warn", "error"
MIN_PYTHON = (3, 8)  # what device_agents/ is written for
DISK_WARN_BYTES = 200 * 1024**2  # a few models plus the agent, with room to spare
DISK_ERROR_BYTES = 20 * 1024**2
HOT_C = 80.0  # most boards start throttling between 80 and 85 deg C
PROBE_TIMEOUT_S = 60.0  # importing a runtime on a Pi Zero takes ~10 s; leave headroom
RUNTIME_PACKAGES = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
                    "tensorflow": "tensorflow"}

# vcgencmd get_throttled bits: now (0-3) and since boot (16-19).
_THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}


@dataclass(frozen=True)
class Diagnosis:
    """One check on one board. ``fix`` is set whenever ``level`` is not ok."""

    check: str  # connect, python, numpy, runtime, disk, board, governor, throttling, load
    level: str  # ok | warn | error
    what: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"check": self.check, "level": self.level, "what": self.what, "fix": self.fix}


def ready(findings: Sequence[Diagnosis]) -> bool:
    """True when nothing stops a benchmark on this board (warnings do not)."""
    return not any(f.level == ERROR for f in findings)


def probe_path() -> Path:
    """The board probe: Python >= 3.5 syntax, so that an old python still reports *that* it is old."""
    return Path(str(resources.files("device_agents") / "linux" / "board_probe.py"))


VENV = "~/harness-venv"  # suggested home for a board's runtime when its python is the system one


def _pip(python: str, package: str, report: dict, target: str = "NAME") -> str:
    """The install command for ``package``: into the target's venv, or into a new venv.

    System pythons on Debian 12 / Raspberry Pi OS bookworm refuse ``pip install`` (PEP 668), so
    outside a venv the fix is a venv of its own, named in targets.toml. Where the python lacks
    ensurepip (Debian and Ubuntu until pythonX.Y-venv is installed), ``-m venv`` fails, so the
    fix installs that package first, as harness/bootstrap.sh does on the host.
    """
    if report.get("venv"):
        return f"{shlex.quote(python)} -m pip install {shlex.quote(package)} (installs into the venv " \
               f"{report['prefix']})"
    apt = ""
    if report.get("ensurepip") is False:
        version = ".".join(str(report.get("python", "3")).split(".")[:2])
        apt = f"sudo apt-get install python{version}-venv && "
    return (f"{apt}{shlex.quote(python)} -m venv {VENV} && {VENV}/bin/pip install numpy "
            f"{shlex.quote(package)}, then set python = \"{VENV}/bin/python\" in [targets.{target}]")


def _connect_finding(transport: Transport) -> Diagnosis:
    describe = getattr(transport, "describe", None)
    return Diagnosis("connect", OK, describe() if describe else "this machine (no connection needed)")


def _run_probe(transport: Transport, python: str, workdir: str) -> dict:
    """The board probe's report. Sent as ``-c TEXT``: it needs no writable directory on the board."""
    proc = transport.run([python, "-c", probe_path().read_text(encoding="utf-8"), workdir])
    lines: list[str] = []
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                line = proc.readline(0.5)
            except EOFError:
                break
            if line is not None:
                lines.append(line)
        else:
            raise HarnessError(f"the board's python did not answer within {PROBE_TIMEOUT_S:.0f} s",
                               hint="check the board's load")
    finally:
        proc.terminate()
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                return dict(json.loads(line))
            except json.JSONDecodeError:
                break
    tail = proc.stderr_tail().strip().splitlines()
    raise HarnessError(f"{python} could not run the check: {tail[-1] if tail else 'no output'}",
                       hint=f"point python = in [targets.NAME] at a working python >= "
                            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}")


def findings_from_report(target: Target, python: str, r: dict) -> list[Diagnosis]:
    """Pure: the board's report turned into findings with fixes."""
    out: list[Diagnosis] = []
    version = tuple(int(x) for x in str(r.get("python", "0.0")).split(".")[:2] if x.isdigit())
    pyline = f"python {r.get('python')} at {r.get('executable') or python}"
    if version < MIN_PYTHON:
        out.append(Diagnosis("python", ERROR, f"{pyline} is older than the {MIN_PYTHON[0]}.{MIN_PYTHON[1]} "
                           "the agent needs", f"install python3 >= 3.8 on the board and set python = "
                           f"in [targets.{target.name}] to it"))
    else:
        out.append(Diagnosis("python", OK, pyline + (" (a venv)" if r.get("venv") else "")))
    if "numpy" in r:
        out.append(Diagnosis("numpy", OK, f"numpy {r['numpy']}"))
    else:
        error = r.get("numpy_error", "not installed")
        out.append(Diagnosis("numpy", ERROR, f"numpy does not import: {error}", _pip(python, "numpy", r, target.name)))
    out += _runtime_findings(target, python, r)
    out += _disk_findings(target, r)
    model = r.get("model") or "unknown board"
    out.append(Diagnosis("board", OK, f"{model} ({r.get('machine')}, {r.get('cores')} cores)"))
    out += _cpu_findings(r)
    return out


def _runtime_findings(target: Target, python: str, r: dict) -> list[Diagnosis]:
    runtimes: dict = r.get("runtimes") or {}
    working = {n: v["version"] for n, v in runtimes.items() if v and "version" in v}
    broken = {n: v["error"] for n, v in runtimes.items() if v and "error" in v}
    out = [Diagnosis("runtime", ERROR, f"{name} is installed but does not import: {err}",
                   f"{shlex.quote(python)} -m pip install 'numpy<2' (runtimes built for numpy 1 fail "
                   f"on numpy 2), or reinstall {RUNTIME_PACKAGES[name]}")
           for name, err in broken.items() if "numpy" in err.lower()]
    out += [Diagnosis("runtime", WARN, f"{name} is installed but does not import: {err}",
                    f"reinstall it: {_pip(python, RUNTIME_PACKAGES[name], r, target.name)}")
            for name, err in broken.items() if "numpy" not in err.lower()]
    found = ", ".join(f"{n} {v}" for n, v in working.items()) or "none"
    wanted = target.runtime
    if wanted == "auto":
        usable = [n for n in working if not (runtimes[n] or {}).get("not_imported")]
        if usable or "tensorflow" in working:
            out.append(Diagnosis("runtime", OK, f"TFLite runtimes: {found}"))
        else:
            out.append(Diagnosis("runtime", ERROR, "no TFLite runtime imports with this python",
                               f"{_pip(python, 'ai-edge-litert', r, target.name)}; on 32-bit ARM or python < 3.9: "
                               f"{shlex.quote(python)} -m pip install tflite-runtime"))
    elif wanted in working:
        out.append(Diagnosis("runtime", OK, f"runtime = {wanted!r}: {wanted} {working[wanted]} "
                           f"(present: {found})"))
    else:
        out.append(Diagnosis("runtime", ERROR, f"runtime = {wanted!r} in [targets.{target.name}], but "
                           f"{wanted} is not there (present: {found})",
                           f"{_pip(python, RUNTIME_PACKAGES[wanted], r, target.name)}, or set runtime = \"auto\""))
    return out


def _disk_findings(target: Target, r: dict) -> list[Diagnosis]:
    if "disk_free" not in r:
        return [Diagnosis("disk", WARN, f"free disk unknown: {r.get('disk_error')}",
                        f"check workdir = in [targets.{target.name}]")]
    free, path = int(r["disk_free"]), r.get("disk_path")
    text = f"{free / 1024**2:.0f} MiB free in {path}"
    fix = (f"free space on the board (harness keeps its cache in {path}), or set workdir = in "
           f"[targets.{target.name}] to a bigger disk")
    if free < DISK_ERROR_BYTES:
        return [Diagnosis("disk", ERROR, text + ": not enough for the agent and a model", fix)]
    if free < DISK_WARN_BYTES:
        return [Diagnosis("disk", WARN, text + ": large models may not fit", fix)]
    return [Diagnosis("disk", OK, text)]


def _cpu_findings(r: dict) -> list[Diagnosis]:
    out: list[Diagnosis] = []
    govs: dict = r.get("governors") or {}
    others = sorted({g for g in govs.values() if g != "performance"})
    if not govs:
        out.append(Diagnosis("governor", OK, "no cpufreq governor (fixed clock or a virtual machine)"))
    elif others:
        out.append(Diagnosis("governor", WARN, f"governor is {', '.join(others)}: results will drift as "
                           "the clock changes; set it to performance",
                           "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    else:
        out.append(Diagnosis("governor", OK, f"governor is performance on {len(govs)} CPUs"))
    bits = r.get("throttled")
    if isinstance(bits, int) and bits:
        now = [n for b, n in _THROTTLE_BITS.items() if bits & (1 << b)]
        past = [n for b, n in _THROTTLE_BITS.items() if bits & (1 << (b + 16))]
        what = f"vcgencmd get_throttled = {bits:#x}: " + "; ".join(
            x for x in (f"now {', '.join(now)}" if now else "", f"since boot {', '.join(past)}" if past else "")
            if x)
        out.append(Diagnosis("throttling", WARN, what, "use the official power supply (5 V, 3 A or more) "
                           "and a heatsink or fan; results taken while throttled are slower"))
    elif isinstance(bits, int):
        out.append(Diagnosis("throttling", OK, "vcgencmd get_throttled = 0x0: never throttled since boot"))
    temp = r.get("temp_c")
    if isinstance(temp, (int, float)) and temp >= HOT_C:
        out.append(Diagnosis("throttling", WARN, f"the board is at {temp:.0f} °C: it throttles soon",
                           "add a heatsink or fan, or let it cool before benchmarking"))
    elif isinstance(temp, (int, float)) and not isinstance(bits, int):
        out.append(Diagnosis("throttling", OK, f"hottest thermal zone {temp:.0f} °C"))
    load, cores = r.get("load1"), r.get("cores") or 1
    if isinstance(load, (int, float)) and load > 0.5 * cores:
        out.append(Diagnosis("load", WARN, f"load average {load:.1f} on {cores} cores: other work competes "
                           "with the benchmark", "stop other programs on the board while benchmarking"))
    return out


def diagnose(target: Target, *, connect: Callable[[Target], Transport] = open_transport) -> list[Diagnosis]:
    """Findings for one target, never raising for a board problem (bugs still raise)."""
    opts = target.options
    if isinstance(opts, LabgridOptions):
        from harness.lab.labgrid_doctor import diagnose_labgrid  # labgrid loads only for its targets

        return diagnose_labgrid(target, lambda board: diagnose(board, connect=connect))
    if isinstance(opts, SerialOptions):
        return _diagnose_serial(target)
    python = opts.python
    # A local board stages nothing; its disk is checked where an SSH board would keep its cache.
    workdir = opts.workdir if isinstance(opts, SshOptions) else DEFAULT_WORKDIR
    try:
        transport = connect(target)
    except HarnessError as exc:
        return [Diagnosis("connect", ERROR, exc.message, exc.hint or f"check [targets.{target.name}]")]
    try:
        findings = [_connect_finding(transport)]
        try:
            report = _run_probe(transport, python, workdir)
        except HarnessError as exc:
            return [*findings, Diagnosis("python", ERROR, exc.message,
                                       (exc.hint or "").replace("[targets.NAME]", f"[targets.{target.name}]"))]
        return findings + findings_from_report(target, python, report)
    finally:
        transport.close()


def _diagnose_serial(target: Target) -> list[Diagnosis]:
    """Say HELLO to a microcontroller (starting the emulator for mcu-sim) and report what it is."""
    from harness.lab.drivers.mcu import McuDriver

    try:
        driver = McuDriver(target)
    except HarnessError as exc:
        return [Diagnosis("connect", ERROR, exc.message, exc.hint or f"check [targets.{target.name}]")]
    try:
        hello = driver.probe()
    except HarnessError as exc:
        return [Diagnosis("connect", ERROR, exc.message, exc.hint or f"check port and baud of [targets.{target.name}]")]
    finally:
        driver.close()
    board, serial = hello.get("board") or {}, hello.get("serial") or {}
    runtime, clock = hello.get("runtime") or {}, hello.get("clock") or {}
    out = [
        Diagnosis("connect", OK, f"{board.get('model')} answered HELLO ({hello.get('agent_version')}, "
                f"{serial.get('baud')} baud)"),
        Diagnosis("runtime", OK, f"TFLite Micro {runtime.get('version')}, arena {serial.get('arena_bytes')} B, "
                f"models up to {serial.get('max_model_bytes')} B"),
        Diagnosis("board", OK, f"{board.get('cpu')}; timer {clock.get('name')}, "
                f"{clock.get('resolution_ns')} ns resolution"),
    ]
    if hello.get("emulated"):
        out.append(Diagnosis("board", WARN, "emulated: its timings are host timings of the TFLite Micro "
                           "kernels, not MCU timings", "benchmark a real board for MCU latency"))
    return out


def diagnose_all(targets: Sequence[Target]) -> list[tuple[Target, list[Diagnosis]]]:
    """Every target at once: one slow or dead board does not hold back the others."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets)), thread_name_prefix="doctor") as pool:
        results = list(pool.map(diagnose, targets))
    return list(zip(targets, results, strict=True))
