"""SSH transport: a Linux board reached with OpenSSH semantics, through paramiko.

Target grammar (``[targets.NAME]`` with ``kind = "ssh"``; defaults in harness.config.SshOptions)::

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

The parts: ssh_link (the connection and its jump hosts, loss detection), ssh_process (a command
in its own process group on the board, stopped TERM then KILL), ssh_cache (files staged by
content hash). This module ties them together and watches the link while commands run.
"""

from __future__ import annotations

import logging
import shlex
import threading
from pathlib import Path
from typing import Any

from harness.config import SshOptions, Target
from harness.errors import ConfigError
from harness.lab.transports.base import Staged
from harness.lab.transports.ssh_cache import BoardCache
from harness.lab.transports.ssh_config import Endpoint
from harness.lab.transports.ssh_link import SshLink
from harness.lab.transports.ssh_process import SshProcess, wrap

log = logging.getLogger(__name__)

# Check a silent link every few seconds: a lost board must end its stream in bounded time
# (KEEPALIVE_S + connect_timeout_s), while costing one tiny request per board per interval.
KEEPALIVE_S = 3.0


class SshTransport:
    """A connected board. Construct it to connect; every failure is a TransportError."""

    heartbeat_s: float | None = KEEPALIVE_S  # the watchdog writes a newline to each command's stdin this often

    def __init__(self, target: Target) -> None:
        opts = target.options
        if not isinstance(opts, SshOptions):
            raise ConfigError(f"{target.name} is a {target.kind} target, not an ssh one", target=target.name)
        self.name = target.name
        self.target = target
        self.link = SshLink(target.name, opts)
        self.files = BoardCache(self.link, python=opts.python, workdir=opts.workdir)
        self._processes: set[SshProcess] = set()
        self._plock = threading.Lock()
        threading.Thread(target=self._watchdog, name=f"ssh-alive-{self.name}", daemon=True).start()

    @property
    def endpoint(self) -> Endpoint:
        return self.link.endpoint

    def describe(self) -> str:
        """Who we are logged in as where, and the host key that was verified (for doctor)."""
        return self.link.describe()

    def _watchdog(self) -> None:
        """Probe a quiet link so that a dropped board fails its stream in bounded time."""
        while not self.link.wait_closed(KEEPALIVE_S):
            with self._plock:
                live = list(self._processes)
            if not live:
                continue
            for proc in live:
                proc.heartbeat()
            if not self.link.answers():
                if not self.link.closed:
                    self.link.mark_lost(f"no answer to a keepalive within {self.link.timeout:g} s")
                return

    def run(self, argv: list[str]) -> SshProcess:
        """Start ``argv`` on the board in its own process group; stdin stays open as a lifeline."""
        if not argv:
            raise ValueError("empty argv")
        if argv[0].startswith("~/"):
            # python = "~/venv/bin/python" in targets.toml: quoted argv gets no tilde expansion.
            argv = [self.files.home() + argv[0][1:], *argv[1:]]
        chan = self.link.exec(wrap(argv))
        proc = SshProcess(self.link, chan, argv, on_end=self._forget)
        with self._plock:
            self._processes.add(proc)
        try:
            proc.start(self.link.timeout)
        except BaseException:
            self._forget(proc)
            chan.close()
            raise
        log.debug("%s: started pid %s: %s", self.name, proc.pid, shlex.join(argv))
        return proc

    def _forget(self, proc: SshProcess) -> None:
        with self._plock:
            self._processes.discard(proc)

    def check_output(self, argv: list[str], timeout: float | None = None) -> tuple[int, str, str]:
        """Run a short command to completion: (exit status, stdout, stderr). Bounded by ``timeout``."""
        return self.link.check_output(argv, timeout)

    def stage(self, path: Path) -> Staged:
        """Put ``path`` in the board's cache under its content hash (harness.lab.transports.ssh_cache)."""
        return self.files.stage(path)

    def close(self) -> None:
        """Stop what still runs on the board, then disconnect."""
        with self._plock:
            live = list(self._processes)
        for proc in live:
            proc.terminate()
        self.files.close()
        self.link.close()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
