"""targets.toml parsing: pure logic, so plain strings in, dataclasses or ConfigError out."""

from __future__ import annotations

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
    assert t.options["port"] == 2222 and t.options["accept_new_host_key"] is True
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
