"""A real labgrid farm for the tests: a coordinator, an exporter, places (needs the lab extra).

``Farm`` starts ``labgrid-coordinator`` on a free loopback port in a directory of its own (it
writes places.yaml and resources.yaml into its working directory) and ``labgrid-exporter`` with a
YAML of manual resources, one group per board: a ``NetworkService`` for each sshd board of the
SSH lab (tests/sshd.py), and a ``RawSerialPort`` on the pty of an emulated MCU, for which the
exporter starts ser2net when the place is acquired (the NetworkSerialPort a client sees, as for a
USBSerialPort on a real lab host). Places are made through the coordinator's gRPC API
(harness.lab.labgrid.Session), which is what ``labgrid-client create`` does in 0.7 s a call;
``client()`` runs the real ``labgrid-client`` as another user would. GRPC_ENABLE_FORK_SUPPORT=0
as in labgrid's own tests: these processes fork while gRPC runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harness.lab.labgrid import PlaceState, Session

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LG_COORDINATOR"}
    return {**env, "GRPC_ENABLE_FORK_SUPPORT": "0", **extra}


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not say {text!r}:\n{log.read_text(errors='replace')}")


class Farm:
    """A coordinator and its exporters under ``root``; ``close`` stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = f"127.0.0.1:{free_port()}"
        self._procs: list[subprocess.Popen[bytes]] = []
        (root / "coordinator").mkdir(parents=True)
        self._start("coordinator", [str(BIN / "labgrid-coordinator"), "-l", self.address],
                    root / "coordinator", "Coordinator ready")
        self.session = Session(self.address, "test-farm")

    def _start(self, name: str, argv: list[str], cwd: Path, ready: str) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=_env())
        self._procs.append(proc)
        _wait_for(log, ready, proc)
        return proc

    def exporter(self, name: str, groups: dict[str, dict[str, Any]]) -> subprocess.Popen[bytes]:
        config = self.root / f"{name}.yaml"
        config.write_text(yaml.safe_dump(groups))
        return self._start(f"exporter-{name}", [str(BIN / "labgrid-exporter"), "-c", self.address, "-n", name,
                                                "--hostname", "127.0.0.1", str(config)],
                           self.root, "connected to coordinator")

    def add_place(self, name: str, match: str, **tags: str) -> None:
        pb = self.session.pb
        self.session.rpc("AddPlace", pb.AddPlaceRequest(name=name))
        self.session.rpc("AddPlaceMatch", pb.AddPlaceMatchRequest(placename=name, pattern=match))
        if tags:
            self.session.rpc("SetPlaceTags", pb.SetPlaceTagsRequest(placename=name, tags=tags))

    def place(self, name: str) -> PlaceState:
        return self.session.place(name)

    def client(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        """The real labgrid-client, as ``user`` on this host."""
        return subprocess.run([str(BIN / "labgrid-client"), "-x", self.address, *args], capture_output=True,
                              text=True, timeout=60, env=_env(LG_USERNAME=user))

    def wait_place(self, name: str, acquired: bool, timeout: float = 20.0) -> PlaceState:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.place(name)
            if (state.acquired is not None) == acquired:
                return state
            time.sleep(0.05)
        raise AssertionError(f"place {name} did not become {'acquired' if acquired else 'free'}")

    def close(self) -> None:
        self.session.close()
        for proc in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def farm(root: Path) -> Iterator[Farm]:
    f = Farm(root)
    try:
        yield f
    finally:
        f.close()
