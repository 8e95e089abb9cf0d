"""Boards of a real labgrid farm as targets: runs through places over SSH and serial, a place
someone else holds (refused, waited for, reserved), release after Ctrl-C and SIGTERM, doctor,
--pool on the command line.

The farm (tests/labgridkit.py): a real coordinator and exporter; places pi-1..pi-3 are the SSH
lab's sshd boards (NetworkService) tagged board=rpi4, mcu-1 an emulated MCU behind the ser2net
the exporter starts (RawSerialPort, seen as a NetworkSerialPort), pw-1 a NetworkService with a
password. Only in the venv with the lab extra (tests/lab_venv.sh; tests/test_lab_install.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agentrun import ROOT, json_objects
from tests.environment import have, needs
from tests.labgridkit import Farm, farm
from tests.serialkit import fc_model, running_emulator, write_model
from tests.sshd import Lab
from tests.sshfixtures import SshEnv, targets_toml

pytestmark = needs(have("ser2net"), "needs ser2net (apt-get install ser2net)")

QUICK = ["--iterations", "20", "--min-iterations", "10", "--blocks", "2", "--warmup", "2", "--warmup-time", "0"]


@pytest.fixture(scope="module")
def lab_farm(ssh_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    with running_emulator("mcu-1", baud=115200) as sim, farm(root) as f:
        groups: dict[str, Any] = {
            f"pi-{i}": {"NetworkService": {"address": b.host, "port": b.port, "username": ssh_lab.user.pw_name}}
            for i, b in enumerate(ssh_lab.boards[:3], start=1)}
        groups["mcu-1"] = {"RawSerialPort": {"port": sim.port, "speed": 115200}}
        groups["pw-1"] = {"NetworkService": {"address": "192.0.2.1", "username": "pi", "password": "raspberry"}}
        f.exporter("lab1", groups)
        for i in (1, 2, 3):
            f.add_place(f"pi-{i}", f"lab1/pi-{i}/*", board="rpi4")
        f.add_place("mcu-1", "lab1/mcu-1/*", board="mcu")
        f.add_place("pw-1", "lab1/pw-1/*")
        yield f


def _targets(tmp_path: Path, f: Farm, python: Path, ssh_lab: Lab, **tables: dict[str, Any]) -> Path:
    """targets.toml: each table a labgrid target of the farm, SSH ones with the board venv."""
    out = {}
    for name, table in tables.items():
        base: dict[str, Any] = {"kind": "labgrid", "coordinator": f.address}
        if table.get("use") != "serial":
            base.update(python=str(python), connect_timeout_s=3, workdir=ssh_lab.workdir(f"{name}-{tmp_path.name}"))
        out[name] = {**base, **table}
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml(out))
    return path


def _harness(args: list[str], env: SshEnv, coordinator: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "LG_COORDINATOR")}
    e.update(HOME=str(env.home), COLUMNS="200", **({"LG_COORDINATOR": coordinator} if coordinator else {}))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=120, **kw)


def test_this_venv_has_labgrids_serial_package() -> None:
    """The serial tests run here too: they prove harness works with pyserial-labgrid's serial."""
    from importlib.metadata import distribution

    import serial

    files = distribution("pyserial-labgrid").files or []
    assert any(str(f).startswith("serial/") for f in files)
    assert Path(serial.__file__).is_relative_to(Path(str(distribution("pyserial-labgrid").locate_file(""))))


def test_a_run_through_places_over_ssh_and_serial(lab_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab,
                                                  litert_python: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, pi={"place": "pi-1"},
                       mcu={"place": "mcu-1", "use": "serial", "command_timeout_s": 5})
    results = tmp_path / "results"
    p = _harness(["run", "--targets", str(targets), "--model", str(model), *QUICK, "--results", str(results),
                  "--json"], ssh_env)
    assert p.returncode == 0, p.stderr
    objs = {o["target"]: o for o in json_objects(p.stdout)}
    assert set(objs) == {"pi", "mcu"}
    assert objs["pi"]["place"] == "pi-1" and objs["pi"]["place_tags"] == {"board": "rpi4"}
    assert objs["mcu"]["place"] == "mcu-1" and objs["mcu"]["place_tags"] == {"board": "mcu"}
    assert objs["mcu"]["emulated"] is True and objs["mcu"]["complete"] and objs["pi"]["complete"]
    assert objs["pi"]["runtime"] == "ai_edge_litert" and objs["pi"]["pool"] is None
    for name in ("pi-1", "mcu-1"):  # released at the end
        assert lab_farm.place(name).acquired is None
    # the results name places and tags, never the addresses or users behind them
    stored = "".join(f.read_text() for f in results.rglob("*.json*"))
    assert ssh_lab.boards[0].host not in stored and ssh_lab.user.pw_name not in stored
    assert "pi-1" in stored and "rfc2217" not in stored


def test_a_place_held_by_another_user_is_refused_waited_for_or_reserved(
        lab_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, pi={"place": "pi-2"})
    args = ["run", "--targets", str(targets), "--model", str(model), *QUICK, "--results", str(tmp_path / "r")]
    taken = lab_farm.client("-p", "pi-2", "acquire")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    try:
        refused = _harness(args, ssh_env)
        assert refused.returncode == 1
        line = next(x for x in refused.stderr.splitlines() if x.startswith("error"))
        assert "place pi-2 is held by alice on" in line and "--wait SECONDS" in line, refused.stderr
        assert lab_farm.place("pi-2").acquired.endswith("/alice")  # untouched
        for extra in (["--wait", "30"], ["--reserve", "--wait", "30"]):
            threading.Timer(2.0, lambda: lab_farm.client("-p", "pi-2", "release")).start()
            started = time.monotonic()
            waited = _harness([*args, *extra], ssh_env)
            assert waited.returncode == 0, (extra, waited.stderr)
            assert time.monotonic() - started > 2.0  # it ran once alice let go
            assert lab_farm.place("pi-2").acquired is None
            if extra[0] == "--reserve":
                break
            assert lab_farm.client("-p", "pi-2", "acquire").returncode == 0
    finally:
        lab_farm.client("-p", "pi-2", "release")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_release_the_place(sig: signal.Signals, status: int, lab_farm: Farm,
                                              ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path,
                                              tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, pi={"place": "pi-3"})
    results = tmp_path / "results"
    e = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    e["HOME"] = str(ssh_env.home)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--targets", str(targets), "--model",
                             str(model), "--duration", "60", "--results", str(results)], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any('"samples"' in f.read_text() for f in results.rglob("benchmarks/*.jsonl")):
            assert time.monotonic() < deadline and proc.poll() is None, "no samples within 60 s"
            time.sleep(0.1)
        assert lab_farm.place("pi-3").acquired is not None
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert lab_farm.place("pi-3").acquired is None  # released before harness exited
    deadline = time.monotonic() + 10
    while ssh_lab.processes("tflite_agent.py") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ssh_lab.processes("tflite_agent.py") == []
    meta = json.loads(next(results.glob("*/run.json")).read_text())
    assert meta["status"] == "interrupted" and meta["signal"] == sig.name


def test_doctor_checks_coordinator_place_holder_and_resources(lab_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab,
                                                            litert_python: Path, tmp_path: Path) -> None:
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, pi={"place": "pi-1"}, held={"place": "pi-2"},
                       nowhere={"place": "pi-9"}, pw={"place": "pw-1"}, mcu={"place": "mcu-1", "use": "serial"},
                       down={"place": "pi-1", "coordinator": "127.0.0.1:1"})
    assert lab_farm.client("-p", "pi-2", "acquire").returncode == 0
    try:
        # the pool has no table in targets.toml: its coordinator comes from LG_COORDINATOR
        p = _harness(["doctor", "--targets", str(targets), "--json", "--pool", "board=rpi4"], ssh_env,
                     coordinator=lab_farm.address)
    finally:
        lab_farm.client("-p", "pi-2", "release")
    assert p.returncode == 1, p.stderr
    found = {o["target"]: o for o in json_objects(p.stdout)}
    levels = {name: {f["check"]: f["level"] for f in o["findings"]} for name, o in found.items()}
    assert found["pi"]["ready"] and levels["pi"]["coordinator"] == "ok" and levels["pi"]["runtime"] == "ok"
    assert found["mcu"]["ready"] and levels["mcu"]["runtime"] == "ok"  # TFLite Micro, over ser2net
    what = {name: " ".join(f["what"] for f in o["findings"]) for name, o in found.items()}
    assert levels["held"]["place"] == "warn" and "held by alice" in what["held"]
    assert not found["nowhere"]["ready"] and "no place 'pi-9'" in what["nowhere"]
    assert not found["pw"]["ready"] and "password" in what["pw"] and "raspberry" not in p.stdout
    assert not found["down"]["ready"] and "cannot reach the labgrid coordinator" in what["down"]
    assert "3 places, 2 free" in what["board=rpi4"] and "pi-2 held by alice" in what["board=rpi4"]
    assert all(lab_farm.place(n).acquired is None for n in ("pi-1", "mcu-1"))  # checked, then released


def test_a_password_on_the_network_service_is_refused_naming_the_place(
        lab_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, pw={"place": "pw-1"})
    p = _harness(["run", "--targets", str(targets), "--model", str(model), *QUICK, "--results",
                  str(tmp_path / "r")], ssh_env)
    assert p.returncode == 1
    errors = [x for x in p.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "place pw-1: its NetworkService has a password" in errors[0], p.stderr
    assert "raspberry" not in p.stderr + p.stdout
    assert lab_farm.place("pw-1").acquired is None  # released after the refusal


def test_pool_on_the_command_line_uses_the_targets_table_with_those_tags(
        lab_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path, tmp_path: Path) -> None:
    models = [write_model(tmp_path, f"fc{i}.tflite", fc_model(seed=i)) for i in range(2)]
    targets = _targets(tmp_path, lab_farm, litert_python, ssh_lab, rpis={"pool": "board=rpi4"},
                       mcu={"place": "mcu-1", "use": "serial"})
    given = [arg for m in models for arg in ("--model", str(m))]
    p = _harness(["run", "--targets", str(targets), "--pool", "board=rpi4", *given, *QUICK, "--results",
                  str(tmp_path / "r"), "--json"], ssh_env)
    assert p.returncode == 0, p.stderr
    objs = json_objects(p.stdout)
    assert len(objs) == 2 and all(o["pool"] == "rpis" and o["complete"] for o in objs)  # mcu-1 did not run
    assert all(o["target"] == o["place"] and o["place"] in ("pi-1", "pi-2", "pi-3") for o in objs)
    assert "pool rpis: 2 benchmarks on" in _harness(["show", "--results", str(tmp_path / "r")], ssh_env).stdout
    assert all(lab_farm.place(f"pi-{i}").acquired is None for i in (1, 2, 3))
