"""The SSH connection to one board: dialled through its ProxyJump hops, watched for loss.

``SshLink`` resolves the target the way ``ssh`` does (harness.lab.transports.ssh_config), connects
hop by hop with verified host keys (ssh_hostkeys; every failure is explained by
ssh_connect_errors), opens the channels that commands run on, and runs short commands to
completion. Once the link is found lost (a keepalive unanswered, a channel that cannot open),
every later use raises the same TransportError, which says that the samples so far are kept.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
import time

import paramiko

from harness.config import SshOptions
from harness.errors import TransportError
from harness.lab.transports.ssh_config import (
    Endpoint,
    check_identity_files,
    jump_hop,
    read_ssh_config,
    resolve,
)
from harness.lab.transports.ssh_connect_errors import connect_error, handshake_stalled
from harness.lab.transports.ssh_hostkeys import UnknownHostKey, fingerprint, load_host_keys

log = logging.getLogger(__name__)

MAX_HOPS = 8  # a longer ProxyJump chain is a loop in ~/.ssh/config
# A small channel window bounds how much a board can send into a dead link: once it is used up,
# the board's sshd stops reading the agent's output, goes quiet, and its ClientAliveInterval check
# ends the session (and the agent, through its stdin lifeline). 256 KiB still streams ~100 MB/s
# at 2 ms round trip, far above what an agent writes.
CHANNEL_WINDOW = 256 * 1024


class SshLink:
    """A connected board. Construct it to connect; every failure is a TransportError."""

    def __init__(self, name: str, opts: SshOptions) -> None:
        self.name = name
        self.timeout = opts.connect_timeout_s  # connect, handshake, auth, each reply, keepalive
        self._lost: str | None = None
        self._closed = threading.Event()
        self._config = read_ssh_config()
        self.endpoint = resolve(opts.host, user=opts.user, port=opts.port, identity_file=opts.identity_file,
                                known_hosts=opts.known_hosts, accept_new=opts.accept_new_host_key,
                                config=self._config)
        self._clients: list[paramiko.SSHClient] = []
        try:
            self.client = self._connect(self.endpoint, depth=0)
        except BaseException:
            for client in self._clients:  # jump hosts reached before a later hop failed
                client.close()
            raise
        ssh = self.client.get_transport()
        assert ssh is not None
        self._ssh = ssh

    def _connect(self, ep: Endpoint, depth: int) -> paramiko.SSHClient:
        if depth > MAX_HOPS:
            raise TransportError(f"ProxyJump chain for {self.endpoint.alias!r} is longer than {MAX_HOPS} hops",
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
            cause = handshake_stalled(client) or exc
            client.close()
            raise connect_error(self.name, ep, cause, self.timeout) from exc
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

    # loss --------------------------------------------------------------------------------------

    def answers(self) -> bool:
        """True when the server answers a keepalive within the connect timeout."""
        answered = threading.Event()

        def probe() -> None:
            # Any reply (OpenSSH answers "request failure") proves the link and the server are alive.
            with contextlib.suppress(Exception):
                self._ssh.global_request("keepalive@openssh.com", wait=True)
            answered.set()

        threading.Thread(target=probe, daemon=True).start()
        return answered.wait(self.timeout) and self._ssh.is_active()

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

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking when the link is closed; True once it is."""
        return self._closed.wait(timeout)

    def lost_error(self) -> TransportError:
        return TransportError(
            f"connection to {self.endpoint.hostname}:{self.endpoint.port} lost mid-run ({self._lost})",
            target=self.name,
            hint="check the board's power and network; the samples received so far are kept, "
                 "and the board's sshd ends the agent when it notices (set ClientAliveInterval there)")

    # channels ----------------------------------------------------------------------------------

    def channel(self) -> paramiko.Channel:
        if self._lost:
            raise self.lost_error()
        try:
            return self._ssh.open_session(window_size=CHANNEL_WINDOW, timeout=self.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.mark_lost(f"cannot open a channel: {exc}")
            raise self.lost_error() from exc

    def exec(self, command: str) -> paramiko.Channel:
        """A channel running ``command`` (already quoted), its stdin left open."""
        chan = self.channel()
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            chan.close()
            self.mark_lost(f"exec failed: {exc}")
            raise self.lost_error() from exc
        return chan

    def check_output(self, argv: list[str], timeout: float | None = None) -> tuple[int, str, str]:
        """Run a short command to completion: (exit status, stdout, stderr). Bounded by ``timeout``."""
        timeout = self.timeout if timeout is None else timeout
        chan = self.channel()
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

    def close(self) -> None:
        """Disconnect every hop, last first; a loss found after this is not reported."""
        self._closed.set()
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.close()
