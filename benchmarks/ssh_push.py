"""Pushing to an SSH board, and how long until its first sample. Real sshd in a network namespace.

1. Push throughput (MB/s, 1 MB = 10^6 bytes) of SshTransport.stage: the first push of a file of
   each size into an empty cache (SFTP upload to a temporary name, chmod, rename), and the cached
   push of the same file from a new connection, as the next run does it (local sha256, size check
   and sha256sum on the board, 0 bytes sent). "MB/s" of a cached push is size / time: the rate at
   which the cache lets a file "arrive". Host-measured, as
   the push is a host action; the benchmark samples themselves are always timed on the board.
2. Time from `harness run` to the first sample on a remote board: from starting the CLI process
   until the first `samples` line is on disk in the result store, with a cold cache (agent and model
   pushed) and a warm one. It includes Python start-up, the SSH connect, the push, the agent's
   start-up, the runtime import, model load and warm-up (--warmup 2, --warmup-time 0).

The "board" is this machine behind a veth pair, so the link is much faster than a real Ethernet
or Wi-Fi hop: the figures bound the harness's own costs, not the network's.

    sudo python benchmarks/ssh_push.py [--sizes 1,4,16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.config import parse_targets  # noqa: E402
from harness.lab.transports.ssh import SshTransport  # noqa: E402
from tests.boardenv import board_venv  # noqa: E402
from tests.sshd import Lab  # noqa: E402

MODEL = ROOT / "harness" / "example_models" / "digits_cnn.tflite"


def client_home(lab: Lab) -> Path:
    """A HOME with the lab's key, known_hosts and an ssh config alias per board."""
    home = Path(tempfile.mkdtemp(prefix="hx-bench-home-"))
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    shutil.copy(lab.client_key, ssh / "id_ed25519")
    os.chmod(ssh / "id_ed25519", 0o600)
    (ssh / "known_hosts").write_text("".join(b.known_hosts_line() + "\n" for b in lab.boards))
    (ssh / "config").write_text("".join(
        f"Host {b.name}\n  HostName {b.host}\n  Port {b.port}\n  User {lab.user.pw_name}\n" for b in lab.boards))
    return home


def target_toml(name: str, host: str, python: Path, workdir: str) -> str:
    return (f'[targets.{name}]\nkind = "ssh"\nhost = "{host}"\npython = "{python}"\n'
            f'workdir = "{workdir}"\n')


def push_throughput(lab: Lab, sizes_mb: list[int], repeat: int) -> None:
    board = lab.boards[0]
    print("push throughput (SshTransport.stage, MB/s; median of", repeat, "runs)")
    print(f"{'size':>8} {'first push':>12} {'cached push':>12} {'cached time':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes_mb:
            path = Path(tmp) / f"model-{size}MB.tflite"
            path.write_bytes(os.urandom(size * 10**6))
            first, cached = [], []
            for i in range(repeat):
                workdir = lab.workdir(f"push-{size}-{i}")
                t = parse_targets(target_toml("b", board.name, Path("python3"), workdir), "bench")["b"]
                with SshTransport(t) as transport:
                    t0 = time.perf_counter()
                    assert transport.stage(path).sent_bytes == size * 10**6
                    first.append(time.perf_counter() - t0)
                # As the next `harness run` sees it: a new connection verifies the cached copy.
                with SshTransport(t) as transport:
                    transport.cache_dir()  # not part of the push: found once per connection
                    t0 = time.perf_counter()
                    assert transport.stage(path).sent_bytes == 0
                    cached.append(time.perf_counter() - t0)
            f, c = statistics.median(first), statistics.median(cached)
            print(f"{size:>6}MB {size / f:>10.1f}   {size / c:>10.1f}   {c * 1e3:>9.1f} ms")


def first_sample(lab: Lab, home: Path, python: Path, workdir: str, results: Path) -> float:
    """Seconds from starting `harness run` to the first samples line on disk."""
    results.parent.mkdir(parents=True, exist_ok=True)
    targets = results.parent / "targets.toml"
    targets.write_text(target_toml("board", lab.boards[0].name, python, workdir))
    env = {**os.environ, "HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--targets", str(targets), "--model",
                             str(MODEL), "--json", "--results", str(results), "--duration", "5",
                             "--warmup", "2", "--warmup-time", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            for f in results.glob("*/benchmarks/*.jsonl"):
                if '"type":"samples"' in f.read_text():
                    return time.perf_counter() - t0
            if proc.poll() is not None:
                raise RuntimeError("harness run ended before its first sample")
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("no sample within 120 s")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def time_to_first_sample(lab: Lab, home: Path, repeat: int) -> None:
    python = board_venv("litert", ("numpy", "ai-edge-litert"))
    print("\ntime from `harness run` to the first sample on the board (s; median of", repeat, "runs)")
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            workdir = lab.workdir(f"first-{i}")
            cold.append(first_sample(lab, home, python, workdir, Path(tmp) / f"cold{i}" / "results"))
            warm.append(first_sample(lab, home, python, workdir, Path(tmp) / f"warm{i}" / "results"))
    print(f"  cold cache (agent + model pushed): {statistics.median(cold):.2f} s  (all: "
          f"{', '.join(f'{x:.2f}' for x in cold)})")
    print(f"  warm cache (nothing pushed):       {statistics.median(warm):.2f} s  (all: "
          f"{', '.join(f'{x:.2f}' for x in warm)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,16", help="file sizes in MB")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with Lab() as lab:
        lab.add_board()
        home = client_home(lab)
        os.environ["HOME"] = str(home)  # this process's SshTransport reads ~/.ssh from here
        os.environ.pop("SSH_AUTH_SOCK", None)
        try:
            push_throughput(lab, [int(s) for s in args.sizes.split(",")], args.repeat)
            time_to_first_sample(lab, home, args.repeat)
        finally:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
