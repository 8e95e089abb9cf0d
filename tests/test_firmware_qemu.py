"""The firmware's protocol code on a real MCU core: a Cortex-M3 image under QEMU mps2-an385.

The image (device_agents/firmware/qemu/) is the portable protocol layer + the host-c-stub backend,
cross-compiled with arm-none-eabi-gcc, bare metal, talking on the CMSDK UART0 that QEMU exposes as
a TCP server on 127.0.0.1; the host reaches it with pyserial's socket:// URL. Its timings come
from the CMSDK TIMER0 in QEMU's virtual time: emulated, and HELLO says so.

Skipped (failed under CI=true) when qemu-system-arm or arm-none-eabi-gcc is missing (apt-get install
--no-install-recommends qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi; newlib only
for its string.h, the image links no libc).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial

from device_agents.wire import serial_frames as sf
from harness.lab.drivers import mcu
from tests.environment import have, needs
from tests.firmwarekit import Link, build_firmware, sine_model, stub_eval_inputs, stub_output

pytestmark = needs(have("qemu-system-arm", "arm-none-eabi-gcc"),
                   "needs qemu-system-arm and arm-none-eabi-gcc (apt-get install --no-install-recommends "
                   "qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_qemu(elf: Path, probe: bool = True) -> Iterator[str]:
    """QEMU mps2-an385 running ``elf``; yields the pyserial URL of its UART0, kills QEMU after.

    ``probe`` waits until its TCP server accepts, with a throw-away connection that releases the
    guest (wait=on): its BOOT frame then goes to that connection. Without it, the first client
    must retry connecting and gets BOOT."""
    port = _free_port()
    # -nic none: the board's Ethernet stays unplugged; the only socket is the UART on loopback.
    # wait=on holds the guest until the host connects, so its BOOT frame is not lost.
    proc = subprocess.Popen(
        ["qemu-system-arm", "-M", "mps2-an385", "-display", "none", "-monitor", "none", "-nodefaults",
         "-nic", "none", "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on", "-kernel", str(elf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while probe:  # ready once its TCP server accepts
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def qemu_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_firmware(tmp_path_factory.getbasetemp(), "qemu") / "fw_mps2.elf"


@pytest.fixture(scope="module")
def qemu_link(qemu_elf: Path) -> Iterator[Link]:
    with running_qemu(qemu_elf, probe=False) as url:
        # Retransmissions as a real host does: on a loaded 2-core machine QEMU's I/O thread can
        # stall long enough for the guest's 100 ms inter-byte timeout to cut a frame, which the
        # protocol answers by the host resending it.
        deadline = time.monotonic() + 10
        while True:
            try:
                link = Link(url, timeout=1.5, retries=3)
                break
            except serial.SerialException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield link
        finally:
            link.close()


def test_boots_and_says_its_timings_are_emulated(qemu_link: Link) -> None:
    boot = qemu_link.frame(0, timeout=10)  # sent on power-up, before any request
    assert boot.type == sf.T.BOOT and struct.unpack("<H", boot.payload)[0] == 1
    info = qemu_link.hello(4096)
    assert info["board"] == "mps2-an385" and info["cpu"] == "Cortex-M3"
    assert info["flags"] & sf.FLAG_EMULATED and not info["flags"] & sf.FLAG_CYCLE_COUNTER
    assert info["timer_hz"] == 25_000_000 and info["timer_resolution_ns"] == 40
    assert info["max_payload"] == 1024 and info["max_batch"] == sf.max_batch_rows(1024)


def test_upload_run_and_refusals_on_the_cortex_m3(qemu_link: Link) -> None:
    qemu_link.hello()
    model = sine_model()
    info = qemu_link.upload(model)
    assert info["sha256"] == hashlib.sha256(model).digest()
    qemu_link.ok(sf.T.RANDOM_INPUT, struct.pack("<I", 5))
    for mode in (sf.MODE_WITH, sf.MODE_WITHOUT):
        got, rows = sf.unpack_samples(qemu_link.ok(sf.T.RUN, struct.pack("<BBH", mode, 0, 30)))
        assert got == mode and len(rows) == 30
        assert all(r[0] >= r[1] + r[2] + r[3] for r in rows)
        assert all((r[2] > 0) == (mode == sf.MODE_WITH) for r in rows)
    # EVAL (SERIAL_PROTOCOL.md 3.11) on the Cortex-M3: the stub's outputs of the staged input
    assert qemu_link.hello()["flags"] & sf.FLAG_EVAL
    data = bytes(range(100, 164))
    qemu_link.ok(sf.T.SET_INPUT, struct.pack("<BI", 0, 0) + data)
    total, outputs = sf.unpack_eval(qemu_link.ok(sf.T.EVAL))
    assert total == 16 and list(struct.unpack("<4i", outputs)) == stub_output(data, 2000)
    e = qemu_link.error(sf.T.UPLOAD_BEGIN, struct.pack("<I", 70_000) + bytes(32))
    assert e["name"] == "MODEL_TOO_LARGE" and e["detail"] == 65536
    assert qemu_link.error(sf.T.PING, bytes(1025))["name"] == "FRAME_TOO_LONG"


def test_noise_and_a_cut_frame_on_the_uart(qemu_link: Link) -> None:
    qemu_link.hello()
    qemu_link.write(os.urandom(200) + b"\xa5")
    assert qemu_link.ok(sf.T.PING, b"through noise") == b"through noise"
    qemu_link.write(sf.encode(sf.T.PING, qemu_link.next_seq(), bytes(500))[:300])
    time.sleep(0.5)  # past the 100 ms inter-byte timeout, in QEMU's virtual time too
    assert qemu_link.ok(sf.T.PING, b"after the cut") == b"after the cut"


def test_the_harness_serial_driver_benchmarks_the_cortex_m3(qemu_elf: Path, tmp_path: Path) -> None:
    """End to end on the emulated MCU core: harness's McuDriver over socket://, as targets.toml
    would configure it (port = "socket://127.0.0.1:PORT")."""
    from harness.config import SerialOptions, Target
    from harness.models.files import sha256
    from harness.plan import Job, Plan

    model = tmp_path / "sine.tflite"
    model.write_bytes(sine_model())
    plan = Plan(warmup=2, warmup_time_s=0.0, iterations=20, blocks=2, settle=1, seed=3)
    samples = np.random.default_rng(9).integers(-128, 128, size=(3, 64), dtype=np.int8)
    job = Job(target="qemu-m3", model=model, model_sha256=sha256(model), threads=1, plan=plan,
              eval=stub_eval_inputs(tmp_path, samples))
    messages: list[dict] = []
    evaluated: list[dict] = []
    with running_qemu(qemu_elf) as url:
        driver = mcu.McuDriver(Target(name="qemu-m3", kind="serial",
                                      options=SerialOptions(port=url, baud=115200, command_timeout_s=2.0)))
        try:
            driver.benchmark(job, messages.append, threading.Event())
            driver.evaluate(job, evaluated.append, threading.Event())  # the evaluation pass, after
        finally:
            driver.close()
    assert [m["type"] for m in evaluated][-1] == "eval_summary" and "push" not in [m["type"] for m in evaluated]
    got = [v for m in evaluated if m["type"] == "eval" for v in m["outputs"][0]]
    assert got == [v for s in samples for v in stub_output(s.tobytes(), 2000)]
    kinds = [m["type"] for m in messages]
    assert "error" not in kinds, messages[-1]
    hello = messages[0]
    assert hello["emulated"] is True and hello["board"]["model"] == "mps2-an385"
    assert hello["clock"]["hz"] == 25_000_000
    assert sum(len(s["loop_ns"]) for s in messages if s["type"] == "samples") == 40
