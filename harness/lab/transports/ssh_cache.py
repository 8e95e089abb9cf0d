"""The per-user file cache on an SSH board: files staged by content hash over SFTP.

Layout: ``WORKDIR/<sha256>/<file name>`` (workdir from targets.toml, default ~/.cache/harness),
directories 0700 and files 0600. A cached copy is reused only after its size and sha256 match,
as computed by the board itself; uploads go to a temporary name and are renamed, so a broken
upload never looks like a cached file. A full disk gets its own message and fix.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import time
import uuid
from pathlib import Path

import paramiko

from harness.errors import TransportError
from harness.lab.transports.base import Staged
from harness.lab.transports.ssh_link import SshLink
from harness.models.files import sha256

log = logging.getLogger(__name__)

# The board's own hash of a file, for boards without sha256sum (argv: the path).
_PY_SHA256 = ("import hashlib, sys\nh = hashlib.sha256()\nwith open(sys.argv[1], 'rb') as f:\n"
              "    for b in iter(lambda: f.read(1 << 20), b''):\n        h.update(b)\nprint(h.hexdigest())")


class BoardCache:
    """The board's cache directory, reached through ``link``; ``python`` hashes where sha256sum is missing."""

    def __init__(self, link: SshLink, *, python: str, workdir: str) -> None:
        self._link = link
        self.name = link.name
        self.python = python
        self.workdir = workdir
        self._sftp: paramiko.SFTPClient | None = None
        self._cache: str | None = None
        self._home_dir: str | None = None
        self._verified: set[str] = set()  # cache entries known good on this connection

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._link.client.open_sftp()
                self._sftp.get_channel().settimeout(max(self._link.timeout, 30.0))
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransportError(f"cannot start SFTP on the board: {exc}", target=self.name,
                                     hint="enable 'Subsystem sftp' in the board's sshd_config") from exc
        return self._sftp

    def home(self) -> str:
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
                path = self.home() + path[1:]
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
                                 hint=f"set workdir = to a directory {self._link.endpoint.user} owns "
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
        status, out, _ = self._link.check_output(["sha256sum", "--", path])
        if status == 127:
            status, out, _ = self._link.check_output([self.python, "-c", _PY_SHA256, path])
        words = out.strip().splitlines()[-1].split() if status == 0 and out.strip() else []
        return words[0] if words else None

    def _cached(self, remote: str, size: int, sha: str) -> bool:
        """True when ``remote`` is on the board with this size and hash (a stale copy is logged)."""
        if remote in self._verified:
            return True  # sent or hashed on the board earlier on this connection
        try:
            attrs = self._sftp_client().stat(remote)
            if attrs.st_size == size and self._remote_sha256(remote) == sha:
                log.debug("%s: %s already on the board", self.name, remote)
                self._verified.add(remote)
                return True
            log.warning("%s: cached %s on the board does not match its hash; sending it again",
                        self.name, remote)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TransportError(f"cannot check {remote} on the board: {exc}", target=self.name,
                                 hint=f"set workdir = in [targets.{self.name}]") from exc
        return False

    def stage(self, path: Path) -> Staged:
        """Put ``path`` in the board's cache under its content hash; 0 bytes sent when already there."""
        t0 = time.monotonic()
        try:
            size = path.stat().st_size
            sha = sha256(path)
        except OSError as exc:
            raise TransportError(f"cannot read {path}: {exc.strerror}", target=self.name,
                                 hint="check the file name") from exc
        rdir = f"{self.cache_dir()}/{sha}"
        remote = f"{rdir}/{path.name}"
        if self._cached(remote, size, sha):
            return Staged(remote, 0)
        if not self._is_dir(rdir):
            self._mkdir(rdir)
        self._upload(path, rdir, remote, size)
        self._verified.add(remote)
        log.info("%s: pushed %s (%d bytes) in %.3f s", self.name, path.name, size, time.monotonic() - t0)
        return Staged(remote, size)

    def _upload(self, path: Path, rdir: str, remote: str, size: int) -> None:
        sftp = self._sftp_client()
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
            if self._link.lost or not self._link.active:
                self._link.mark_lost(f"upload of {path.name} failed")
                raise self._link.lost_error() from exc
            raise self._write_error(rdir, size, exc, name=path.name) from exc

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
            status, out, _ = self._link.check_output(["df", "-Pk", "--", path])
        except TransportError:
            return None
        rows = out.strip().splitlines()
        if status != 0 or len(rows) < 2:
            return None
        fields = rows[-1].split()
        return int(fields[3]) * 1024 if len(fields) >= 4 and fields[3].isdigit() else None

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
