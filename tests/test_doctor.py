"""harness doctor: pure findings from hand-made reports, then real boards over real sshd."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.cli import main
from harness.config import parse_targets
from harness.lab.doctor import ERROR, OK, WARN, Diagnosis, diagnose, findings_from_report, ready
from harness.render.doctor import doctor_json, doctor_summary, doctor_table
from tests.environment import ROOT_WHY, is_root, needs

if TYPE_CHECKING:
    from tests.sshd import Lab
    from tests.sshfixtures import SshEnv

pytest_plugins = ("tests.sshfixtures",)

needs_root = needs(is_root(), ROOT_WHY)

PI = parse_targets('[targets.pi]\nkind = "ssh"\nhost = "pi"\n', "t.toml")["pi"]
GOOD = {"python": "3.11.2", "executable": "/home/pi/venv/bin/python", "prefix": "/home/pi/venv",
        "venv": True, "numpy": "1.26.4",
        "runtimes": {"ai_edge_litert": None, "tflite_runtime": {"version": "2.14.0"}, "tensorflow": None},
        "disk_free": 5 * 1024**3, "disk_path": "/home/pi", "model": "Raspberry Pi 4 Model B Rev 1.4",
        "machine": "aarch64", "cores": 4, "governors": {"cpu0": "performance"}, "throttled": 0,
        "temp_c": 48.0, "load1": 0.1}


def by_check(findings: list[Diagnosis], check: str) -> list[Diagnosis]:
    return [f for f in findings if f.check == check]


def test_a_ready_pi() -> None:
    findings = findings_from_report(PI, "/home/pi/venv/bin/python", GOOD)
    assert ready(findings)
    assert all(f.level == OK and f.fix is None for f in findings)
    assert "Raspberry Pi 4" in by_check(findings, "board")[0].what
    assert "tflite_runtime 2.14.0" in by_check(findings, "runtime")[0].what


def test_every_problem_has_its_fix() -> None:
    report = {**GOOD, "python": "3.7.3", "governors": {"cpu0": "ondemand", "cpu1": "ondemand"},
              "throttled": 0x50005, "disk_free": 5 * 1024**2, "temp_c": 83.0, "load1": 3.5}
    report.pop("numpy")
    report["numpy_error"] = "ModuleNotFoundError: No module named 'numpy'"
    findings = findings_from_report(PI, "/home/pi/venv/bin/python", report)
    assert not ready(findings)
    for f in findings:
        assert (f.level == OK) == (f.fix is None), f
    assert by_check(findings, "python")[0].level == ERROR
    numpy = by_check(findings, "numpy")[0]
    assert numpy.level == ERROR and numpy.fix is not None
    assert "/home/pi/venv/bin/python -m pip install numpy" in numpy.fix and "/home/pi/venv" in numpy.fix
    gov = by_check(findings, "governor")[0]
    assert gov.level == WARN and "governor is ondemand: results will drift" in gov.what
    assert gov.fix and "performance" in gov.fix
    throttle = " ".join(f.what for f in by_check(findings, "throttling"))
    assert "now under-voltage, throttled" in throttle and "since boot under-voltage, throttled" in throttle
    assert "83" in throttle
    assert by_check(findings, "disk")[0].level == ERROR
    assert by_check(findings, "load")[0].level == WARN


def test_runtime_findings() -> None:
    none = {**GOOD, "runtimes": {"ai_edge_litert": None, "tflite_runtime": None, "tensorflow": None}}
    f = by_check(findings_from_report(PI, "python3", none), "runtime")
    assert f[0].level == ERROR and f[0].fix and "python3 -m pip install ai-edge-litert" in f[0].fix
    numpy2 = {**GOOD, "runtimes": {"ai_edge_litert": None, "tensorflow": None, "tflite_runtime": {
        "error": "ImportError: numpy.core.multiarray failed to import"}}}
    f = by_check(findings_from_report(PI, "python3", numpy2), "runtime")
    assert f[0].level == ERROR and f[0].fix and "numpy<2" in f[0].fix
    litert = parse_targets('[targets.pi]\nkind = "ssh"\nhost = "pi"\nruntime = "ai_edge_litert"\n', "t")["pi"]
    f = by_check(findings_from_report(litert, "/home/pi/venv/bin/python", GOOD), "runtime")
    assert f[0].level == ERROR and "[targets.pi]" in f[0].what
    assert f[0].fix and "/home/pi/venv/bin/python -m pip install ai-edge-litert" in f[0].fix


def test_system_python_gets_a_venv_not_pip() -> None:
    """Debian 12 and Raspberry Pi OS refuse pip into the system python (PEP 668)."""
    system = {**GOOD, "venv": False, "prefix": "/usr",
              "runtimes": {"ai_edge_litert": None, "tflite_runtime": None, "tensorflow": None}}
    f = by_check(findings_from_report(PI, "/usr/bin/python3", system), "runtime")[0]
    assert f.level == ERROR and f.fix is not None
    assert "/usr/bin/python3 -m venv ~/harness-venv && ~/harness-venv/bin/pip install" in f.fix
    assert 'python = "~/harness-venv/bin/python" in [targets.pi]' in f.fix
    assert "apt-get" not in f.fix  # this python has ensurepip (GOOD does not say otherwise)


def test_system_python_without_ensurepip_gets_python3_venv_first() -> None:
    """A stock Debian 12 board: no venv module with pip until python3.11-venv is installed."""
    system = {**GOOD, "venv": False, "prefix": "/usr", "ensurepip": False,
              "runtimes": {"ai_edge_litert": None, "tflite_runtime": None, "tensorflow": None}}
    f = by_check(findings_from_report(PI, "/usr/bin/python3", system), "runtime")[0]
    assert f.fix is not None
    assert f.fix.startswith("sudo apt-get install python3.11-venv && /usr/bin/python3 -m venv ~/harness-venv")


def test_views() -> None:
    from rich.console import Console
    findings = findings_from_report(PI, "python3", {**GOOD, "governors": {"cpu0": "powersave"}})
    results = [(PI, findings), (PI, [Diagnosis("connect", ERROR, "connection refused", "start sshd")])]
    console = Console(width=200, record=True)
    console.print(doctor_table(results))
    text = console.export_text()
    assert "powersave" in text and "start sshd" in text
    assert [json.loads(line)["ready"] for line in doctor_json(results)] == [True, False]
    assert "NOT ready: pi" in doctor_summary(results)


# --- real boards -----------------------------------------------------------------------------

# Pythons older than the agent's 3.8, where pyenv keeps them (none are installed in a fresh CI image).
OLD_PYTHONS = sorted((Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions").glob("3.[567].*/bin/python"))


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python 3.5-3.7 installed (pyenv)")
@pytest.mark.parametrize("python", OLD_PYTHONS, ids=lambda p: p.parent.parent.name)
def test_a_python_too_old_for_the_agent_still_says_it_is_old(python: Path) -> None:
    """The probe keeps to Python 3.5 syntax: a board's old python runs it, and the finding is that
    it is old (with the fix), not that it could not run the check."""
    target = parse_targets(f'[targets.old]\nkind = "local"\npython = "{python}"\n', "t.toml")["old"]
    findings = diagnose(target)
    py = by_check(findings, "python")[0]
    assert py.level == ERROR and "older than the 3.8" in py.what and python.parent.parent.name in py.what
    assert py.fix and "[targets.old]" in py.fix
    assert by_check(findings, "numpy") and by_check(findings, "disk")  # the rest of the report came too



@needs_root
def test_tflite_runtime_only_board(ssh_env: SshEnv, ssh_lab: Lab, tflite214_python: Path) -> None:
    board = ssh_lab.boards[0]
    findings = diagnose(ssh_env.target(board, python=str(tflite214_python)))
    assert ready(findings), findings
    connect = by_check(findings, "connect")[0]
    assert "SHA256:" in connect.what and board.host in connect.what
    runtime = by_check(findings, "runtime")[0].what
    assert "tflite_runtime 2.14.0" in runtime and "ai_edge_litert" not in runtime
    assert by_check(findings, "numpy")[0].what.startswith("numpy 1.")
    # The same board asked for a runtime it does not have: the fix installs it into that venv.
    findings = diagnose(ssh_env.target(board, python=str(tflite214_python), runtime="ai_edge_litert"))
    bad = by_check(findings, "runtime")[-1]
    assert bad.level == ERROR and bad.fix and f"{tflite214_python} -m pip install ai-edge-litert" in bad.fix
    assert str(tflite214_python.parent.parent) in bad.fix


@needs_root
def test_litert_board(ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path) -> None:
    findings = diagnose(ssh_env.target(ssh_lab.boards[1], python=str(litert_python)))
    assert ready(findings), findings
    assert "ai_edge_litert" in by_check(findings, "runtime")[0].what


@needs_root
def test_missing_python_on_board(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    findings = diagnose(ssh_env.target(ssh_lab.boards[2], python="/home/pi/venv/bin/python"))
    assert not ready(findings)
    py = by_check(findings, "python")[0]
    assert py.level == ERROR and "/home/pi/venv/bin/python" in py.what
    assert py.fix and f"[targets.{ssh_lab.boards[2].name}]" in py.fix


@needs_root
def test_cli_doctor_exit_codes_and_parallel_boards(ssh_env: SshEnv, ssh_lab: Lab, tflite214_python: Path,
                                                   litert_python: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.sshfixtures import targets_toml
    b1, b2, _ = ssh_lab.boards[:3]
    tables = {
        "pi": ssh_env.table(b1, python=str(tflite214_python)),
        "jetson": ssh_env.table(b2, python=str(litert_python)),
        "refused": ssh_env.table(b1, port=2),
        "ghost": {"kind": "ssh", "host": ssh_lab.free_address(), "connect_timeout_s": 1},
    }
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml(tables))
    assert main(["doctor", "--targets", str(path), "pi", "jetson"]) == 0
    out = capsys.readouterr()
    assert "pi" in out.out and "jetson" in out.out and "ready: pi, jetson" in out.err
    t0 = time.monotonic()
    assert main(["doctor", "--targets", str(path), "--json"]) == 1
    elapsed = time.monotonic() - t0
    reports = {r["target"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {n: r["ready"] for n, r in reports.items()} == {"pi": True, "jetson": True, "refused": False,
                                                           "ghost": False}
    refused = reports["refused"]["findings"][0]
    assert refused["check"] == "connect" and "refused" in refused["what"] and refused["fix"]
    assert elapsed < 20  # the dead board's timeout runs beside the others, not after them


@needs_root
def test_the_probe_needs_no_writable_directory_on_the_board(ssh_env: SshEnv, ssh_lab: Lab,
                                                            litert_python: Path) -> None:
    """The probe travels as ``python -c TEXT``: a board where the cache directory cannot even be
    created is still diagnosed, and its disk is measured at the nearest directory that exists."""
    findings = diagnose(ssh_env.target(ssh_lab.boards[1], python=str(litert_python), workdir="/proc/no-cache/here"))
    assert by_check(findings, "python")[0].level == OK
    assert "ai_edge_litert" in by_check(findings, "runtime")[0].what
    assert "in /proc" in by_check(findings, "disk")[0].what
