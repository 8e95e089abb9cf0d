"""harness doctor on serial boards: a HELLO over a real pty, and a port that is not there."""

from __future__ import annotations

from harness.config import parse_targets
from harness.lab.doctor import ERROR, OK, WARN, diagnose
from tests.agentrun import ROOT


def test_emulated_mcu_answers_and_says_it_is_emulated() -> None:
    target = parse_targets((ROOT / "targets.toml").read_text(), "targets.toml")["mcu-sim"]
    findings = diagnose(target)
    assert findings[0].check == "connect" and findings[0].level == OK
    assert "answered HELLO" in findings[0].what and "921600 baud" in findings[0].what
    assert any(f.check == "runtime" and "TFLite Micro" in f.what for f in findings)
    assert any(f.level == WARN and "emulated" in f.what for f in findings)


def test_missing_port_is_an_error_with_a_fix() -> None:
    target = parse_targets('[targets.nano]\nkind = "serial"\nport = "/dev/ttyHARNESS-none"\n'
                           'baud = 115200\ncommand_timeout_s = 2\n', "t.toml")["nano"]
    (finding,) = diagnose(target)
    assert finding.level == ERROR and "/dev/ttyHARNESS-none" in finding.what and finding.fix
