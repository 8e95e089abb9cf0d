"""Real OpenSSH boards for the tests: sshd servers in network namespaces (or on loopback aliases).

A *lab* is one bridge ``hxbrN`` with the subnet ``10.213.N.0/24`` (N is taken under a lock file, so
two test sessions on one machine never share it) and one network namespace per board, each with its
own address ``10.213.N.(10+i)`` and its own Debian ``sshd`` on port 22. Nothing is routed anywhere
else: the host reaches the boards only through the bridge. Where namespaces are not available (not
root), boards are sshd servers on loopback aliases 127.0.N.(10+i) with a free port each.

Everybody logs in as the plain user ``boarduser`` (created once with ``useradd``) with one client
key per lab. Every process a board's sshd starts carries ``HARNESS_TEST_LAB=<id>`` in its
environment (sshd ``SetEnv``), which is how the tests find orphans and how teardown kills them all,
even the ones that escaped into their own session.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SSHD = "/usr/sbin/sshd"  # absolute: sshd re-executes itself
USER = "boarduser"
_LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


def ensure_user(name: str = USER) -> pwd.struct_passwd:
    """The plain board user, created on first use (needs root)."""
    with open(_LOCK_DIR / "harness-test-user.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
        # useradd leaves the account locked, which sshd refuses under UsePAM no.
        subprocess.run(["usermod", "-p", "*", name], check=True)
        return pwd.getpwnam(name)


def keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path``; returns the public line ("ssh-ed25519 AAAA... comment")."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True)
    return Path(f"{path}.pub").read_text().strip()


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Board:
    """One sshd "board". ``netns``/``veth`` are None on the loopback fallback."""

    name: str
    host: str
    port: int
    dir: Path
    hostkey_pub: str  # "ssh-ed25519 AAAA..." without comment
    lab_id: str
    netns: str | None = None
    veth: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def known_hosts_line(self) -> str:
        return f"{self.known_hosts_name} {self.hostkey_pub}"

    def start(self, timeout: float = 10.0) -> None:
        """Start sshd and wait for ``Server listening on``."""
        argv = [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Server listening on" in (self.dir / "sshd.log").read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"sshd for {self.name} did not start:\n"
                           + (self.dir / "sshd.log").read_text(errors="replace"))

    def stop_listener(self) -> None:
        """Stop the listening sshd only: sessions already open keep running, as on a real board."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def link_down(self) -> None:
        """Pull the board's network cable (the host side of its veth)."""
        assert self.veth, "link_down needs network namespaces"
        _ip("link", "set", self.veth, "down")

    def link_up(self) -> None:
        assert self.veth
        _ip("link", "set", self.veth, "up")

    def in_mount_ns(self, *argv: str) -> None:
        """Run argv in the board's mount namespace (``ip netns exec`` gives sshd its own)."""
        prefix = ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt"] if self.netns and self.proc else []
        subprocess.run([*prefix, *argv], check=True)

    def session_pids(self) -> list[int]:
        """The board's sshd per-connection processes ("sshd: user [priv]", "sshd: user@notty")."""
        if not self.proc or self.proc.poll() is not None:
            return []
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [c.pid for c in children if _cmdline(c).startswith("sshd:")]

    def kill_sessions(self) -> None:
        """Kill the board's sshd session processes: the connection drops as if sshd crashed."""
        for pid in self.session_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def lab_processes(lab_id: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process started by the lab's sshd servers."""
    marker = f"HARNESS_TEST_LAB={lab_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            if marker not in env:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue  # a zombie is already dead; its parent just has not reaped it
        except OSError:
            continue
        found.append((int(entry), cmd))
    return found


class Lab:
    """Boards on their own subnet. Use as a context manager; ``close`` cleans up even after errors."""

    def __init__(self, use_netns: bool | None = None) -> None:
        self.user = ensure_user()
        self.use_netns = netns_available() if use_netns is None else use_netns
        self.boards: list[Board] = []
        self._count = 0
        self._lock = self._take_slot()
        self.root = Path(tempfile.mkdtemp(prefix=f"hx-lab{self.slot}-", dir="/tmp"))
        os.chmod(self.root, 0o755)  # the board user must traverse to authorized_keys
        self.id = f"{self.slot}-{os.getpid()}-{self.root.name}"
        self.client_key = self.root / "id_ed25519"
        self.client_pub = keygen(self.client_key)
        (self.root / "authorized_keys").write_text(self.client_pub + "\n")
        os.chmod(self.root / "authorized_keys", 0o644)
        self.bridge: str | None = None
        self.gateway = f"10.213.{self.slot}.1"
        if self.use_netns:
            self.bridge = f"hxbr{self.slot}"
            _ip("link", "del", self.bridge, check=False)  # left over by a killed session
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")

    def _take_slot(self) -> object:
        for slot in range(1, 250):
            f = open(_LOCK_DIR / f"harness-sshlab-{slot}.lock", "w")  # noqa: SIM115 - held for the session
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            self.slot = slot
            return f
        raise RuntimeError("no free test lab slot")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def free_address(self) -> str:
        """An address on the lab subnet where no board lives (connects to it time out)."""
        return f"10.213.{self.slot}.250" if self.use_netns else f"127.0.{self.slot}.250"

    def add_board(self, name: str | None = None, *, client_alive_s: int = 1) -> Board:
        """A new running board. ``client_alive_s``: sshd drops a silent client after 3x that."""
        self._count += 1
        i = self._count
        if i > 200:
            raise RuntimeError("a lab holds at most 200 boards")
        name = name or f"board{i}"
        bdir = self.root / name
        bdir.mkdir()
        hostkey_pub = " ".join(keygen(bdir / "hostkey").split()[:2])
        if self.use_netns:
            ns, veth = f"hx{self.slot}b{i}-{os.getpid() % 10000}", f"hxv{self.slot}b{i}"
            host, port = f"10.213.{self.slot}.{10 + i}", 22
            _ip("netns", "del", ns, check=False)
            _ip("link", "del", veth, check=False)
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", str(self.bridge), "up")
            _ip("-n", ns, "addr", "add", f"{host}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            listen = f"ListenAddress {host}\nListenAddress 127.0.0.1\n"
        else:
            ns = veth = None
            host = f"127.0.{self.slot}.{10 + i}"
            port = _free_port(host)
            listen = f"ListenAddress {host}\n"
        (bdir / "sshd_config").write_text(
            f"Port {port}\n{listen}HostKey {bdir}/hostkey\nPidFile none\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile {self.root}/authorized_keys\nStrictModes no\n"
            f"AllowUsers {self.user.pw_name}\n"
            # A real board should do the same: notice a vanished client and close its session,
            # which ends the agent through its stdin lifeline.
            f"ClientAliveInterval {client_alive_s}\nClientAliveCountMax 3\n"
            f"SetEnv HARNESS_TEST_LAB={self.id}\n"
            "Subsystem sftp internal-sftp\n")
        if not self.use_netns and os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)
        if self.use_netns:
            Path("/run/sshd").mkdir(exist_ok=True)
        board = Board(name=name, host=host, port=port, dir=bdir, hostkey_pub=hostkey_pub,
                      lab_id=self.id, netns=ns, veth=veth)
        self.boards.append(board)
        board.start()
        return board

    def remove_board(self, board: Board) -> None:
        """Stop one board and remove its namespace (for tests that break their board)."""
        board.kill_sessions()
        board.stop_listener()
        self.kill_all_of(board)
        if board.netns:
            _ip("netns", "del", board.netns, check=False)
        if board.veth:
            _ip("link", "del", board.veth, check=False)
        self.boards.remove(board)

    def kill_all_of(self, board: Board) -> None:
        """Kill what the board's sessions started (all of the lab on the loopback fallback)."""
        if not board.netns:
            self.kill_all()
            return
        for pid in _ip("netns", "pids", board.netns, check=False).stdout.split():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def workdir(self, name: str) -> str:
        """A fresh directory owned by the board user (mode 0700), for one target's cache."""
        path = self.root / "work" / name
        path.parent.mkdir(exist_ok=True)
        os.chmod(path.parent, 0o755)
        path.mkdir()
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        os.chmod(path, 0o700)
        return str(path)

    def processes(self, needle: str = "") -> list[tuple[int, str]]:
        """Live processes the boards started whose command line contains ``needle``."""
        return [(pid, cmd) for pid, cmd in lab_processes(self.id) if needle in cmd]

    def kill_all(self) -> None:
        """Kill every process the lab's sshd servers started (sessions and their children)."""
        for _ in range(3):
            procs = lab_processes(self.id)
            if not procs:
                return
            for pid, _cmd in procs:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def close(self) -> None:
        for board in self.boards:
            board.kill_sessions()
            board.stop_listener()
        self.kill_all()
        for board in self.boards:
            if board.netns:
                # Kill anything still inside the namespace before removing it.
                out = _ip("netns", "pids", board.netns, check=False).stdout.split()
                for pid in out:
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                _ip("netns", "del", board.netns, check=False)
            if board.veth:
                _ip("link", "del", board.veth, check=False)
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self._lock.close()  # type: ignore[attr-defined]
