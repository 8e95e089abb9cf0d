"""A board on another lab host: the same driver through pyserial URLs (socket://, rfc2217://).

socat bridges TCP to the emulator's pty (socket://), ser2net exports it over RFC 2217 as a lab
host or a labgrid exporter would. Both listen on 127.0.0.1 only, on ports picked free.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from harness.lab.drivers.mcu import McuDriver
from harness.models.files import sha256
from harness.plan import Job
from tests.environment import have, needs
from tests.serialkit import QUICK_PLAN, fc_model, running_emulator, serial_target, write_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bridge exited: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _wait_socat(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """socat serves one connection only, so a probe would use it up: wait for its log line."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError("socat exited before listening")
    raise TimeoutError("socat did not start listening")


@contextlib.contextmanager
def _bridge(argv: list[str], port: int, socat: bool = False) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if socat:
            _wait_socat(proc)
        else:
            _wait_listening(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def _benchmark(url: str, model: Path) -> list[dict]:
    driver = McuDriver(serial_target(url, timeout_s=2.0))
    messages: list[dict] = []
    try:
        job = Job(target="board", model=model, model_sha256=sha256(model), threads=1, plan=QUICK_PLAN)
        driver.benchmark(job, messages.append, threading.Event())
    finally:
        driver.close()
    return messages


@needs(have("socat"), "needs socat (apt-get install socat)")
def test_socket_url_through_socat(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    port = _free_port()
    with running_emulator() as sim, _bridge(
            ["socat", "-d", "-d", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"FILE:{sim.port},raw,echo=0"],
            port, socat=True):
        messages = _benchmark(f"socket://127.0.0.1:{port}", model)
    assert messages[-1]["type"] == "outputs" and any(m["type"] == "summary" for m in messages)


@needs(have("ser2net"), "needs ser2net (apt-get install ser2net)")
def test_rfc2217_url_through_ser2net(tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    port = _free_port()
    with running_emulator(baud=115200) as sim:
        config = tmp_path / "ser2net.yaml"
        config.write_text(
            "connection: &board1\n"
            f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
            f"  connector: serialdev,{sim.port},115200n81,local\n"
            "  enable: on\n")
        with _bridge(["ser2net", "-n", "-u", "-c", str(config)], port):
            # ign_set_control: ser2net cannot set DTR on a pty (TESTING.md)
            driver = McuDriver(serial_target(f"rfc2217://127.0.0.1:{port}?ign_set_control", baud=115200,
                                             timeout_s=2.0))
            messages: list[dict] = []
            try:
                job = Job(target="board", model=model, model_sha256=sha256(model), threads=1, plan=QUICK_PLAN)
                driver.benchmark(job, messages.append, threading.Event())
            finally:
                driver.close()
    assert any(m["type"] == "summary" for m in messages)
    assert messages[0]["serial"]["baud"] == 115200


@needs(have("socat"), "needs socat (apt-get install socat)")
def test_emulator_on_one_end_of_a_socat_pty_pair(tmp_path: Path) -> None:
    """--tty: the emulator serves an existing tty, here one end of a socat pair (TESTING.md)."""
    model = write_model(tmp_path, "fc.tflite", fc_model())
    dev, host = tmp_path / "ttyDEV", tmp_path / "ttyHOST"
    proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={dev}", f"pty,raw,echo=0,link={host}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 10
        while "starting data transfer loop" not in proc.stderr.readline():
            assert time.monotonic() < deadline and proc.poll() is None, "socat did not start"
        with running_emulator(extra=("--tty", str(dev))):
            messages = _benchmark(str(host), model)
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
    assert any(m["type"] == "summary" for m in messages)
