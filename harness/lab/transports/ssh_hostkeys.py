"""Host-key verification for SSH targets: known_hosts, the accept-new opt-in, and fingerprints.

Host keys are always verified. An unknown key stops the target unless it opted in to accepting
new keys (``accept_new_host_key = true`` or ``StrictHostKeyChecking accept-new``); a *changed* key
stops it always (see harness.lab.transports.ssh_connect_errors for the messages).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import paramiko

from harness.errors import TransportError
from harness.lab.transports.ssh_config import Endpoint

log = logging.getLogger(__name__)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, e.g. ``SHA256:abc...`` (what ``ssh-keygen -lf`` prints)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(path: Path, name: str) -> int | None:
    """1-based line of ``path`` that holds a key for ``name`` (plain or hashed), if any."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", "@")):
            continue
        for pattern in fields[0].split(","):
            if pattern == name or (pattern.startswith("|1|")
                                   and paramiko.HostKeys.hash_host(name, pattern) == pattern):
                return number
    return None


class UnknownHostKey(Exception):
    """The server's key is not in known_hosts and the target did not opt in to accepting it."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Reject unknown keys, or with explicit opt-in record them (accept-new) and say so loudly."""

    def __init__(self, target: str, endpoint: Endpoint) -> None:
        self.target = target
        self.endpoint = endpoint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.endpoint.accept_new:
            raise UnknownHostKey(key)
        path = self.endpoint.known_hosts
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{self.endpoint.key_name} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line)
        client.get_host_keys().add(self.endpoint.key_name, key.get_name(), key)
        log.warning("%s: accepted NEW host key for %s (%s %s) and added it to %s "
                    "(accept_new_host_key = true)", self.target, self.endpoint.key_name,
                    key.get_name(), fingerprint(key), path)


def load_host_keys(client: paramiko.SSHClient, target: str, ep: Endpoint) -> None:
    """Give ``client`` the keys known for ``ep`` and the policy for a key it does not know."""
    if ep.known_hosts.is_file():
        try:
            client.load_host_keys(str(ep.known_hosts))
        except OSError as exc:
            raise TransportError(f"cannot read known_hosts file {ep.known_hosts}: {exc}",
                                 target=target, hint="fix its permissions") from exc
    if ep.host_key_alias:
        # paramiko looks keys up by the address it dials; OpenSSH by HostKeyAlias when set.
        keys = client.get_host_keys()
        alias_keys = keys.lookup(ep.key_name) or {}
        dialed = ep.hostname if ep.port == 22 else f"[{ep.hostname}]:{ep.port}"
        keys.clear()
        for key_type, key in alias_keys.items():
            keys.add(dialed, key_type, key)
    client.set_missing_host_key_policy(HostKeyPolicy(target, ep))
