"""The host driver against the C firmware's protocol layer (fw_host, stub backend, ASan + UBSan).

The emulator and the C firmware are two implementations of SERIAL_PROTOCOL.md; the driver must
run a whole benchmark on both. fw_host's stub backend has a profiler, so this is also where the
``op_profile`` message is exercised.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from harness.errors import AgentError
from harness.lab.drivers.mcu import McuDriver
from harness.models.files import sha256
from harness.plan import Job
from harness.results.benchmark import from_lines
from tests.firmwarekit import FwHost, build_firmware, sanitizer_report
from tests.serialkit import QUICK_PLAN, fc_model, serial_target, write_model


@pytest.fixture(scope="module")
def fw_host_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_firmware(tmp_path_factory.getbasetemp(), "fw_host_asan") / "fw_host_asan"


def test_driver_benchmarks_on_the_c_firmware(fw_host_binary: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path, "fc.tflite", fc_model())
    fw = FwHost(fw_host_binary, "--work", "2000", "--max-model", str(64 * 1024))
    messages: list[dict] = []
    try:
        driver = McuDriver(serial_target(fw.port, baud=115200, timeout_s=2.0))
        try:
            job = Job(target="board", model=model, model_sha256=sha256(model), threads=1, plan=QUICK_PLAN)
            driver.benchmark(job, messages.append, threading.Event())
        finally:
            driver.close()
    finally:
        err = fw.stop()
    assert sanitizer_report(err) is None, err
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "op_profile" and "summary" in kinds and "outputs" in kinds
    ops = messages[-1]["ops"]
    assert ops and all(op["ns"] >= 0 and op["op"] for op in ops)
    header = {"target": "board", "model": model.name, "model_sha256": "", "threads": 1, "plan": {}}
    bench = from_lines(header, messages)
    assert bench.complete and len(bench.loop("with")) == 20 and len(bench.stage("invoke")) == 20


def test_model_too_large_for_the_c_firmware_is_refused_before_upload(fw_host_binary: Path,
                                                                    tmp_path: Path) -> None:
    model = write_model(tmp_path, "big.tflite", fc_model(pad_bytes=3000))
    fw = FwHost(fw_host_binary, "--max-model", "2048")
    try:
        driver = McuDriver(serial_target(fw.port, baud=115200))
        messages: list[dict] = []
        try:
            job = Job(target="board", model=model, model_sha256=sha256(model), threads=1, plan=QUICK_PLAN)
            with pytest.raises(AgentError) as err:
                driver.benchmark(job, messages.append, threading.Event())
        finally:
            driver.close()
    finally:
        fw.stop()
    assert err.value.code == "model_too_large" and "2048" in str(err.value)
    assert "push" not in [m["type"] for m in messages]
