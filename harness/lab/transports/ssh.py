"""SSH transport: a Linux board reached with OpenSSH semantics, through paramiko.

Target grammar (``[targets.NAME]`` with ``kind = "ssh"``)::

    host = "10.0.0.7" | "pi4"     # an address or a ~/.ssh/config Host alias (required)
    user = "pi"                   # default: ~/.ssh/config User, else the local user name
    port = 22                     # default: ~/.ssh/config Port, else 22
    identity_file = "~/.ssh/id_ed25519"   # default: ~/.ssh/config IdentityFile, ssh-agent, ~/.ssh/id_*
    known_hosts = "~/.ssh/known_hosts"    # default: ~/.ssh/config UserKnownHostsFile, else this
    accept_new_host_key = false   # true: record an unknown key (logged with its fingerprint)
    python = "/home/pi/venv/bin/python"   # the board's python (default: python3)
    workdir = "~/.cache/harness"  # the per-user cache of pushed files on the board
    connect_timeout_s = 10        # TCP connect, SSH handshake, auth, and the dead-link probe

From ~/.ssh/config, as ``ssh`` reads it: HostName, User, Port, IdentityFile, UserKnownHostsFile,
HostKeyAlias, ProxyJump (``[user@]host[:port]``, comma-separated chains) and
``StrictHostKeyChecking accept-new``. Values in targets.toml win over ~/.ssh/config
(harness.lab.transports.ssh_config).

Host keys are always verified. An unknown key stops the target unless it opted in to accepting
new keys; a *changed* key stops it always, naming the known_hosts file and line
(harness.lab.transports.ssh_hostkeys; every failed connect is explained by ssh_connect_errors).

Remote commands are argv lists quoted with ``shlex.join``; each runs in its own process group on
the board under a tiny POSIX ``sh`` wrapper that reports its pid, so ``terminate`` can kill the
whole group (TERM, then KILL) through a second channel. The command's stdin stays open: the agent
exits when it reaches end of file, its lifeline if the connection drops.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import shlex
import stat
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import paramiko

from harness.config import SshOptions, Target
from harness.errors import TransportError
from harness.lab.transports.base import Staged
from harness.lab.transports.ssh_config import (
    Endpoint,
    check_identity_files,
    jump_hop,
    read_ssh_config,
    resolve,
)
from harness.lab.transports.ssh_connect_errors import connect_error
from harness.lab.transports.ssh_hostkeys import UnknownHostKey, fingerprint, load_host_keys

log = logging.getLogger(__name__)

# Check a silent link every few seconds: a lost board must end its stream in bounded time
# (KEEPALIVE_S + connect_timeout_s), while costing one tiny request per board per interval.
KEEPALIVE_S = 3.0
# A small channel window bounds how much a board can send into a dead link: once it is used up,
# the board's sshd stops reading the agent's output, goes quiet, and its ClientAliveInterval check
# ends the session (and the agent, through its stdin lifeline). 256 KiB still streams ~100 MB/s
# at 2 ms round trip, far above what an agent writes.
CHANNEL_WINDOW = 256 * 1024
TERM_GRACE_S = 2.0  # between TERM and KILL: the agent flushes its last block in well under this
STDERR_TAIL_BYTES = 8192

# Runs the command in its own process group, says the group's pid first and the command's exit
# status last. sshd already makes the user's shell a session leader for a command without a pty;
# when the login shell did not exec into us we are not a group leader, and we re-run this script
# under setsid (which then does not fork, so the pid stays). The shell stays as the group leader so
# that a command killed by a signal is reported as one ("harness-exit 139"), which sshd's
# exit-signal, not understood by paramiko, would hide.
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
"$@"
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


_PY_SHA256 = ("import hashlib, sys\nh = hashlib.sha256()\nwith open(sys.argv[1], 'rb') as f:\n"
              "    for b in iter(lambda: f.read(1 << 20), b''):\n        h.update(b)\nprint(h.hexdigest())")


class SshProcess:
    """A command running on the board; see harness.lab.transports.base.Process."""

    def __init__(self, transport: SshTransport, channel: paramiko.Channel, argv: list[str]) -> None:
        self._transport = transport
        self._channel = channel
        self._argv = argv
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[bytes] = deque()
        self._stderr_len = 0
        self._lock = threading.Lock()
        self._terminated = False
        self._eof = False
        self.pid: int | None = None
        self._exit: int | None = None
        self._eof_seen = False
        name = transport.name
        threading.Thread(target=self._read_stdout, name=f"ssh-out-{name}", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"ssh-err-{name}", daemon=True).start()

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

    def _start(self, timeout: float) -> None:
        """Read the wrapper's first word: our pid on the board, or that argv[0] is missing.

        Lines before it come from the user's login files (a chatty .bashrc): logged and skipped.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.readline(remaining) if remaining > 0 else None
            except EOFError:
                tail = self.stderr_tail().strip().splitlines()
                raise TransportError(
                    f"the board's login shell ended before running {self._argv[0]!r}"
                    + (f": {tail[-1]}" if tail else ""), target=self._transport.name,
                    hint=f"give {self._transport.endpoint.user} a login shell that runs `sh -c` "
                         "commands (not nologin), and install a POSIX sh") from None
            if line is None:
                self.terminate()
                raise TransportError(f"{self._argv[0]!r} did not start on the board within {timeout:g} s",
                                     target=self._transport.name, hint="check the board's load and disk")
            if line == "harness-missing":
                raise TransportError(
                    f"{self._argv[0]!r} does not exist on the board or is not executable",
                    target=self._transport.name,
                    hint=f"set python = \"/path/to/bin/python3\" in [targets.{self._transport.name}] "
                         f"(for a venv: its bin/python), or install python3 on the board")
            if line.startswith("harness-pid "):
                self.pid = int(line.split()[1])
                return
            log.warning("%s: the login shell printed %r before the command; make ~/.bashrc quiet "
                        "for non-interactive shells", self._transport.name, line[:200])

    def readline(self, timeout: float) -> str | None:
        if self._eof:
            raise EOFError
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            if self._transport.lost:
                raise self._transport.lost_error() from None
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
            if self._transport.lost or not self._transport.active:
                self._transport.mark_lost("the connection closed mid-stream")
                raise self._transport.lost_error()
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
            if self._transport.lost and not self._terminated:
                raise self._transport.lost_error()
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
        """A newline on the command's stdin: the agent's lifeline reads and drops it.

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
                self._transport.kill_group(self.pid)
        finally:
            # Closing sends EOF on the agent's stdin too: its lifeline if the kill could not get through.
            with contextlib.suppress(Exception):
                self._channel.close()
            self._transport.forget(self)


class SshTransport:
    """A connected board. Construct it to connect; every failure is a TransportError."""

    heartbeat_s: float | None = KEEPALIVE_S  # the watchdog writes a newline to each command's stdin this often

    def __init__(self, target: Target) -> None:
        self.name = target.name
        self.target = target
        opts = target.options
        assert isinstance(opts, SshOptions)
        self.timeout = opts.connect_timeout_s
        self.python = opts.python
        self.workdir = opts.workdir
        self.pushed_bytes = 0  # totals over this connection, for push throughput reports
        self.push_s = 0.0
        self._lost: str | None = None
        self._processes: set[SshProcess] = set()
        self._plock = threading.Lock()
        self._sftp: paramiko.SFTPClient | None = None
        self._cache: str | None = None
        self._home_dir: str | None = None
        self._verified: set[str] = set()  # cache entries known good on this connection
        self._closed = threading.Event()
        self._config = read_ssh_config()
        self.endpoint = resolve(
            opts.host, user=opts.user, port=opts.port, identity_file=opts.identity_file,
            known_hosts=opts.known_hosts, accept_new=opts.accept_new_host_key, config=self._config)
        self._clients: list[paramiko.SSHClient] = []
        try:
            self._client = self._connect(self.endpoint, depth=0)
        except BaseException:
            for client in self._clients:  # jump hosts reached before a later hop failed
                client.close()
            raise
        self._ssh = self._client.get_transport()
        assert self._ssh is not None
        threading.Thread(target=self._watchdog, name=f"ssh-alive-{self.name}", daemon=True).start()

    # connection ----------------------------------------------------------------------------

    def _connect(self, ep: Endpoint, depth: int) -> paramiko.SSHClient:
        if depth > 8:
            raise TransportError(f"ProxyJump chain for {self.endpoint.alias!r} is longer than 8 hops",
                                 target=self.name, hint="check ProxyJump in ~/.ssh/config for a loop")
        sock = None
        if ep.proxy_jump:
            sock = self._jump_channel(ep, depth)
        check_identity_files(self.name, ep)
        client = paramiko.SSHClient()
        load_host_keys(client, self.name, ep)
        t0 = time.monotonic()
        try:
            client.connect(ep.hostname, ep.port, username=ep.user,
                           key_filename=list(ep.identity_files) or None, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout,
                           channel_timeout=self.timeout, allow_agent=True, look_for_keys=True, sock=sock)
        except (paramiko.SSHException, OSError, EOFError, UnknownHostKey) as exc:
            client.close()
            raise connect_error(self.name, ep, exc, self.timeout) from exc
        self._clients.append(client)
        log.info("%s: connected to %s@%s:%d in %.0f ms", self.name, ep.user, ep.hostname, ep.port,
                 (time.monotonic() - t0) * 1e3)
        return client

    def _jump_channel(self, ep: Endpoint, depth: int) -> paramiko.Channel:
        hop = jump_hop(ep, self._config)
        transport = self._connect(hop, depth + 1).get_transport()
        assert transport is not None
        try:
            return transport.open_channel("direct-tcpip", (ep.hostname, ep.port), ("127.0.0.1", 0),
                                          timeout=self.timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise TransportError(f"jump host {hop.hostname} could not open a connection to "
                                 f"{ep.hostname}:{ep.port}: {exc}", target=self.name,
                                 hint="check HostName/Port of the target and ProxyJump in ~/.ssh/config"
                                 ) from exc

    def describe(self) -> str:
        """Who we are logged in as where, and the host key that was verified (for doctor)."""
        ep = self.endpoint
        key = self._ssh.get_remote_server_key()
        via = f" via {ep.proxy_jump}" if ep.proxy_jump else ""
        return (f"{ep.user}@{ep.hostname}:{ep.port}{via}: host key {key.get_name()} {fingerprint(key)} "
                f"verified against {ep.known_hosts}, logged in")

    def _watchdog(self) -> None:
        """Probe a quiet link so that a dropped board fails its stream in bounded time."""
        while not self._closed.wait(KEEPALIVE_S):
            with self._plock:
                live = list(self._processes)
            if not live:
                continue
            for proc in live:
                proc.heartbeat()
            answered = threading.Event()
            threading.Thread(target=self._probe, args=(answered,), daemon=True).start()
            if not answered.wait(self.timeout) or not self._ssh.is_active():
                if not self._closed.is_set():
                    self.mark_lost(f"no answer to a keepalive within {self.timeout:g} s")
                return

    def _probe(self, answered: threading.Event) -> None:
        # Any reply (OpenSSH answers "request failure") proves the link and the server are alive.
        with contextlib.suppress(Exception):
            self._ssh.global_request("keepalive@openssh.com", wait=True)
        answered.set()

    def mark_lost(self, why: str) -> None:
        if self._lost is None and not self._closed.is_set():
            self._lost = why
            log.error("%s: connection to %s lost: %s", self.name, self.endpoint.hostname, why)
        with contextlib.suppress(Exception):
            self._ssh.close()  # unblocks every reader of this connection

    @property
    def active(self) -> bool:
        return self._ssh.is_active()

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def lost_error(self) -> TransportError:
        return TransportError(
            f"connection to {self.endpoint.hostname}:{self.endpoint.port} lost mid-run ({self._lost})",
            target=self.name,
            hint="check the board's power and network; the samples received so far are kept, "
                 "and the board's sshd ends the agent when it notices (set ClientAliveInterval there)")

    # commands ------------------------------------------------------------------------------

    def _channel(self) -> paramiko.Channel:
        if self._lost:
            raise self.lost_error()
        try:
            return self._ssh.open_session(window_size=CHANNEL_WINDOW, timeout=self.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.mark_lost(f"cannot open a channel: {exc}")
            raise self.lost_error() from exc

    def run(self, argv: list[str]) -> SshProcess:
        """Start ``argv`` on the board in its own process group; stdin stays open as a lifeline."""
        if not argv:
            raise ValueError("empty argv")
        if argv[0].startswith("~/"):
            # python = "~/venv/bin/python" in targets.toml: quoted argv gets no tilde expansion.
            argv = [self._home() + argv[0][1:], *argv[1:]]
        chan = self._channel()
        command = shlex.join(["sh", "-c", _WRAPPER, "harness-run", _WRAPPER, *argv])
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.mark_lost(f"exec failed: {exc}")
            raise self.lost_error() from exc
        proc = SshProcess(self, chan, argv)
        with self._plock:
            self._processes.add(proc)
        try:
            proc._start(self.timeout)
        except BaseException:
            self.forget(proc)
            chan.close()
            raise
        log.debug("%s: started pid %s: %s", self.name, proc.pid, shlex.join(argv))
        return proc

    def forget(self, proc: SshProcess) -> None:
        with self._plock:
            self._processes.discard(proc)

    def check_output(self, argv: list[str], timeout: float | None = None) -> tuple[int, str, str]:
        """Run a short command to completion: (exit status, stdout, stderr). Bounded by ``timeout``."""
        timeout = self.timeout if timeout is None else timeout
        chan = self._channel()
        chan.settimeout(timeout)
        try:
            chan.exec_command(shlex.join(argv))
            chan.shutdown_write()
            out = chan.makefile("rb").read()
            err = chan.makefile_stderr("rb").read()
            status = chan.recv_exit_status()
        except TimeoutError as exc:
            raise TransportError(f"{shlex.join(argv)[:80]} took longer than {timeout:g} s on the board",
                                 target=self.name, hint="check the board's load") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.mark_lost(str(exc))
            raise self.lost_error() from exc
        finally:
            chan.close()
        return status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def kill_group(self, pid: int) -> None:
        """TERM the board's process group ``pid``, KILL it after TERM_GRACE_S; waits for that."""
        if self._lost or not self._ssh.is_active():
            log.warning("%s: cannot stop pid %d on the board: the connection is gone; its sshd ends "
                        "it when it notices the lost client", self.name, pid)
            return
        ticks = str(int(TERM_GRACE_S / 0.1))
        try:
            self.check_output(["sh", "-c", _KILL, "harness-kill", str(pid), ticks],
                              timeout=TERM_GRACE_S + self.timeout)
        except TransportError as exc:
            log.warning("%s: stopping pid %d on the board failed: %s", self.name, pid, exc)

    # files ---------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
                self._sftp.get_channel().settimeout(max(self.timeout, 30.0))
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransportError(f"cannot start SFTP on the board: {exc}", target=self.name,
                                     hint="enable 'Subsystem sftp' in the board's sshd_config") from exc
        return self._sftp

    def _home(self) -> str:
        """The board user's home directory (where SFTP starts)."""
        if self._home_dir is not None:
            return self._home_dir
        try:
            self._home_dir = self._sftp_client().normalize(".")
            return self._home_dir
        except OSError as exc:
            raise TransportError(f"cannot find the home directory on the board: {exc}",
                                 target=self.name, hint="use absolute paths in [targets.NAME]") from exc

    def cache_dir(self) -> str:
        """The absolute cache directory on the board, created with mode 0700."""
        if self._cache is None:
            sftp = self._sftp_client()
            path = self.workdir
            if path == "~" or path.startswith("~/"):
                path = self._home() + path[1:]
            parts = [p for p in path.split("/") if p]
            current = "" if path.startswith("/") else "."
            for part in parts:
                current = f"{current}/{part}"
                try:
                    if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                        raise TransportError(f"{current} on the board is not a directory", target=self.name,
                                             hint=f"set workdir = to a directory in [targets.{self.name}]")
                except FileNotFoundError:
                    self._mkdir(current)
            self._cache = current
        return self._cache

    def _mkdir(self, path: str) -> None:
        sftp = self._sftp_client()
        try:
            sftp.mkdir(path, 0o700)
            sftp.chmod(path, 0o700)  # in case the board's umask is odd
        except PermissionError as exc:
            raise TransportError(f"cannot create {path} on the board: permission denied", target=self.name,
                                 hint=f"set workdir = to a directory {self.endpoint.user} owns "
                                      f"in [targets.{self.name}]") from exc
        except OSError as exc:
            if not self._is_dir(path):
                raise self._write_error(path, 0, exc) from exc

    def _is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self._sftp_client().stat(path).st_mode or 0)
        except OSError:
            return False

    def _remote_sha256(self, path: str) -> str | None:
        """The board's own hash of ``path``: coreutils/busybox sha256sum, else the board's python."""
        status, out, _ = self.check_output(["sha256sum", "--", path])
        if status == 127:
            status, out, _ = self.check_output([self.python, "-c", _PY_SHA256, path])
        words = out.strip().splitlines()[-1].split() if status == 0 and out.strip() else []
        return words[0] if words else None

    def stage(self, path: Path) -> Staged:
        """Put ``path`` in the board's cache under its content hash; 0 bytes sent when already there.

        Layout: ``CACHE/<sha256>/<file name>``, dirs 0700 and files 0600. A cached copy is reused
        only after its size and sha256 match; uploads go to a temporary name and are renamed.
        """
        t0 = time.monotonic()
        try:
            size = path.stat().st_size
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise TransportError(f"cannot read {path}: {exc.strerror}", target=self.name,
                                 hint="check the file name") from exc
        sha = digest.hexdigest()
        sftp = self._sftp_client()
        rdir = f"{self.cache_dir()}/{sha}"
        remote = f"{rdir}/{path.name}"
        if remote in self._verified:
            return Staged(remote, 0)  # sent or hashed on the board earlier on this connection
        try:
            attrs = sftp.stat(remote)
            if attrs.st_size == size and self._remote_sha256(remote) == sha:
                log.debug("%s: %s already on the board (%s)", self.name, path.name, remote)
                self._verified.add(remote)
                return Staged(remote, 0)
            log.warning("%s: cached %s on the board does not match its hash; sending it again",
                        self.name, remote)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TransportError(f"cannot check {remote} on the board: {exc}", target=self.name,
                                 hint=f"set workdir = in [targets.{self.name}]") from exc
        if not self._is_dir(rdir):
            self._mkdir(rdir)
        tmp = f"{rdir}/.upload-{uuid.uuid4().hex}"
        try:
            with path.open("rb") as local, sftp.open(tmp, "wb") as out:
                out.chmod(0o600)
                out.set_pipelined(True)
                for block in iter(lambda: local.read(1 << 20), b""):
                    out.write(block)
            if sftp.stat(tmp).st_size != size:
                raise OSError("size mismatch after upload")
            sftp.posix_rename(tmp, remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            with contextlib.suppress(Exception):
                sftp.remove(tmp)
            if self._lost or not self._ssh.is_active():
                self.mark_lost(f"upload of {path.name} failed")
                raise self.lost_error() from exc
            raise self._write_error(rdir, size, exc, name=path.name) from exc
        elapsed = time.monotonic() - t0
        self._verified.add(remote)
        self.pushed_bytes += size
        self.push_s += elapsed
        log.info("%s: pushed %s (%d bytes) in %.3f s", self.name, path.name, size, elapsed)
        return Staged(remote, size)

    def _write_error(self, rdir: str, size: int, exc: BaseException, name: str = "") -> TransportError:
        """Why a write failed on the board: a full disk gets its own message and fix."""
        free = self.free_bytes(rdir)
        if free is not None and free < max(size, 1) + 4096:
            return TransportError(
                f"no space left on the board for {name or rdir}: {size} bytes needed, {free} free in "
                f"{rdir}", target=self.name,
                hint=f"free space on the board (e.g. rm -rf {self.workdir}/*), or set workdir = to a "
                     f"bigger disk in [targets.{self.name}]")
        return TransportError(f"writing {name or rdir} to {rdir} on the board failed: {exc}",
                              target=self.name, hint=f"set workdir = in [targets.{self.name}]")

    def free_bytes(self, path: str) -> int | None:
        """Free bytes for this user in ``path`` on the board, or None if df is not there."""
        try:
            status, out, _ = self.check_output(["df", "-Pk", "--", path])
        except TransportError:
            return None
        rows = out.strip().splitlines()
        if status != 0 or len(rows) < 2:
            return None
        fields = rows[-1].split()
        return int(fields[3]) * 1024 if len(fields) >= 4 and fields[3].isdigit() else None

    def close(self) -> None:
        """Stop what still runs on the board, then disconnect."""
        with self._plock:
            live = list(self._processes)
        for proc in live:
            proc.terminate()
        self._closed.set()
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
