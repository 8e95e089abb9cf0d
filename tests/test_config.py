"""targets.toml parsing: pure logic, so plain strings in, dataclasses or ConfigError out."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import pytest

from harness import config
from harness.errors import ConfigError
from tests.agentrun import ROOT


def test_shipped_targets_parse_and_the_packaged_copy_matches() -> None:
    targets = config.parse_targets((ROOT / "targets.toml").read_text(), "targets.toml")
    assert targets["local"].kind == "local"
    assert (ROOT / "targets.toml").read_text() == config.DEFAULT_TARGETS.read_text()


def test_full_ssh_target_and_sizes() -> None:
    t = config.parse_targets('''
[targets.pi4]
kind = "ssh"
host = "pi4.lab"
user = "pi"
port = 2222
python = "/home/pi/venv/bin/python"
runtime = "tflite_runtime"
threads = [1, 4]
ram = "4GiB"
flash = 16000000
price_usd = 55
power_w = 6.4
accept_new_host_key = true
''', "t.toml")["pi4"]
    assert (t.ram_bytes, t.flash_bytes, t.threads, t.price_usd) == (4 * 1024**3, 16_000_000, (1, 4), 55.0)
    assert t.options == config.SshOptions(host="pi4.lab", user="pi", port=2222, python="/home/pi/venv/bin/python",
                                          accept_new_host_key=True)
    assert "host" not in t.facts() and "user" not in t.facts()  # no connection details in results


@pytest.mark.parametrize("body, words", [
    ('[targets.x]\nkind = "local"\nthreds = [1]\n', ["unknown key 'threds'", "t.toml", "[targets.x]"]),
    ('[targets.x]\nkind = "usb"\n', ["kind = 'usb'"]),
    ('[targets.x]\nkind = "ssh"\n', ["needs host"]),
    ('[targets.x]\nkind = "ssh"\nhost = "h"\npassword = "pw"\n', ["password", "ssh-agent"]),
    ('[targets.x]\nkind = "local"\nthreads = [0]\n', ["positive integers"]),
    ('[targets.x]\nkind = "local"\nram = "lots"\n', ["not a size"]),
    ('[targets.x]\nkind = "local"\nruntime = "onnx"\n', ["runtime = 'onnx'"]),
    ('[boards.x]\n', ["unknown top-level key 'boards'"]),
    ('[targets.x\n', ["not valid TOML"]),
])
def test_errors_name_the_file_and_the_key(body: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse_targets(body, "t.toml")
    for w in words:
        assert w in str(err.value)


def test_select_and_missing_file(tmp_path: Path) -> None:
    targets = config.parse_targets('[targets.a]\nkind = "local"\n[targets.b]\nkind = "local"\n', "t")
    assert [t.name for t in config.select(targets, [], Path("t"))] == ["a", "b"]
    with pytest.raises(ConfigError, match="known targets: a, b"):
        config.select(targets, ["c"], Path("t"))
    with pytest.raises(ConfigError, match="cannot read targets file"):
        config.load_targets(tmp_path / "missing.toml")


def test_each_kind_has_its_defaults_in_one_dataclass() -> None:
    targets = config.parse_targets('[targets.a]\nkind = "local"\n[targets.b]\nkind = "ssh"\nhost = "h"\n'
                                   '[targets.c]\nkind = "serial"\nport = "/dev/ttyACM0"\n', "t.toml")
    assert targets["a"].options == config.LocalOptions(python=sys.executable, timeout_s=120.0)
    b = targets["b"].options
    assert isinstance(b, config.SshOptions)
    assert (b.python, b.workdir, b.port, b.user, b.connect_timeout_s, b.timeout_s) == \
        ("python3", "~/.cache/harness", None, None, 10.0, 120.0)
    assert targets["c"].options == config.SerialOptions(port="/dev/ttyACM0", baud=115200, emulator=False,
                                                        arena=256 * 1024, command_timeout_s=10.0)
    for options in (targets["a"].options, b, targets["c"].options):
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.python = "x"


def test_every_key_of_a_kind_is_a_field_of_its_dataclass() -> None:
    """The keys targets.toml accepts and the fields that hold them are the same set (serial's
    timeout_s aside: it is the old name of command_timeout_s)."""
    for kind, cls in (("local", config.LocalOptions), ("ssh", config.SshOptions), ("serial", config.SerialOptions)):
        keys = set(config._READERS[kind]) - ({"timeout_s"} if kind == "serial" else set())
        assert keys == {f.name for f in dataclasses.fields(cls)}, kind


def test_a_target_and_its_options_are_of_one_kind() -> None:
    with pytest.raises(TypeError, match="kind 'serial' with LocalOptions"):
        config.Target(name="x", kind="serial")


@pytest.mark.parametrize("kind, line", [
    ("local", "timeout_s = 0"),
    ("local", "timeout_s = -5"),
    ("local", "timeout_s = nan"),
    ("local", 'timeout_s = "60"'),
    ("local", "python = 3"),
    ("local", 'python = ""'),
    ("ssh", "port = 70000"),
    ("ssh", "port = 0"),
    ("ssh", "port = true"),
    ("ssh", 'port = "22"'),
    ("ssh", "python = 3.11"),
    ("ssh", "python = ['python3']"),
    ("ssh", "connect_timeout_s = 0"),
    ("ssh", "timeout_s = -1.5"),
    ("ssh", "user = 1000"),
    ("ssh", "workdir = 7"),
    ("ssh", 'accept_new_host_key = "yes"'),
    ("serial", "baud = 0"),
    ("serial", "baud = -9600"),
    ("serial", "baud = 115200.5"),
    ("serial", "command_timeout_s = 0"),
    ("serial", "timeout_s = -1"),
    ("serial", 'arena = "lots"'),
    ("serial", "arena = 0"),
    ("serial", "max_model = -1"),
    ("serial", 'emulator = "true"'),
])
def test_bad_values_are_errors_naming_the_file_and_the_key(kind: str, line: str) -> None:
    base = {"local": "", "ssh": 'host = "h"\n', "serial": 'port = "/dev/ttyACM0"\n'}[kind]
    body = f'[targets.board]\nkind = "{kind}"\n{base}{line}\n'
    with pytest.raises(ConfigError) as err:
        config.parse_targets(body, "lab.toml")
    key = line.split()[0]
    assert str(err.value).startswith(f"lab.toml: [targets.board]: {key} = "), str(err.value)


def test_port_limits_are_inclusive() -> None:
    for port in (1, 65535):
        t = config.parse_targets(f'[targets.b]\nkind = "ssh"\nhost = "h"\nport = {port}\n', "t.toml")["b"]
        assert isinstance(t.options, config.SshOptions) and t.options.port == port


def test_serial_timeout_s_is_still_the_command_timeout_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="harness.config"):
        t = config.parse_targets('[targets.nano]\nkind = "serial"\nport = "/dev/ttyACM0"\ntimeout_s = 3\n',
                                 "lab.toml")["nano"]
    assert isinstance(t.options, config.SerialOptions) and t.options.command_timeout_s == 3.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for word in ("lab.toml", "[targets.nano]", "timeout_s", "command_timeout_s"):
        assert word in warnings[0]


def test_serial_command_timeout_s_loads_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="harness.config"):
        t = config.parse_targets('[targets.nano]\nkind = "serial"\nport = "/dev/ttyACM0"\n'
                                 'command_timeout_s = 4\n', "lab.toml")["nano"]
    assert isinstance(t.options, config.SerialOptions) and t.options.command_timeout_s == 4.0
    assert not caplog.records


def test_serial_timeout_s_beside_command_timeout_s_is_an_error() -> None:
    with pytest.raises(ConfigError, match="both timeout_s and command_timeout_s") as err:
        config.parse_targets('[targets.nano]\nkind = "serial"\nport = "p"\ntimeout_s = 3\n'
                             'command_timeout_s = 4\n', "lab.toml")
    assert "lab.toml" in str(err.value) and "remove timeout_s" in str(err.value)


def test_command_timeout_s_is_a_serial_key_only() -> None:
    with pytest.raises(ConfigError, match="unknown key 'command_timeout_s' for kind 'ssh'"):
        config.parse_targets('[targets.pi]\nkind = "ssh"\nhost = "h"\ncommand_timeout_s = 4\n', "t.toml")


def test_a_labgrid_target_takes_an_ssh_targets_keys_but_what_the_place_supplies() -> None:
    t = config.parse_targets('''
[targets.pi]
kind = "labgrid"
place = "rpi4-03"
coordinator = "labhost:20408"
reserve = true
python = "/home/pi/venv/bin/python"
identity_file = "~/.ssh/lab"
connect_timeout_s = 4
threads = [1, 4]
''', "lab.toml")["pi"]
    opts = t.options
    assert isinstance(opts, config.LabgridOptions)
    assert (opts.place, opts.pool, opts.coordinator, opts.reserve, opts.use, opts.wait_limit_s) == \
        ("rpi4-03", (), "labhost:20408", True, "ssh", config.RESERVE_WAIT_S)
    assert opts.ssh == config.SshOptions(host="", python="/home/pi/venv/bin/python", identity_file="~/.ssh/lab",
                                         connect_timeout_s=4.0)
    assert (opts.baud, opts.command_timeout_s) == (None, 10.0)  # the place's serial port speed, by default
    assert t.facts()["place"] == "rpi4-03" and "labhost" not in str(t.facts())  # no connection details
    assert t.threads == (1, 4) and not t.serial_board


def test_a_labgrid_pool_and_a_serial_place() -> None:
    targets = config.parse_targets('[targets.p]\nkind = "labgrid"\npool = "board=rpi4,ram=4g"\n'
                                   '[targets.m]\nkind = "labgrid"\npool = {board = "nano33"}\nuse = "serial"\n'
                                   "baud = 921600\nwait_s = 0\n", "lab.toml")
    p, m = targets["p"].options, targets["m"].options
    assert isinstance(p, config.LabgridOptions) and isinstance(m, config.LabgridOptions)
    assert p.pool == (("board", "rpi4"), ("ram", "4g")) and p.pool_name == "board=rpi4,ram=4g" and p.place is None
    assert (m.use, m.baud, m.wait_limit_s) == ("serial", 921600, 0.0) and targets["m"].serial_board


def test_every_key_of_a_labgrid_target_is_a_field_of_its_options() -> None:
    keys = set(config._READERS["labgrid"])
    own = {f.name for f in dataclasses.fields(config.LabgridOptions)} - {"ssh"}
    ssh = {f.name for f in dataclasses.fields(config.SshOptions)} - set(config.PLACE_SUPPLIES)
    assert keys == own | ssh


@pytest.mark.parametrize("line, words", [
    ("", ["needs place", "or pool"]),
    ('place = "a"\npool = "board=rpi4"', ["needs place", "one of them"]),
    ('place = "a"\nhost = "10.0.0.7"', ["host comes from the place's NetworkService"]),
    ('place = "a"\nuser = "pi"', ["user comes from the place's NetworkService"]),
    ('place = "a"\nport = 22', ["port comes from the place's NetworkService"]),
    ('place = "a"\npassword = "pw"', ["secret"]),
    ('place = "a"\nemulator = true', ["unknown key 'emulator'"]),
    ('place = "a"\nuse = "usb"', ["use = 'usb' must be one of ssh, serial"]),
    ('place = "a"\ncoordinator = "labhost"', ['must be "HOST:PORT"']),
    ('place = "a"\nwait_s = -1', ["wait_s = -1"]),
    ('pool = "board"', ['tags as "KEY=VALUE']),
    ('pool = "Board=rpi4"', ["keys are [a-z][a-z0-9_]+"]),
    ('pool = {board = 4}', ["board=4"]),
])
def test_bad_labgrid_targets_are_errors_naming_the_file_and_the_key(line: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse_targets(f'[targets.pi]\nkind = "labgrid"\n{line}\n', "lab.toml")
    assert str(err.value).startswith("lab.toml: [targets.pi]")
    for w in words:
        assert w in str(err.value), str(err.value)
