"""pytest fixtures for SSH boards (see tests/sshd.py for the lab itself).

- ``ssh_lab`` (session): three running boards, board1..board3, on their own subnet.
- ``ssh_env`` (test): a fresh HOME for the client, with ~/.ssh/{id_ed25519,known_hosts,config}
  naming every board by alias, and no ssh-agent; the real ~/.ssh is never read or touched.
- ``fresh_board`` (test): one more board, removed after the test, for tests that break it.
- ``litert_python``: a board python with numpy and ai-edge-litert (tflite214_python is in conftest).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config import Target, parse_targets
from tests.boardenv import board_venv
from tests.environment import ROOT_WHY, is_root, require
from tests.sshd import SSHD, Board, Lab


@pytest.fixture(scope="session")
def ssh_lab() -> Iterator[Lab]:
    require(is_root(), ROOT_WHY)
    require(Path(SSHD).is_file(), f"needs OpenSSH's {SSHD} (apt-get install openssh-server)")
    # HARNESS_TEST_NO_NETNS=1 exercises the loopback-alias fallback used where namespaces are missing.
    use_netns = False if os.environ.get("HARNESS_TEST_NO_NETNS") == "1" else None
    with Lab(use_netns=use_netns) as lab:
        for _ in range(3):
            lab.add_board()
        yield lab


@pytest.fixture(scope="session")
def litert_python() -> Path:
    """A board python with numpy and ai-edge-litert only, readable by the board user."""
    return board_venv("litert", ("numpy", "ai-edge-litert"))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def targets_toml(targets: dict[str, dict[str, Any]]) -> str:
    """A targets.toml text with one ``[targets.NAME]`` table per entry."""
    out = []
    for name, table in targets.items():
        out.append(f"[targets.{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


@dataclass
class SshEnv:
    """The client side of one test: its HOME, keys, known_hosts and ssh config."""

    lab: Lab
    home: Path

    @property
    def ssh_dir(self) -> Path:
        return self.home / ".ssh"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    def add_board(self, board: Board, *, known: bool = True) -> None:
        """Make ``board.name`` a Host alias in ~/.ssh/config (and trust its key when ``known``)."""
        with (self.ssh_dir / "config").open("a") as f:
            f.write(f"Host {board.name}\n  HostName {board.host}\n  Port {board.port}\n"
                    f"  User {self.lab.user.pw_name}\n\n")
        if known:
            with self.known_hosts.open("a") as f:
                f.write(board.known_hosts_line() + "\n")

    def table(self, board: Board | str, **opts: Any) -> dict[str, Any]:
        host = board.name if isinstance(board, Board) else board
        return {"kind": "ssh", "host": host, "connect_timeout_s": 3, **opts}

    def target(self, board: Board | str, name: str | None = None, **opts: Any) -> Target:
        """A Target parsed from real targets.toml text, like the CLI does."""
        name = name or (board.name if isinstance(board, Board) else str(board))
        return parse_targets(targets_toml({name: self.table(board, **opts)}), "test-targets.toml")[name]


@pytest.fixture
def ssh_env(ssh_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SshEnv:
    home = tmp_path / "home"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    shutil.copy(ssh_lab.client_key, ssh_dir / "id_ed25519")
    shutil.copy(f"{ssh_lab.client_key}.pub", ssh_dir / "id_ed25519.pub")
    os.chmod(ssh_dir / "id_ed25519", 0o600)
    (ssh_dir / "config").write_text("")
    (ssh_dir / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # never use the developer's agent
    env = SshEnv(lab=ssh_lab, home=home)
    for board in ssh_lab.boards:
        env.add_board(board)
    return env


@pytest.fixture
def fresh_board(ssh_lab: Lab, ssh_env: SshEnv) -> Iterator[Board]:
    """A board of its own for a test that breaks it; known to ``ssh_env`` as its alias."""
    board = ssh_lab.add_board(f"fresh{ssh_lab._count + 1}")
    ssh_env.add_board(board)
    try:
        yield board
    finally:
        ssh_lab.remove_board(board)
