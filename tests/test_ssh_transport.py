"""SshTransport against real OpenSSH servers (tests/sshd.py): run, stream, stage, faults."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.errors import TransportError
from harness.lab.transports.ssh import SshTransport
from tests.environment import NETNS_WHY, ROOT_WHY, is_root, needs, require
from tests.sshd import Board, Lab

if TYPE_CHECKING:
    from tests.sshfixtures import SshEnv

pytest_plugins = ("tests.sshfixtures",)  # ssh_lab, ssh_env, fresh_board, litert_python

pytestmark = needs(is_root(), ROOT_WHY)

# Prints a numbered tick every 50 ms until killed; exits on stdin EOF like the agent does.
TICKER = """
import sys, threading, time, os
def lifeline():
    sys.stdin.read()
    os._exit(3)
threading.Thread(target=lifeline, daemon=True).start()
i = 0
pad = " " + "." * int(os.environ.get("PAD", "0"))
while True:
    print("tick", i, pad if pad.strip() else "", flush=True)
    i += 1
    time.sleep(0.05)
"""


def read_lines(proc, n: int, timeout: float = 10.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        try:
            line = proc.readline(0.2)
        except EOFError:
            break
        if line is not None:
            lines.append(line)
    return lines


def wait_gone(lab: Lab, needle: str, timeout: float = 10.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = lab.processes(needle)
        if not left:
            return []
        time.sleep(0.05)
    return lab.processes(needle)


def wait_present(lab: Lab, needle: str, timeout: float = 5.0) -> list[tuple[int, str]]:
    """The lab's processes matching ``needle`` once one shows in /proc (a loaded machine may lag)."""
    deadline = time.monotonic() + timeout
    while not (found := lab.processes(needle)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_run_streams_lines_and_exit_status(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    board = ssh_lab.boards[0]
    with SshTransport(ssh_env.target(board)) as t:
        proc = t.run(["python3", "-c", "import sys\nfor i in range(3): print('line', i)\n"
                      "print('err', file=sys.stderr); sys.exit(4)"])
        assert proc.pid and proc.pid > 1
        assert read_lines(proc, 3) == ["line 0", "line 1", "line 2"]
        with pytest.raises(EOFError):
            while proc.readline(5) is not None or True:
                pass
        assert proc.wait(5) == 4
        assert "err" in proc.stderr_tail()


def test_signal_death_is_reported_like_subprocess(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    with SshTransport(ssh_env.target(ssh_lab.boards[0])) as t:
        proc = t.run(["python3", "-c", "import os; print('bye', flush=True); os.kill(os.getpid(), 11)"])
        assert read_lines(proc, 5) == ["bye"]
        assert proc.wait(5) == -11


def test_lines_stream_live_not_at_exit(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    with SshTransport(ssh_env.target(ssh_lab.boards[1])) as t:
        proc = t.run(["python3", "-u", "-c", TICKER, "live-stream-marker"])
        first = read_lines(proc, 2)
        assert [line.strip() for line in first] == ["tick 0", "tick 1"]  # arrived while the process still runs
        assert proc.wait(0.1) is None
        proc.terminate()
        assert wait_gone(ssh_lab, "live-stream-marker") == []


def test_terminate_leaves_no_process_on_board(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    """The whole process group goes: the child the command started too, even one ignoring TERM."""
    script = ("import subprocess, signal, sys, time\n"
              "subprocess.Popen(['sleep', '300', 'orphan-check-child'][:2])\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('ready', flush=True)\ntime.sleep(300)\n")
    with SshTransport(ssh_env.target(ssh_lab.boards[0])) as t:
        proc = t.run(["python3", "-c", script, "orphan-check-parent"])
        assert read_lines(proc, 1) == ["ready"]
        assert wait_present(ssh_lab, "orphan-check-parent")
        assert wait_present(ssh_lab, "sleep 300")
        t0 = time.monotonic()
        proc.terminate()
        proc.terminate()  # idempotent
        assert time.monotonic() - t0 < 10
    assert wait_gone(ssh_lab, "orphan-check-parent") == []
    assert wait_gone(ssh_lab, "sleep 300") == []


def test_heartbeats_reach_stdin(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    """The host keeps writing newlines to a running command's stdin (an agent's dead-host signal)."""
    with SshTransport(ssh_env.target(ssh_lab.boards[1])) as t:
        proc = t.run(["python3", "-u", "-c", "import sys\nfor line in sys.stdin: print('beat', repr(line))"])
        assert read_lines(proc, 1, timeout=15) == ["beat '\\n'"]
        proc.terminate()


def test_close_stops_running_commands(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    t = SshTransport(ssh_env.target(ssh_lab.boards[2]))
    proc = t.run(["python3", "-u", "-c", TICKER, "close-marker"])
    assert read_lines(proc, 1)
    t.close()
    assert wait_gone(ssh_lab, "close-marker") == []


def test_stage_caches_by_content(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(os.urandom(300_000))
    workdir = ssh_lab.workdir("cache-test")
    with SshTransport(ssh_env.target(ssh_lab.boards[0], workdir=workdir)) as t:
        first = t.stage(model)
        assert first.sent_bytes == 300_000
        assert first.remote_path.startswith(workdir + "/")
        second = t.stage(model)
        assert second == type(first)(first.remote_path, 0)
        proc = t.run(["sha256sum", first.remote_path])
        assert read_lines(proc, 1)[0].split()[0] in first.remote_path
    # Safe permissions: only the board user can read the cache.
    remote = Path(first.remote_path)
    assert remote.stat().st_mode & 0o777 == 0o600
    assert remote.parent.stat().st_mode & 0o777 == 0o700
    assert not list(remote.parent.glob(".upload-*"))
    # A new connection checks the copy's hash: a good one is reused, a corrupted one sent again.
    with SshTransport(ssh_env.target(ssh_lab.boards[0], workdir=workdir)) as t:
        assert t.stage(model).sent_bytes == 0
    data = bytearray(remote.read_bytes())
    data[1000] ^= 0xFF
    remote.write_bytes(bytes(data))
    with SshTransport(ssh_env.target(ssh_lab.boards[0], workdir=workdir)) as t:
        assert t.stage(model).sent_bytes == 300_000
    assert remote.read_bytes() == model.read_bytes()


def test_stage_default_cache_in_home(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    f = tmp_path / "pipeline.py"
    f.write_text(f"# {os.urandom(8).hex()}\n")
    with SshTransport(ssh_env.target(ssh_lab.boards[1])) as t:
        staged = t.stage(f)
    home = Path(ssh_lab.user.pw_dir)
    assert staged.remote_path.startswith(f"{home}/.cache/harness/")
    assert (home / ".cache" / "harness").stat().st_mode & 0o777 == 0o700


HOSTILE = ["a b.tflite", "it's.tflite", 'say "hi".tflite', "x;touch CANARY;.tflite",
           "$(touch CANARY).tflite", "`touch CANARY`.tflite", "-rf.tflite", "new\nline.tflite"]


def test_hostile_file_names_are_data_not_code(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    canary = Path(ssh_lab.workdir("canary-dir")) / "CANARY"
    workdir = ssh_lab.workdir("hostile")
    src = tmp_path / "src"
    src.mkdir()
    with SshTransport(ssh_env.target(ssh_lab.boards[2], workdir=workdir)) as t:
        for name in HOSTILE:
            local = src / name.replace("CANARY", str(canary).replace("/", "_"))
            local.write_bytes(name.encode())
            staged = t.stage(local)
            assert staged.remote_path.endswith("/" + local.name)
            # Passed as argv to a real program on the board, from the board user's own login shell.
            script = "import sys; print(open(sys.argv[1], 'rb').read().decode().replace(chr(10), '|'))"
            proc = t.run(["python3", "-c", script, staged.remote_path])
            assert read_lines(proc, 1) == [name.replace("\n", "|")]
            proc.wait(5)
            # And in a command where the shell would run it if it were not quoted.
            proc = t.run(["sh", "-c", 'cd "$(dirname "$1")" && ls -- "$(basename "$1")"', "sh",
                          staged.remote_path])
            proc.wait(5)
    assert not canary.exists()
    assert not list(Path("/").glob("CANARY*")) and not list(Path(workdir).rglob("CANARY"))


def test_python_path_relative_to_board_home(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    """python = "~/venv/bin/python" means the board user's home, though argv is quoted."""
    with SshTransport(ssh_env.target(ssh_lab.boards[0])) as t:
        # normpath: Python 3.10 keeps the ".." of argv[0] in sys.executable; 3.11 normalises it.
        code = "import os, sys; print(os.path.normpath(sys.executable))"
        proc = t.run(["~/../../usr/bin/python3", "-c", code])
        assert read_lines(proc, 1) == ["/usr/bin/python3"]  # found, so ~ was the home


def test_missing_python_is_a_clear_error(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    with SshTransport(ssh_env.target(ssh_lab.boards[0], python="/opt/nope/bin/python")) as t, \
            pytest.raises(TransportError) as err:
        t.run(["/opt/nope/bin/python", "-c", "pass"])
    assert err.value.target == ssh_lab.boards[0].name
    assert "/opt/nope/bin/python" in str(err.value) and "python =" in str(err.value)


def test_board_python_venvs_work_for_the_board_user(ssh_env: SshEnv, ssh_lab: Lab,
                                                    tflite214_python: Path, litert_python: Path) -> None:
    probe = ("import numpy, sys\ntry:\n import tflite_runtime as m\nexcept ImportError:\n"
             " import ai_edge_litert as m\nprint(numpy.__version__, m.__name__)")
    with SshTransport(ssh_env.target(ssh_lab.boards[0])) as t:
        out = read_lines(t.run([str(tflite214_python), "-c", probe]), 1)
        assert re.fullmatch(r"1\.\d+\.\d+ tflite_runtime", out[0]), out
        out = read_lines(t.run([str(litert_python), "-c", probe]), 1)
        assert out[0].endswith(" ai_edge_litert"), out


# --- host keys -------------------------------------------------------------------------------

def test_unknown_host_key_is_refused(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    ssh_env.known_hosts.write_text("")
    board = ssh_lab.boards[0]
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(board))
    msg = str(err.value)
    assert "unknown host key" in msg and "SHA256:" in msg and "accept_new_host_key = true" in msg
    assert ssh_env.known_hosts.read_text() == ""


def test_accept_new_records_key_and_warns(ssh_env: SshEnv, ssh_lab: Lab,
                                          caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    board = ssh_lab.boards[1]
    kh = tmp_path / "lab_known_hosts"
    with SshTransport(ssh_env.target(board, known_hosts=str(kh), accept_new_host_key=True)):
        pass
    assert kh.read_text().strip() == board.known_hosts_line()
    assert kh.stat().st_mode & 0o777 == 0o600
    assert any("NEW host key" in r.getMessage() and "SHA256:" in r.getMessage() for r in caplog.records)
    # Now known: no second warning, and the key is checked from then on.
    caplog.clear()
    with SshTransport(ssh_env.target(board, known_hosts=str(kh), accept_new_host_key=True)):
        pass
    assert not any("NEW host key" in r.getMessage() for r in caplog.records)


def test_changed_host_key_always_fails(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    board, other = ssh_lab.boards[0], ssh_lab.boards[1]
    kh = tmp_path / "kh"
    kh.write_text("# lab\n" + f"{board.known_hosts_name} {other.hostkey_pub}\n")
    for accept in (False, True):
        with pytest.raises(TransportError) as err:
            SshTransport(ssh_env.target(board, known_hosts=str(kh), accept_new_host_key=accept))
        msg = str(err.value)
        assert "CHANGED" in msg and f"{kh} line 2" in msg and "ssh-keygen -f" in msg and " -R " in msg
    assert kh.read_text().count("\n") == 2  # never rewritten


# --- login and reachability --------------------------------------------------------------------

def test_wrong_key_fails_authentication(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    from tests.sshd import keygen
    wrong = tmp_path / "wrong_key"
    keygen(wrong)
    (ssh_env.ssh_dir / "id_ed25519").unlink()
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(ssh_lab.boards[0], identity_file=str(wrong)))
    assert "authentication" in str(err.value) and "ssh-copy-id" in str(err.value)


def test_wrong_user_fails_authentication(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(ssh_lab.boards[0], user="nobody"))
    assert "'nobody'" in str(err.value) and err.value.target == ssh_lab.boards[0].name


def test_missing_identity_file(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    with pytest.raises(TransportError, match="identity file .* does not exist"):
        SshTransport(ssh_env.target(ssh_lab.boards[0], identity_file="~/.ssh/nope"))


def test_connection_refused(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    board = ssh_lab.boards[0]
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(board, port=2))
    assert "connection refused" in str(err.value) and "port =" in str(err.value)


def test_host_down_times_out_quickly(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    require(ssh_lab.use_netns, f"a silent host {NETNS_WHY}")
    t0 = time.monotonic()
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(ssh_lab.free_address(), name="ghost", connect_timeout_s=1))
    assert time.monotonic() - t0 < 8
    assert err.value.target == "ghost"
    assert "board down or unreachable" in str(err.value) or "cannot reach" in str(err.value)


def test_unresolvable_host(ssh_env: SshEnv) -> None:
    with pytest.raises(TransportError, match="cannot resolve host"):
        SshTransport(ssh_env.target("no-such-board.invalid", name="typo"))


def test_ssh_config_alias_supplies_everything(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    """host = an alias only: HostName, Port, User, IdentityFile and UserKnownHostsFile from config."""
    board = ssh_lab.boards[2]
    key = tmp_path / "elsewhere_key"
    key.write_bytes(ssh_env.key.read_bytes())
    key.chmod(0o600)
    ssh_env.key.unlink()
    kh = tmp_path / "elsewhere_known_hosts"
    kh.write_text(board.known_hosts_line() + "\n")
    ssh_env.known_hosts.write_text("")
    (ssh_env.ssh_dir / "config").write_text(
        f"Host mypi\n  HostName {board.host}\n  Port {board.port}\n  User {ssh_lab.user.pw_name}\n"
        f"  IdentityFile {key}\n  UserKnownHostsFile {kh}\n")
    with SshTransport(ssh_env.target("mypi", name="pi")) as t:
        assert read_lines(t.run(["id", "-un"]), 1) == [ssh_lab.user.pw_name]


def test_proxy_jump_through_a_board(ssh_env: SshEnv, ssh_lab: Lab) -> None:
    """A board's sshd on its own 127.0.0.1, which the host cannot reach directly."""
    require(ssh_lab.use_netns, NETNS_WHY)
    jump = ssh_lab.boards[0]
    with ssh_env.known_hosts.open("a") as f:
        f.write(f"inner-{jump.name} {jump.hostkey_pub}\n")
    with (ssh_env.ssh_dir / "config").open("a") as f:
        f.write(f"Host inner\n  HostName 127.0.0.1\n  HostKeyAlias inner-{jump.name}\n"
                f"  User {ssh_lab.user.pw_name}\n  ProxyJump {jump.name}\n")
    with SshTransport(ssh_env.target("inner")) as t:
        # Only inside the board's namespace does 127.0.0.1 hold sshd.
        out = read_lines(t.run(["sh", "-c", "echo $SSH_CONNECTION"]), 1)
    assert out[0].startswith("127.0.0.1 ")


# --- a link that breaks mid-stream --------------------------------------------------------------

def test_sshd_killed_mid_stream(ssh_env: SshEnv, fresh_board: Board, ssh_lab: Lab) -> None:
    with SshTransport(ssh_env.target(fresh_board)) as t:
        proc = t.run(["python3", "-u", "-c", TICKER, "killed-sshd-marker"])
        assert read_lines(proc, 2)
        fresh_board.kill_sessions()
        t0 = time.monotonic()
        with pytest.raises(TransportError) as err:
            while time.monotonic() - t0 < 20:
                proc.readline(0.5)
        assert time.monotonic() - t0 < 10
        assert "lost" in str(err.value) and err.value.target == fresh_board.name
    assert wait_gone(ssh_lab, "killed-sshd-marker") == []


def test_link_dropped_mid_stream(ssh_env: SshEnv, fresh_board: Board, ssh_lab: Lab) -> None:
    require(ssh_lab.use_netns, NETNS_WHY)
    with SshTransport(ssh_env.target(fresh_board, connect_timeout_s=2)) as t:
        # Agent-sized output (16 KB lines, like its samples messages), not a trickle.
        proc = t.run(["env", "PAD=16000", "python3", "-u", "-c", TICKER, "dropped-link-marker"])
        assert read_lines(proc, 2)
        fresh_board.link_down()
        t0 = time.monotonic()
        with pytest.raises(TransportError) as err:
            while time.monotonic() - t0 < 30:
                proc.readline(0.5)
        assert time.monotonic() - t0 < 12  # KEEPALIVE_S + connect_timeout_s, with slack
        assert "lost" in str(err.value)
        proc.terminate()  # must not hang on a dead link
    # The board's sshd notices the silent client (ClientAliveInterval) and the agent's lifeline ends it.
    assert wait_gone(ssh_lab, "dropped-link-marker", timeout=15) == []


def test_full_disk_on_upload(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    mnt = Path(ssh_lab.workdir("tiny-disk"))
    board = ssh_lab.boards[0]
    board.in_mount_ns("mount", "-t", "tmpfs", "-o", f"size=256k,mode=0700,uid={ssh_lab.user.pw_uid}",
                      "tmpfs", str(mnt))
    try:
        big = tmp_path / "big model.tflite"
        big.write_bytes(os.urandom(1_000_000))
        with SshTransport(ssh_env.target(board, workdir=str(mnt))) as t:
            with pytest.raises(TransportError) as err:
                t.stage(big)
            assert "no space left" in str(err.value) and "workdir" in str(err.value)
            proc = t.run(["find", str(mnt), "-name", ".upload-*"])
            assert read_lines(proc, 1, timeout=2) == []  # the partial upload was removed
            small = tmp_path / "small.tflite"
            small.write_bytes(b"x" * 1000)
            assert t.stage(small).sent_bytes == 1000  # the connection is still usable
    finally:
        board.in_mount_ns("umount", str(mnt))


def test_key_from_ssh_agent(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No key file at all: the key lives only in a real ssh-agent, as on a developer's laptop."""
    import subprocess
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        subprocess.run(["ssh-add", "-q", str(ssh_env.key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        ssh_env.key.unlink()
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with SshTransport(ssh_env.target(ssh_lab.boards[0])) as t:
            assert read_lines(t.run(["echo", "via agent"]), 1) == ["via agent"]
    finally:
        agent.terminate()
        agent.wait(5)


def test_encrypted_key_without_agent(ssh_env: SshEnv, ssh_lab: Lab, tmp_path: Path) -> None:
    import subprocess
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    ssh_env.key.unlink()
    with pytest.raises(TransportError) as err:
        SshTransport(ssh_env.target(ssh_lab.boards[0], identity_file=str(key)))
    assert "encrypted" in str(err.value) and "ssh-add" in str(err.value)
