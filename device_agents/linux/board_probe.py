"""harness board probe: what `harness doctor` needs to know about a Linux board, as one JSON object.

Runs on the board with the target's python, which may be too old for the agent: this file keeps to
Python 3.5 syntax and the standard library (tests/test_code_quality.py checks it with vermin), so an
old python still reports *that* it is old instead of failing with a SyntaxError. It is sent as text
(``python -c TEXT WORKDIR``) and so needs no writable directory on the board; it never imports harness.

    argv: WORKDIR   the board's cache directory (free disk is measured where it is, or would be)

Prints one JSON object: python, executable, prefix, venv; ensurepip (False when this python can
make no venv with pip: Debian and Ubuntu ship it in pythonX.Y-venv); numpy or numpy_error; runtimes (for
ai_edge_litert and tflite_runtime: None when absent, {"version"} when it imports, {"error"} when it
does not; tensorflow is reported as installed, never imported); disk_free and disk_path, or
disk_error; model, machine, cores; governors (cpuN: scaling_governor); throttled (vcgencmd
get_throttled bits, on a Raspberry Pi); temp_c (hottest thermal zone); load1.
"""

import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys

RUNTIMES = (("ai_edge_litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
            ("tflite_runtime", "tflite_runtime.interpreter", "tflite-runtime"))
CPU_DIR = "/sys/devices/system/cpu"
THERMAL_DIR = "/sys/class/thermal"


def read(path):  # type: (str) -> object
    """The text of a small sysfs/procfs file, or None."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").strip("\x00\n ")
    except (OSError, IOError):
        return None


def version(dist):  # type: (str) -> object
    """The installed version of a distribution, or None (importlib.metadata is Python >= 3.8)."""
    try:
        from importlib import metadata  # novermin (3.8+; older pythons take the except)
        return metadata.version(dist)
    except Exception:
        return None


def runtimes():  # type: () -> dict
    found = {}  # type: dict
    for name, module, dist in RUNTIMES:
        if importlib.util.find_spec(name) is None:
            found[name] = None
            continue
        try:
            __import__(module)
            found[name] = {"version": version(dist) or "?"}
        except Exception as exc:
            found[name] = {"error": "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[-1:])}
    # Importing tensorflow takes seconds and gigabytes: report it as installed, not imported.
    tf = version("tensorflow") or version("tensorflow-cpu")
    found["tensorflow"] = {"version": tf, "not_imported": True} if tf else None
    return found


def disk(workdir):  # type: (str) -> dict
    """Free bytes where the cache is, or where it would be created (its nearest existing parent)."""
    path = os.path.expanduser(workdir)
    while path and not os.path.isdir(path):
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path or "/")
        return {"disk_free": st.f_bavail * st.f_frsize, "disk_path": path or "/"}
    except OSError as exc:
        return {"disk_error": str(exc)}


def governors():  # type: () -> dict
    found = {}
    for cpu in sorted(os.listdir(CPU_DIR)) if os.path.isdir(CPU_DIR) else []:
        governor = read(os.path.join(CPU_DIR, cpu, "cpufreq", "scaling_governor"))
        if cpu[3:].isdigit() and governor:
            found[cpu] = governor
    return found


def throttled():  # type: () -> object
    """vcgencmd get_throttled as an int (a Raspberry Pi's firmware), or None elsewhere."""
    try:
        p = subprocess.Popen(["vcgencmd", "get_throttled"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        text = p.communicate(timeout=5)[0].decode()
        return int(text.strip().split("=")[1], 16) if "=" in text else None
    except Exception:  # no vcgencmd, or it hung or answered oddly: not a Raspberry Pi finding
        return None


def hottest():  # type: () -> object
    temps = []
    for zone in os.listdir(THERMAL_DIR) if os.path.isdir(THERMAL_DIR) else []:
        t = read(os.path.join(THERMAL_DIR, zone, "temp"))
        if isinstance(t, str) and t.lstrip("-").isdigit() and -40000 < int(t) < 150000:
            temps.append(int(t) / 1000.0)
    return max(temps) if temps else None


def probe(workdir):  # type: (str) -> dict
    out = {"python": platform.python_version(), "executable": sys.executable, "prefix": sys.prefix,
           "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
           "ensurepip": importlib.util.find_spec("ensurepip") is not None}
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except Exception as exc:
        out["numpy_error"] = "%s: %s" % (type(exc).__name__, exc)
    out["runtimes"] = runtimes()
    out.update(disk(workdir))
    out["model"] = (read("/proc/device-tree/model") or read("/sys/firmware/devicetree/base/model")
                    or read("/sys/class/dmi/id/product_name"))
    out["machine"] = platform.machine()
    out["cores"] = os.cpu_count()
    out["governors"] = governors()
    bits = throttled()
    if bits is not None:
        out["throttled"] = bits
    out["temp_c"] = hottest()
    with contextlib.suppress(OSError):  # no load average on this system
        out["load1"] = os.getloadavg()[0]
    return out


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
