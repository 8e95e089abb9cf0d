"""targets.toml: what the boards of a lab are.

Grammar (one table per board)::

    [targets.NAME]
    kind = "local" | "ssh" | "serial"
    # facts about the board, used by comparison tables (all optional)
    description = "Raspberry Pi 4B, 4 GB"
    ram = "4GiB"            # an integer number of bytes, or a string with a unit
    flash = "16MB"
    price_usd = 55.0
    power_w = 6.4           # active power draw
    idle_power_w = 2.7
    # how to run (all optional)
    threads = [1, 4]        # default thread counts when --threads is not given
    runtime = "auto"        # auto | ai_edge_litert | tflite_runtime | tensorflow
    xnnpack = true

    timeout_s = 120         # longest the board may stay silent before the run is stopped

    kind = "local":  python (default: the Python running harness)
    kind = "ssh":    host (required), user, port, identity_file, known_hosts, python, workdir,
                     accept_new_host_key (default false), connect_timeout_s
    kind = "serial": port (device path or pyserial URL: rfc2217://, socket://; required unless
                     emulator = true), baud (default 115200),
                     emulator = true to have harness start device_agents' emulated MCU itself on a pty,
                     arena (emulator arena size), max_model (emulator's largest model accepted),
                     timeout_s (longest one device command may take, default 10)

Unknown keys are errors that cite the file and the key. Passwords are refused: use keys,
ssh-agent and ~/.ssh/config.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser before it joined the standard library
    import tomli as tomllib

KINDS = ("local", "ssh", "serial")
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime", "tensorflow")

_COMMON = {"kind", "description", "ram", "flash", "price_usd", "power_w", "idle_power_w",
           "threads", "runtime", "xnnpack"}
_KIND_KEYS = {
    "local": {"python", "timeout_s"},
    "ssh": {"host", "user", "port", "identity_file", "known_hosts", "python", "workdir",
            "accept_new_host_key", "connect_timeout_s", "timeout_s"},
    "serial": {"port", "baud", "emulator", "arena", "max_model", "timeout_s"},
}
_SECRET_KEYS = {"password", "passphrase", "pass", "secret"}

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


@dataclass(frozen=True)
class Target:
    """One board. ``options`` holds the kind-specific keys, already validated."""

    name: str
    kind: str
    description: str = ""
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    price_usd: float | None = None
    power_w: float | None = None
    idle_power_w: float | None = None
    threads: tuple[int, ...] = (1,)
    runtime: str = "auto"
    xnnpack: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """What may be written into result files: no secrets, no connection details."""
        return {
            "kind": self.kind, "description": self.description, "ram_bytes": self.ram_bytes,
            "flash_bytes": self.flash_bytes, "price_usd": self.price_usd, "power_w": self.power_w,
            "idle_power_w": self.idle_power_w,
        }


def parse_size(value: Any, *, where: str) -> int:
    """Bytes from an int or a string such as "512KiB" or "4 GB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise ConfigError(f"{where}: {value!r} is not a size", hint='write bytes or e.g. "512KiB", "4GB"')


def _check_type(value: Any, types: tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def _target(name: str, table: Any, source: str) -> Target:
    where = f"{source}: [targets.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind = {kind!r} is not one of {', '.join(KINDS)}",
                          hint=f'add kind = "local", "ssh" or "serial" to [targets.{name}]')
    for key in table:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(f"{where}: key {key!r} would keep a secret in {source}",
                              hint="use an SSH key, ssh-agent or ~/.ssh/config instead")
        if key not in _COMMON and key not in _KIND_KEYS[kind]:
            allowed = ", ".join(sorted(_COMMON | _KIND_KEYS[kind]))
            raise ConfigError(f"{where}: unknown key {key!r} for kind {kind!r}",
                              hint=f"known keys: {allowed}")
    threads = table.get("threads", [1])
    if isinstance(threads, int):
        threads = [threads]
    if (not isinstance(threads, list) or not threads
            or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in threads)):
        raise ConfigError(f"{where}: threads = {threads!r} must be a list of positive integers")
    runtime = table.get("runtime", "auto")
    if runtime not in RUNTIMES:
        raise ConfigError(f"{where}: runtime = {runtime!r} is not one of {', '.join(RUNTIMES)}")
    options = {k: v for k, v in table.items() if k in _KIND_KEYS[kind]}
    if kind == "ssh" and not isinstance(options.get("host"), str):
        raise ConfigError(f"{where}: an ssh target needs host = \"address or ~/.ssh/config alias\"")
    if kind == "serial" and not options.get("emulator") and not isinstance(options.get("port"), str):
        raise ConfigError(f"{where}: a serial target needs port = \"/dev/ttyACM0\" or a pyserial URL",
                          hint="or emulator = true for the emulated MCU, which harness starts itself")
    if kind == "serial" and options.get("emulator") and "port" in options:
        raise ConfigError(f"{where}: port is chosen by harness for an emulated MCU (emulator = true)",
                          hint="remove port, or set emulator = false for a real board")
    if kind == "serial" and "baud" in options and (not isinstance(options["baud"], int)
                                                   or isinstance(options["baud"], bool) or options["baud"] <= 0):
        raise ConfigError(f"{where}: baud = {options['baud']!r} must be a positive integer (e.g. 115200)")
    for key in ("accept_new_host_key", "emulator"):
        if key in options:
            _check_type(options[key], (bool,), f"{where} {key}", "true or false")
    for key in ("baud", "connect_timeout_s", "timeout_s"):
        if key in options:
            _check_type(options[key], (int, float), f"{where} {key}", "a number")
    if kind == "ssh" and "port" in options:
        _check_type(options["port"], (int,), f"{where} port", "an integer")
    for key in ("arena", "max_model"):
        if key in options:
            options[key] = parse_size(options[key], where=f"{where} {key}")

    def size(key: str) -> int | None:
        return parse_size(table[key], where=f"{where} {key}") if key in table else None

    def number(key: str) -> float | None:
        if key not in table:
            return None
        return float(_check_type(table[key], (int, float), f"{where} {key}", "a number"))

    xnnpack = table.get("xnnpack")
    if xnnpack is not None:
        _check_type(xnnpack, (bool,), f"{where} xnnpack", "true or false")
    return Target(
        name=name, kind=kind,
        description=str(_check_type(table.get("description", ""), (str,), f"{where} description", "a string")),
        ram_bytes=size("ram"), flash_bytes=size("flash"), price_usd=number("price_usd"),
        power_w=number("power_w"), idle_power_w=number("idle_power_w"),
        threads=tuple(threads), runtime=runtime, xnnpack=xnnpack, options=options,
    )


def parse_targets(text: str, source: str) -> dict[str, Target]:
    """Targets by name, in file order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"targets"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {sorted(unknown)[0]!r}",
                          hint="boards go in [targets.NAME] tables")
    tables = data.get("targets", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{source}: no [targets.NAME] table", hint='add [targets.local] kind = "local"')
    return {name: _target(name, table, source) for name, table in tables.items()}


DEFAULT_TARGETS = Path(__file__).with_name("default_targets.toml")


def load_targets(path: Path | None) -> tuple[dict[str, Target], Path]:
    """Targets from ``path``, else ./targets.toml, else the defaults shipped with harness."""
    if path is None:
        path = Path("targets.toml") if Path("targets.toml").is_file() else DEFAULT_TARGETS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read targets file {path}: {exc.strerror}",
                          hint="pass --targets FILE, or create targets.toml") from exc
    return parse_targets(text, str(path)), path


def select(targets: dict[str, Target], names: list[str], source: Path) -> list[Target]:
    """The named targets, or every target when ``names`` is empty."""
    if not names:
        return list(targets.values())
    missing = [n for n in names if n not in targets]
    if missing:
        raise ConfigError(f"{source}: no target named {missing[0]!r}",
                          hint=f"known targets: {', '.join(targets)}")
    return [targets[n] for n in names]
