"""Where an SSH target is and as whom to log in: ~/.ssh/config resolved the way ``ssh -G`` does.

From ~/.ssh/config, as ``ssh`` reads it: HostName, User, Port, IdentityFile, UserKnownHostsFile,
HostKeyAlias, ProxyJump (``[user@]host[:port]``, comma-separated chains) and
``StrictHostKeyChecking accept-new``. Values in targets.toml win over ~/.ssh/config.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import TransportError


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect, after ~/.ssh/config: what ``ssh -G`` would say."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: Path
    host_key_alias: str | None
    proxy_jump: str | None
    accept_new: bool

    @property
    def key_name(self) -> str:
        """The name of this host in known_hosts."""
        name = self.host_key_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"


def read_ssh_config() -> paramiko.SSHConfig:
    """The user's ~/.ssh/config (empty when there is none); a line paramiko cannot parse is an error."""
    path = Path(os.path.expanduser("~/.ssh/config"))
    if not path.is_file():
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except Exception as exc:  # paramiko raises bare ConfigParseError/ValueError on bad lines
        raise TransportError(f"cannot parse {path}: {exc}", hint=f"fix the line in {path}") from exc


def resolve(alias: str, *, user: str | None = None, port: int | None = None,
            identity_file: str | None = None, known_hosts: str | None = None,
            accept_new: bool = False, config: paramiko.SSHConfig | None = None) -> Endpoint:
    """Resolve ``alias`` the way ``ssh`` does; explicit arguments win over ~/.ssh/config."""
    cfg = (config or read_ssh_config()).lookup(alias)
    ids: list[str] = [identity_file] if identity_file else list(cfg.get("identityfile", []))
    kh = known_hosts or (cfg.get("userknownhostsfile", "").split() or ["~/.ssh/known_hosts"])[0]
    strict = str(cfg.get("stricthostkeychecking", "")).lower()
    jump = cfg.get("proxyjump")
    return Endpoint(
        alias=alias,
        hostname=cfg.get("hostname", alias),
        port=int(port or cfg.get("port", 22)),
        user=user or cfg.get("user") or getpass.getuser(),
        identity_files=tuple(os.path.expanduser(i) for i in ids),
        known_hosts=Path(os.path.expanduser(kh)),
        host_key_alias=cfg.get("hostkeyalias"),
        proxy_jump=None if not jump or jump.lower() == "none" else jump,
        accept_new=accept_new or strict == "accept-new",
    )


def jump_hop(ep: Endpoint, config: paramiko.SSHConfig) -> Endpoint:
    """The host ``ep`` is reached through: the last hop of its ProxyJump, carrying the hops before it.

    Only call this when ``ep.proxy_jump`` is set. The hop shares ``ep``'s known_hosts and accept-new.
    """
    # "a,b" means: reach b through a, then the target through b.
    *first, last = [s.strip() for s in str(ep.proxy_jump).split(",")]
    user, _, hostport = last.rpartition("@")
    host, _, port = hostport.partition(":")
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    hop = resolve(host, user=user or None, port=int(port) if port else None,
                  known_hosts=str(ep.known_hosts), accept_new=ep.accept_new, config=config)
    if first:
        hop = Endpoint(**{**hop.__dict__, "proxy_jump": ",".join(first)})
    elif hop.proxy_jump:
        hop = Endpoint(**{**hop.__dict__, "proxy_jump": None})  # OpenSSH ignores it here too
    return hop


def check_identity_files(target: str, ep: Endpoint) -> None:
    """Fail before dialling when an identity file named in targets.toml or ~/.ssh/config is missing."""
    for key_file in ep.identity_files:
        if not Path(key_file).is_file():
            raise TransportError(f"identity file {key_file} does not exist", target=target,
                                 hint=f"fix identity_file = in [targets.{target}] or IdentityFile "
                                      "in ~/.ssh/config")
