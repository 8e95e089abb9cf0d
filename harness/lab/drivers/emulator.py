"""The emulated MCU as a board: start device_agents/mcu/emulator.py on a fresh pty, stop it after.

The emulator creates the pty itself and announces its path as one JSON line on stdout; harness
then opens that path like any USB serial port. Its stdin stays a pipe from harness: when harness
goes away (even by SIGKILL) the pipe closes and the emulator exits, so no emulator outlives us.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from harness.errors import TransportError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0  # python start-up + numpy import on a busy 2-core machine


def emulator_path() -> Path:
    return Path(str(resources.files("device_agents") / "mcu" / "emulator.py"))


class EmulatedMcu:
    """One running emulator process; ``port`` is the tty path to open."""

    def __init__(self, target: str, *, baud: int, arena: int, extra_args: tuple[str, ...] = ()) -> None:
        self.target = target
        argv = [sys.executable, str(emulator_path()), "--baud", str(baud), "--arena", str(arena),
                "--board", f"mcu-emulator ({target})", "--exit-on-stdin-eof", *extra_args]
        log.info("%s: starting emulated MCU: %s", target, " ".join(argv))
        # stderr goes to a file: a pipe nobody drains could fill up and freeze the emulator.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True)
        self.port = self._await_port()

    def _await_port(self) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(START_TIMEOUT_S):
                self.stop()
                raise TransportError(f"the emulated MCU did not start within {START_TIMEOUT_S:.0f} s",
                                     target=self.target, hint="check that numpy and tflite-micro import")
            line = self.proc.stdout.readline()
        finally:
            sel.close()
        try:
            return str(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError) as exc:
            tail = self.stderr_tail()
            self.stop()
            raise TransportError(f"the emulated MCU failed to start: {tail or line!r}", target=self.target,
                                 hint=f"{shlex.quote(sys.executable)} -m pip install tflite-micro numpy "
                                      "(sh harness/bootstrap.sh installs them into .venv)") from exc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exited(self, grace_s: float = 1.0) -> bool:
        """True if the emulator has exited or does within ``grace_s``: a dying process closes its
        pty (the host sees the line drop) a moment before it can be reaped."""
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stderr_tail(self) -> str:
        if self.stderr.closed:
            return ""
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace").strip()[-500:]

    def stop(self) -> None:
        """Terminate the emulator and its TFLite Micro child (its session); idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                os.killpg(self.proc.pid, signal.SIGCONT)  # a stopped (hung) emulator must still go
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
        with contextlib.suppress(ProcessLookupError):  # a TFLite Micro child that outlived its parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.stderr.close()
