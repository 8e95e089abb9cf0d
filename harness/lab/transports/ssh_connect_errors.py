"""What a failed SSH connect means: one TransportError naming the target, the cause and the fix.

paramiko and the socket layer raise a dozen exception types for a failed connect; each maps here
to a message in the target's terms (host, port, user, known_hosts file and line, keys tried) and
a hint naming the ``[targets.NAME]`` key, ~/.ssh/config entry or command that fixes it.
"""

from __future__ import annotations

import shlex
import socket

import paramiko

from harness.errors import TransportError
from harness.lab.transports.ssh_config import Endpoint
from harness.lab.transports.ssh_hostkeys import UnknownHostKey, fingerprint, known_hosts_line


class HandshakeStalled(Exception):
    """The server took the TCP connection but sent no SSH banner (a port that is not sshd's, an
    sshd hung or over MaxStartups, a firewall that accepts and drops)."""


def handshake_stalled(client: paramiko.SSHClient) -> HandshakeStalled | None:
    """Why a connect failed, when the server never said "SSH-2.0-...": paramiko then reports
    whatever it tried next ("No existing session"), which names nothing the user can fix."""
    transport = client.get_transport()
    if transport is None or transport.remote_version:
        return None  # no TCP connection yet, or the server did answer
    return HandshakeStalled()


def connect_error(target: str, ep: Endpoint, exc: BaseException, timeout: float) -> TransportError:
    """One clear TransportError for a failed connect, naming the target and the fix.

    ``timeout`` is the connect timeout in seconds, quoted when the board did not answer.
    """
    where = f"{ep.hostname}:{ep.port}" + (f" (host alias {ep.alias!r})" if ep.alias != ep.hostname else "")
    if isinstance(exc, UnknownHostKey):
        key = exc.key
        return TransportError(
            f"unknown host key for {ep.key_name}: {key.get_name()} {fingerprint(key)} is not in "
            f"{ep.known_hosts}", target=target,
            hint=f"check that fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                 f"then run `ssh -p {ep.port} {ep.user}@{ep.hostname}` once or add "
                 f"accept_new_host_key = true to [targets.{target}]")
    if isinstance(exc, paramiko.BadHostKeyException):
        line = known_hosts_line(ep.known_hosts, ep.key_name)
        at = f"{ep.known_hosts}" + (f" line {line}" if line else "")
        return TransportError(
            f"host key for {ep.key_name} has CHANGED: the board sent {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, {at} expects {fingerprint(exc.expected_key)}; this could be "
            f"a man-in-the-middle attack, or the board was re-installed", target=target,
            hint=f"if you know the board was re-installed: ssh-keygen -f {shlex.quote(str(ep.known_hosts))}"
                 f" -R {shlex.quote(ep.key_name)}, then connect again")
    if isinstance(exc, HandshakeStalled):
        return TransportError(
            f"{where} accepted the connection but did not answer the SSH handshake within "
            f"connect_timeout_s = {timeout:g} s", target=target,
            hint=f"check that port = in [targets.{target}] is the board's SSH server and that its sshd "
                 f"is not hung (ssh -v -p {ep.port} {ep.hostname} shows what answers), or raise "
                 f"connect_timeout_s for a slow link")
    if isinstance(exc, paramiko.PasswordRequiredException):
        return TransportError(f"the SSH key for {ep.user}@{where} is encrypted", target=target,
                              hint="load it into ssh-agent with ssh-add (harness never asks for passphrases)")
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ", ".join(ep.identity_files) or "ssh-agent and ~/.ssh/id_*"
        return TransportError(
            f"authentication as {ep.user!r} at {where} failed (keys tried: {tried})", target=target,
            hint=f"check user = and identity_file = in [targets.{target}] or ~/.ssh/config, and that "
                 f"the public key is in ~{ep.user}/.ssh/authorized_keys on the board "
                 f"(ssh-copy-id -p {ep.port} {ep.user}@{ep.hostname})")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"cannot resolve host {ep.hostname!r}", target=target,
                              hint=f"check host = in [targets.{target}] or the Host entry in ~/.ssh/config")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return TransportError(f"connection refused at {where}: no SSH server listening", target=target,
                              hint=f"start sshd on the board, or fix port = in [targets.{target}]")
    if isinstance(exc, TimeoutError):
        return TransportError(f"no answer from {where} within {timeout:g} s (board down or unreachable)",
                              target=target,
                              hint=f"power the board and check its network, or raise connect_timeout_s "
                                   f"in [targets.{target}] for a slow link")
    if isinstance(exc, OSError):
        return TransportError(f"cannot reach {where}: {exc.strerror or exc}", target=target,
                              hint="check that the board is powered and on this network")
    return TransportError(f"SSH handshake with {where} failed: {exc}", target=target,
                          hint="check that the port belongs to an SSH server")
