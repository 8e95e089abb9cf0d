"""targets.toml: what the boards of a lab are.

Grammar (one table per board)::

    [targets.NAME]
    kind = "local" | "ssh" | "serial"
    # facts about the board, used by comparison tables (all optional)
    description = "Raspberry Pi 4B, 4 GB"
    ram = "4GiB"            # an integer number of bytes, or a string with a unit
    flash = "16MB"
    price_usd = 55.0
    power_w = 6.4           # active power draw, W (> 0)
    idle_power_w = 2.7      # W (>= 0, at most power_w)
    power = "ina3221"       # a power sensor the agent reads on the board: "ina3221" (a Jetson's
                            # INA3221 monitors in sysfs) or "rpi5-pmic" (vcgencmd pmic_read_adc on a
                            # Raspberry Pi 5); measured power then replaces power_w / idle_power_w
                            # in the energy table. Not on serial boards: they run no Linux agent.
    # how to run (all optional)
    threads = [1, 4]        # default thread counts when --threads is not given
    runtime = "auto"        # auto | ai_edge_litert | tflite_runtime | tensorflow
    xnnpack = true

    kind = "local":  python (default: the Python running harness),
                     timeout_s (longest the board may stay silent before the run is stopped, default 120)
    kind = "ssh":    host (required), user, port (1 to 65535), identity_file, known_hosts,
                     python (default python3), workdir (default ~/.cache/harness),
                     accept_new_host_key (default false), connect_timeout_s (default 10),
                     timeout_s (longest silence, default 120)
    kind = "serial": port (device path or pyserial URL: rfc2217://, socket://; required unless
                     emulator = true), baud (default 115200),
                     emulator = true to have harness start device_agents' emulated MCU itself on a pty,
                     arena (emulator arena size, default 256KiB), max_model (emulator's largest model),
                     command_timeout_s (longest one device command may take, default 10).
                     A serial timeout_s is the old name of command_timeout_s: still read as such,
                     with a warning, until it takes the meaning it has on the other kinds.

Each kind's keys are one frozen dataclass (LocalOptions, SshOptions, SerialOptions) that holds
every default; values are checked when the file loads (a timeout > 0 s, a port in 1..65535, a
python that is a string, a baud > 0, sizes > 0). Unknown keys and bad values are errors that
cite the file and the key. Passwords are refused: use keys, ssh-agent and ~/.ssh/config.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser before it joined the standard library
    import tomli as tomllib

log = logging.getLogger(__name__)

KINDS = ("local", "ssh", "serial")
POWER_SOURCES = ("ina3221", "rpi5-pmic")  # the readers of tflite_agent.py's power mode
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime", "tensorflow")
SILENCE_TIMEOUT_S = 120.0  # longest a board may stay quiet: one block of a very slow model
DEFAULT_WORKDIR = "~/.cache/harness"  # the per-user cache of pushed files on an SSH board

_COMMON = {"kind", "description", "ram", "flash", "price_usd", "power_w", "idle_power_w", "power",
           "threads", "runtime", "xnnpack"}
_SECRET_KEYS = {"password", "passphrase", "pass", "secret"}

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


@dataclass(frozen=True)
class LocalOptions:
    """kind = "local": this machine is the board."""

    python: str = sys.executable  # the Python running harness
    timeout_s: float = SILENCE_TIMEOUT_S


@dataclass(frozen=True)
class SshOptions:
    """kind = "ssh": a Linux board; what targets.toml leaves out comes from ~/.ssh/config."""

    host: str
    user: str | None = None  # None: ~/.ssh/config User, else the local login name
    port: int | None = None  # None: ~/.ssh/config Port, else 22
    identity_file: str | None = None
    known_hosts: str | None = None
    python: str = "python3"  # the board's python
    workdir: str = DEFAULT_WORKDIR
    accept_new_host_key: bool = False
    connect_timeout_s: float = 10.0  # TCP connect, SSH handshake, auth, and the dead-link probe
    timeout_s: float = SILENCE_TIMEOUT_S


@dataclass(frozen=True)
class SerialOptions:
    """kind = "serial": a microcontroller on a port, or the emulated MCU harness starts itself."""

    port: str | None = None  # None exactly when emulator is true: harness picks the pty
    baud: int = 115200
    emulator: bool = False
    arena: int = 256 * 1024  # the emulator's TFLite Micro arena: an ESP32-S3-class budget
    max_model: int | None = None  # the emulator's largest model; None: the emulator's own limit
    command_timeout_s: float = 10.0  # longest one device command (model load, one RUN batch) may take


TargetOptions = LocalOptions | SshOptions | SerialOptions
_OPTIONS: dict[str, type] = {"local": LocalOptions, "ssh": SshOptions, "serial": SerialOptions}


@dataclass(frozen=True)
class Target:
    """One board. ``options`` holds the keys of its kind, already validated, with their defaults."""

    name: str
    kind: str
    description: str = ""
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    price_usd: float | None = None
    power_w: float | None = None
    idle_power_w: float | None = None
    power: str | None = None  # a power reader the agent runs on the board (POWER_SOURCES); None: none
    threads: tuple[int, ...] = (1,)
    runtime: str = "auto"
    xnnpack: bool | None = None
    options: TargetOptions = field(default_factory=LocalOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.options, _OPTIONS.get(self.kind, ())):
            raise TypeError(f"target {self.name}: kind {self.kind!r} with {type(self.options).__name__}")

    def facts(self) -> dict[str, Any]:
        """What may be written into result files: no secrets, no connection details."""
        return {
            "kind": self.kind, "description": self.description, "ram_bytes": self.ram_bytes,
            "flash_bytes": self.flash_bytes, "price_usd": self.price_usd, "power_w": self.power_w,
            "idle_power_w": self.idle_power_w, "power": self.power,
        }


def _size_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return None


def parse_size(value: Any, *, where: str) -> int:
    """Bytes from an int or a string such as "512KiB" or "4 GB"."""
    size = _size_of(value)
    if size is None:
        raise ConfigError(f"{where}: {value!r} is not a size", hint='write bytes or e.g. "512KiB", "4GB"')
    return size


def _check_type(value: Any, types: tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


# Readers of option values: the value as stored, or ValueError saying what it must be.
def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _seconds(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value <= 0):
        raise ValueError("must be a positive number of seconds")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _tcp_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("must be a TCP port, a whole number from 1 to 65535")
    return value


def _bytes(value: Any) -> int:
    size = _size_of(value)
    if size is None:
        raise ValueError('is not a size: write bytes or e.g. "512KiB", "4MiB"')
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


_READERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "local": {"python": _text, "timeout_s": _seconds},
    "ssh": {"host": _text, "user": _text, "port": _tcp_port, "identity_file": _text, "known_hosts": _text,
            "python": _text, "workdir": _text, "accept_new_host_key": _flag, "connect_timeout_s": _seconds,
            "timeout_s": _seconds},
    # timeout_s: the old name of command_timeout_s on serial targets (see _serial_options)
    "serial": {"port": _text, "baud": _positive_int, "emulator": _flag, "arena": _bytes, "max_model": _bytes,
               "command_timeout_s": _seconds, "timeout_s": _seconds},
}


def _check_keys(kind: str, table: dict[str, Any], where: str, source: str) -> None:
    for key in table:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(f"{where}: key {key!r} would keep a secret in {source}",
                              hint="use an SSH key, ssh-agent or ~/.ssh/config instead")
        if key not in _COMMON and key not in _READERS[kind]:
            allowed = ", ".join(sorted(_COMMON | set(_READERS[kind])))
            raise ConfigError(f"{where}: unknown key {key!r} for kind {kind!r}",
                              hint=f"known keys: {allowed}")


def _read_options(kind: str, table: dict[str, Any], where: str) -> dict[str, Any]:
    values = {}
    for key, read in _READERS[kind].items():
        if key in table:
            try:
                values[key] = read(table[key])
            except ValueError as exc:
                raise ConfigError(f"{where}: {key} = {table[key]!r} {exc}") from None
    return values


def _serial_options(values: dict[str, Any], where: str, name: str, source: str) -> SerialOptions:
    if "timeout_s" in values:
        if "command_timeout_s" in values:
            raise ConfigError(f"{where}: both timeout_s and command_timeout_s are set",
                              hint="remove timeout_s: on a serial target it is the old name of command_timeout_s")
        log.warning("%s: [targets.%s] timeout_s on a serial target is read as command_timeout_s (the longest "
                    "one device command may take); rename it to command_timeout_s, as timeout_s will mean "
                    "the longest silence of the board, as on the other kinds", source, name)
        values["command_timeout_s"] = values.pop("timeout_s")
    if not values.get("emulator") and "port" not in values:
        raise ConfigError(f"{where}: a serial target needs port = \"/dev/ttyACM0\" or a pyserial URL",
                          hint="or emulator = true for the emulated MCU, which harness starts itself")
    if values.get("emulator") and "port" in values:
        raise ConfigError(f"{where}: port is chosen by harness for an emulated MCU (emulator = true)",
                          hint="remove port, or set emulator = false for a real board")
    return SerialOptions(**values)


def _options(kind: str, table: dict[str, Any], where: str, name: str, source: str) -> TargetOptions:
    values = _read_options(kind, table, where)
    if kind == "serial":
        return _serial_options(values, where, name, source)
    if kind == "ssh":
        if "host" not in values:
            raise ConfigError(f"{where}: an ssh target needs host = \"address or ~/.ssh/config alias\"")
        return SshOptions(**values)
    return LocalOptions(**values)


def _facts(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The keys every kind shares, as Target's keyword arguments."""
    threads = table.get("threads", [1])
    if isinstance(threads, int):
        threads = [threads]
    if (not isinstance(threads, list) or not threads
            or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in threads)):
        raise ConfigError(f"{where}: threads = {threads!r} must be a list of positive integers")
    runtime = table.get("runtime", "auto")
    if runtime not in RUNTIMES:
        raise ConfigError(f"{where}: runtime = {runtime!r} is not one of {', '.join(RUNTIMES)}")

    def size(key: str) -> int | None:
        return parse_size(table[key], where=f"{where} {key}") if key in table else None

    xnnpack = table.get("xnnpack")
    if xnnpack is not None:
        _check_type(xnnpack, (bool,), f"{where} xnnpack", "true or false")
    return {
        "description": str(_check_type(table.get("description", ""), (str,), f"{where} description", "a string")),
        "ram_bytes": size("ram"), "flash_bytes": size("flash"), **_energy_facts(table, where),
        "threads": tuple(threads), "runtime": runtime, "xnnpack": xnnpack,
    }


def _energy_facts(table: dict[str, Any], where: str) -> dict[str, Any]:
    """price_usd, power_w, idle_power_w (finite numbers: TOML also spells nan and inf) and power."""
    def number(key: str, zero_ok: bool = False) -> float | None:
        if key not in table:
            return None
        value = table[key]
        if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                or value < 0 or (value == 0 and not zero_ok)):
            raise ConfigError(f"{where}: {key} = {table[key]!r} must be a finite number "
                              f"{'of 0 or more' if zero_ok else 'above 0'}")
        return float(value)

    facts = {"price_usd": number("price_usd"), "power_w": number("power_w"),
             "idle_power_w": number("idle_power_w", zero_ok=True), "power": table.get("power")}
    if facts["power_w"] is not None and facts["idle_power_w"] is not None \
            and facts["idle_power_w"] > facts["power_w"]:
        raise ConfigError(f"{where}: idle_power_w = {table['idle_power_w']!r} is above power_w = "
                          f"{table['power_w']!r}", hint="power_w is the draw while the model runs, "
                          "idle_power_w the draw of the idle board")
    if facts["power"] is not None and facts["power"] not in POWER_SOURCES:
        raise ConfigError(f"{where}: power = {facts['power']!r} is not one of {', '.join(POWER_SOURCES)}",
                          hint='power = "ina3221" on a Jetson, "rpi5-pmic" on a Raspberry Pi 5; or '
                               "declare power_w and idle_power_w instead")
    return facts


def _target(name: str, table: Any, source: str) -> Target:
    where = f"{source}: [targets.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind = {kind!r} is not one of {', '.join(KINDS)}",
                          hint=f'add kind = "local", "ssh" or "serial" to [targets.{name}]')
    _check_keys(kind, table, where, source)
    if kind == "serial" and "power" in table:
        raise ConfigError(f"{where}: power = {table['power']!r}: a serial board runs no Linux agent, so "
                          "nothing on it can read a power sensor",
                          hint="remove power, and declare power_w (active) and idle_power_w, e.g. from a "
                               "USB power meter or the board's datasheet")
    return Target(name=name, kind=kind, options=_options(kind, table, where, name, source),
                  **_facts(table, where))


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
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
                          hint="save the targets file as UTF-8") from exc
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
