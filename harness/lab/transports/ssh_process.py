"""A command running on an SSH board: its process group, its streams, and how it is stopped.

Each command runs in its own process group on the board under a tiny POSIX ``sh`` wrapper
(``wrap``) that says the group's pid first and the command's exit status last, so ``terminate``
can kill the whole group (TERM, then KILL) through a second channel (``kill_group``). The
command's stdin stays open: the agent's watchdog process ends its group at end of file, its
lifeline if the connection drops (device_agents/wire/PROTOCOL.md, "The lifeline").
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable

import paramiko

from harness.errors import TransportError
from harness.lab.transports.ssh_link import SshLink

log = logging.getLogger(__name__)

TERM_GRACE_S = 2.0  # between TERM and KILL: the agent flushes its last block in well under this
STDERR_TAIL_BYTES = 8192

# Runs the command in its own process group, says the group's pid first and the command's exit
# status last. sshd already makes the user's shell a session leader for a command without a pty;
# when the login shell did not exec into us we are not a group leader, and we re-run this script
# under setsid (which then does not fork, so the pid stays). The shell stays as the group leader so
# that a command killed by a signal is reported as one ("harness-exit 139"), which sshd's
# exit-signal, not understood by paramiko, would hide. HARNESS_PROCESS_GROUP tells the agent's
# watchdog that the group it is in is the command's own, to kill whole when the host is gone.
_WRAPPER = r"""
script=$1; shift
case $1 in
  */*) [ -f "$1" ] && [ -x "$1" ] || { echo harness-missing; exit 127; } ;;
  *) command -v "$1" >/dev/null 2>&1 || { echo harness-missing; exit 127; } ;;
esac
st=
read -r st </proc/$$/stat 2>/dev/null
pg=${st##*) }; pg=${pg#* * }; pg=${pg%% *}
if [ -n "$pg" ] && [ "$pg" != "$$" ] && command -v setsid >/dev/null 2>&1; then
  exec setsid sh -c "$script" harness-run "$script" "$@"
fi
echo "harness-pid $$"
HARNESS_PROCESS_GROUP=$$ "$@"
st=$?
echo "harness-exit $st"
exit $st
"""

# TERM the group, give it TERM_GRACE_S to exit, then KILL what is left.
_KILL = r"""
kill -TERM -$1 2>/dev/null || kill -TERM $1 2>/dev/null || exit 0
i=0
while kill -0 -$1 2>/dev/null; do
  [ $i -ge $2 ] && { kill -KILL -$1 2>/dev/null; exit 0; }
  sleep 0.1; i=$((i+1))
done
"""


def wrap(argv: list[str]) -> str:
    """The remote command line that runs ``argv`` under the wrapper, quoted with shlex.join."""
    return shlex.join(["sh", "-c", _WRAPPER, "harness-run", _WRAPPER, *argv])


def kill_group(link: SshLink, pid: int) -> None:
    """TERM the board's process group ``pid``, KILL it after TERM_GRACE_S; waits for that."""
    if link.lost or not link.active:
        log.warning("%s: cannot stop pid %d on the board: the connection is gone; its sshd ends "
                    "it when it notices the lost client", link.name, pid)
        return
    ticks = str(int(TERM_GRACE_S / 0.1))
    try:
        link.check_output(["sh", "-c", _KILL, "harness-kill", str(pid), ticks], timeout=TERM_GRACE_S + link.timeout)
    except TransportError as exc:
        log.warning("%s: stopping pid %d on the board failed: %s", link.name, pid, exc)


class SshProcess:
    """A command running on the board; see harness.lab.transports.base.Process.

    ``on_end`` is called once the process is terminated, so its transport stops tracking it.
    """

    def __init__(self, link: SshLink, channel: paramiko.Channel, argv: list[str],
                 on_end: Callable[[SshProcess], None]) -> None:
        self._link = link
        self._channel = channel
        self._argv = argv
        self._on_end = on_end
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[bytes] = deque()
        self._stderr_len = 0
        self._lock = threading.Lock()
        self._terminated = False
        self._eof = False
        self.pid: int | None = None
        self._exit: int | None = None
        self._eof_seen = False
        threading.Thread(target=self._read_stdout, name=f"ssh-out-{link.name}", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"ssh-err-{link.name}", daemon=True).start()

    def _read_stdout(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self._channel.recv(65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"harness-exit ") and line[13:].isdigit():
                        self._exit = int(line[13:])  # the wrapper's last word, not the command's
                        continue
                    self._lines.put(line.decode("utf-8", errors="replace").rstrip("\r"))
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the link broke; readline reports it below
        if buf:
            self._lines.put(buf.decode("utf-8", errors="replace"))
        self._eof_seen = True
        self._lines.put(None)

    def _read_stderr(self) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            while True:
                chunk = self._channel.recv_stderr(4096)
                if not chunk:
                    return
                with self._lock:
                    self._stderr.append(chunk)
                    self._stderr_len += len(chunk)
                    while self._stderr_len > STDERR_TAIL_BYTES and len(self._stderr) > 1:
                        self._stderr_len -= len(self._stderr.popleft())

    def start(self, timeout: float) -> None:
        """Read the wrapper's first word: our pid on the board, or that argv[0] is missing.

        Lines before it come from the user's login files (a chatty .bashrc): logged and skipped.
        """
        name = self._link.name
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.readline(remaining) if remaining > 0 else None
            except EOFError:
                tail = self.stderr_tail().strip().splitlines()
                raise TransportError(
                    f"the board's login shell ended before running {self._argv[0]!r}"
                    + (f": {tail[-1]}" if tail else ""), target=name,
                    hint=f"give {self._link.endpoint.user} a login shell that runs `sh -c` "
                         "commands (not nologin), and install a POSIX sh") from None
            if line is None:
                self.terminate()
                raise TransportError(f"{self._argv[0]!r} did not start on the board within {timeout:g} s",
                                     target=name, hint="check the board's load and disk")
            if line == "harness-missing":
                raise TransportError(
                    f"{self._argv[0]!r} does not exist on the board or is not executable", target=name,
                    hint=f"set python = \"/path/to/bin/python3\" in [targets.{name}] "
                         f"(for a venv: its bin/python), or install python3 on the board")
            if line.startswith("harness-pid "):
                self.pid = int(line.split()[1])
                return
            log.warning("%s: the login shell printed %r before the command; make ~/.bashrc quiet "
                        "for non-interactive shells", name, line[:200])

    def readline(self, timeout: float) -> str | None:
        if self._eof:
            raise EOFError
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            if self._link.lost:
                raise self._link.lost_error() from None
            return None
        if line is not None:
            return line
        self._eof = True
        if self._terminated:
            raise EOFError
        # End of stream. A normal exit brings an exit status (paramiko says -1 until then, and for
        # a process killed by a signal); a dropped link ends the whole connection shortly after.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if self._link.lost or not self._link.active:
                self._link.mark_lost("the connection closed mid-stream")
                raise self._link.lost_error()
            if self._channel.exit_status_ready() and self._channel.exit_status != -1:
                break
            time.sleep(0.01)
        raise EOFError

    def wait(self, timeout: float) -> int | None:
        """Exit status like subprocess: -N when a signal N killed the command; None if running.

        A command ended by ``terminate`` reports -15 (SIGTERM); one whose whole process group was
        killed from outside reports 255, as ssh(1) does.
        """
        deadline = time.monotonic() + timeout
        while not self._channel.exit_status_ready():
            if self._link.lost and not self._terminated:
                raise self._link.lost_error()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        status = self._exit
        if status is None:
            # Output still in flight, or the group (wrapper included) was killed: no last word.
            end = min(deadline, time.monotonic() + 1.0)
            while self._exit is None and not self._eof_seen and time.monotonic() < end:
                time.sleep(0.01)
            status = self._exit
        if status is None:
            code = self._channel.recv_exit_status()
            if code >= 0:
                return code
            return -15 if self._terminated else 255  # 255: what ssh(1) says for a lost status
        return -(status - 128) if status > 128 else status

    def stderr_tail(self) -> str:
        with self._lock:
            text = b"".join(self._stderr).decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-20:])

    def heartbeat(self) -> None:
        """A newline on the command's stdin: the agent's watchdog reads and drops it.

        An agent that also watches for silence on stdin (not only end of file) can then end itself
        when the host vanishes behind a dead link, even on a board whose sshd never notices.
        """
        with contextlib.suppress(Exception):
            if not self._terminated and self._channel.send_ready():
                self._channel.send(b"\n")

    def terminate(self) -> None:
        """Kill the process group on the board (TERM, then KILL), then close our channel."""
        with self._lock:
            if self._terminated:
                return
            self._terminated = True
        try:
            if self.pid is not None and not self._channel.exit_status_ready():
                kill_group(self._link, self.pid)
        finally:
            # Closing sends EOF on the agent's stdin too: its lifeline if the kill could not get through.
            with contextlib.suppress(Exception):
                self._channel.close()
            self._on_end(self)
