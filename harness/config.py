"""targets.toml: what the boards of a lab are.

Grammar (one table per board)::

    [targets.NAME]
    kind = "local" | "ssh" | "serial" | "labgrid"
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
    kind = "labgrid": place = "rpi4-03" (a place of a labgrid coordinator), or pool = "board=rpi4"
                     (every free place with these tags; also a TOML table {board = "rpi4"}),
                     coordinator ("HOST:PORT"; default $LG_COORDINATOR, else 127.0.0.1:20408),
                     reserve (default false: acquire; true: reserve the place and wait for it),
                     wait_s (how long to wait for a place someone else holds; default 0, and
                     300 with reserve), use = "ssh" | "serial" (which of the place's resources
                     runs the benchmark; default ssh), the keys of an ssh target but host, user
                     and port (the place's NetworkService supplies them), and baud (default: the
                     speed of the place's serial port) and command_timeout_s of a serial one.

Each kind's keys are one frozen dataclass (LocalOptions, SshOptions, SerialOptions, LabgridOptions,
which composes an SshOptions for the keys it shares with ssh targets) that holds
every default; values are checked when the file loads (a timeout > 0 s, a port in 1..65535, a
python that is a string, a baud > 0, sizes > 0). Unknown keys and bad values are errors that
cite the file and the key. Passwords are refused: use keys, ssh-agent and ~/.ssh/config.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config_values import (
    parse_size,
    parse_tags,
    read_address,
    read_bytes,
    read_flag,
    read_positive_int,
    read_seconds,
    read_tcp_port,
    read_text,
    read_use,
    read_wait,
)
from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser before it joined the standard library
    import tomli as tomllib

log = logging.getLogger(__name__)

KINDS = ("local", "ssh", "serial", "labgrid")
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime", "tensorflow")
SILENCE_TIMEOUT_S = 120.0  # longest a board may stay quiet: one block of a very slow model
DEFAULT_WORKDIR = "~/.cache/harness"  # the per-user cache of pushed files on an SSH board
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default (LG_COORDINATOR overrides it)
RESERVE_WAIT_S = 300.0  # how long a reservation waits for its place unless wait_s / --wait says
# What a labgrid place supplies itself (its NetworkService: address, username, port), so a labgrid
# target takes the other keys of an ssh target; of a serial target's keys, those of the line.
PLACE_SUPPLIES = ("host", "user", "port")
LABGRID_SERIAL_KEYS = ("baud", "command_timeout_s")

_COMMON = {"kind", "description", "ram", "flash", "price_usd", "power_w", "idle_power_w",
           "threads", "runtime", "xnnpack"}
_SECRET_KEYS = {"password", "passphrase", "pass", "secret"}


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


def _place_ssh() -> SshOptions:
    return SshOptions(host="")  # host, user and port: from the place's NetworkService


@dataclass(frozen=True)
class LabgridOptions:
    """kind = "labgrid": a place of a labgrid coordinator (or a pool of them, by tags), reached
    through the place's resources with the ssh or serial transport."""

    place: str | None = None  # exactly one of place and pool
    pool: tuple[tuple[str, str], ...] = ()  # (tag, value) pairs, sorted
    coordinator: str | None = None  # None: $LG_COORDINATOR, else DEFAULT_COORDINATOR
    reserve: bool = False
    wait_s: float | None = None  # None: 0 (refuse a held place at once), RESERVE_WAIT_S with reserve
    use: str = "ssh"
    ssh: SshOptions = field(default_factory=_place_ssh)
    baud: int | None = None  # None: the speed of the place's serial port
    command_timeout_s: float = SerialOptions.command_timeout_s

    @property
    def pool_name(self) -> str:
        """The pool as labgrid-client writes filters: "board=rpi4,ram=4g"."""
        return ",".join(f"{k}={v}" for k, v in self.pool)

    @property
    def wait_limit_s(self) -> float:
        if self.wait_s is not None:
            return self.wait_s
        return RESERVE_WAIT_S if self.reserve else 0.0


TargetOptions = LocalOptions | SshOptions | SerialOptions | LabgridOptions
_OPTIONS: dict[str, type] = {"local": LocalOptions, "ssh": SshOptions, "serial": SerialOptions,
                             "labgrid": LabgridOptions}


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
    threads: tuple[int, ...] = (1,)
    runtime: str = "auto"
    xnnpack: bool | None = None
    options: TargetOptions = field(default_factory=LocalOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.options, _OPTIONS.get(self.kind, ())):
            raise TypeError(f"target {self.name}: kind {self.kind!r} with {type(self.options).__name__}")

    def facts(self) -> dict[str, Any]:
        """What may be written into result files: no secrets, no connection details (a labgrid
        target's place or pool is a name in the lab, not an address)."""
        facts = {
            "kind": self.kind, "description": self.description, "ram_bytes": self.ram_bytes,
            "flash_bytes": self.flash_bytes, "price_usd": self.price_usd, "power_w": self.power_w,
            "idle_power_w": self.idle_power_w,
        }
        if isinstance(self.options, LabgridOptions):
            facts.update(place=self.options.place, pool=self.options.pool_name or None)
        return facts

    @property
    def serial_board(self) -> bool:
        """True when the benchmark runs over a serial line (a microcontroller: one core, no threads)."""
        return self.kind == "serial" or (isinstance(self.options, LabgridOptions) and self.options.use == "serial")


def _check_type(value: Any, types: tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


_READERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "local": {"python": read_text, "timeout_s": read_seconds},
    "ssh": {"host": read_text, "user": read_text, "port": read_tcp_port, "identity_file": read_text,
            "known_hosts": read_text, "python": read_text, "workdir": read_text, "accept_new_host_key": read_flag,
            "connect_timeout_s": read_seconds, "timeout_s": read_seconds},
    # timeout_s: the old name of command_timeout_s on serial targets (see _serial_options)
    "serial": {"port": read_text, "baud": read_positive_int, "emulator": read_flag, "arena": read_bytes,
               "max_model": read_bytes, "command_timeout_s": read_seconds, "timeout_s": read_seconds},
}
# A labgrid target: its own keys, an ssh target's but what the place supplies, a serial line's.
_LABGRID_OWN: dict[str, Callable[[Any], Any]] = {
    "place": read_text, "pool": parse_tags, "coordinator": read_address, "reserve": read_flag, "wait_s": read_wait,
    "use": read_use}
_LABGRID_SSH = {k: read for k, read in _READERS["ssh"].items() if k not in PLACE_SUPPLIES}
_READERS["labgrid"] = {**_LABGRID_OWN, **_LABGRID_SSH, **{k: _READERS["serial"][k] for k in LABGRID_SERIAL_KEYS}}


def _check_keys(kind: str, table: dict[str, Any], where: str, source: str) -> None:
    for key in table:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(f"{where}: key {key!r} would keep a secret in {source}",
                              hint="use an SSH key, ssh-agent or ~/.ssh/config instead")
        if kind == "labgrid" and key in PLACE_SUPPLIES:
            raise ConfigError(f"{where}: {key} comes from the place's NetworkService on a labgrid target",
                              hint=f"remove {key}; change the exporter's NetworkService to change it")
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


def _labgrid_options(values: dict[str, Any], where: str) -> LabgridOptions:
    if ("place" in values) == ("pool" in values):
        raise ConfigError(f"{where}: a labgrid target needs place = \"NAME\" or pool = \"TAG=VALUE\" "
                          "(one of them)", hint='place names one place of the coordinator; pool = "board=rpi4" '
                                                "every free place so tagged")
    ssh = {k: values.pop(k) for k in list(values) if k in _LABGRID_SSH}
    return LabgridOptions(ssh=SshOptions(host="", **ssh), **values)


def _options(kind: str, table: dict[str, Any], where: str, name: str, source: str) -> TargetOptions:
    values = _read_options(kind, table, where)
    if kind == "labgrid":
        return _labgrid_options(values, where)
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

    def number(key: str) -> float | None:
        if key not in table:
            return None
        return float(_check_type(table[key], (int, float), f"{where} {key}", "a number"))

    xnnpack = table.get("xnnpack")
    if xnnpack is not None:
        _check_type(xnnpack, (bool,), f"{where} xnnpack", "true or false")
    return {
        "description": str(_check_type(table.get("description", ""), (str,), f"{where} description", "a string")),
        "ram_bytes": size("ram"), "flash_bytes": size("flash"), "price_usd": number("price_usd"),
        "power_w": number("power_w"), "idle_power_w": number("idle_power_w"),
        "threads": tuple(threads), "runtime": runtime, "xnnpack": xnnpack,
    }


def _target(name: str, table: Any, source: str) -> Target:
    where = f"{source}: [targets.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind = {kind!r} is not one of {', '.join(KINDS)}",
                          hint=f'add kind = "local", "ssh", "serial" or "labgrid" to [targets.{name}]')
    _check_keys(kind, table, where, source)
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
