"""The local transport: this machine is the board, the agent a child process.

It goes through the same Transport protocol as SSH, so the local target exercises the code path
remote boards use: stage files, start the agent with argv, stream its stdout lines, terminate.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

from harness.errors import TransportError
from harness.lab.transports.base import Staged

_EOF = object()
STDERR_LINES = 40  # kept for error messages; the rest of a chatty runtime's stderr is dropped


class LocalProcess:
    """A child process in its own session, read by two pump threads."""

    def __init__(self, argv: list[str], target: str) -> None:
        self._target = target
        try:
            self._popen = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches harness only; harness stops the agent itself
            )
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc.strerror}", target=target,
                                 hint="set python = \"/path/to/python\" for this target in targets.toml"
                                 ) from exc
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True, name=f"{target}-stdout"),
            threading.Thread(target=self._pump_stderr, daemon=True, name=f"{target}-stderr"),
        ]
        for t in self._threads:
            t.start()

    def _pump_stdout(self) -> None:
        assert self._popen.stdout is not None
        for raw in self._popen.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(_EOF)

    def _pump_stderr(self) -> None:
        assert self._popen.stderr is not None
        for raw in self._popen.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def readline(self, timeout: float) -> str | None:
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _EOF:
            self._lines.put(_EOF)  # stay at end of stream for later calls
            raise EOFError
        assert isinstance(item, str)
        return item

    def terminate(self) -> None:
        """SIGTERM the agent's whole process group, SIGKILL it after 2 s."""
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait(timeout=5.0)
        self._close_stdin()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)

    def _close_stdin(self) -> None:
        if self._popen.stdin and not self._popen.stdin.closed:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()

    def wait(self, timeout: float) -> int | None:
        try:
            status = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(timeout=1.0)  # let stderr drain so stderr_tail() is complete
        self._close_stdin()
        return status

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)


class LocalTransport:
    """Runs commands on this machine."""

    heartbeat_s: float | None = None  # a dead host closes the pipe, and the agent sees end of file at once

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, argv: list[str]) -> LocalProcess:
        return LocalProcess(argv, self.name)

    def stage(self, path: Path) -> Staged:
        # The board is this machine: the file is already where the agent can read it.
        return Staged(remote_path=str(path.resolve()), sent_bytes=0)

    def close(self) -> None:
        pass
