"""Many SSH boards at once: host wall time for 1, 4 and 8 boards against the slowest single board.

Each board is a real sshd in its own network namespace with a warm cache. For N boards we time
`harness run` over all N in parallel (one worker thread per board) and each of those N boards
alone; the ratio wall(N) / max(single) is 1.0 when the boards truly run side by side and the host
adds nothing. We also report the harness process's own CPU time (user + sys, from
RUSAGE_CHILDREN) per board: that is the host's overhead, and it is what must stay small as the
lab grows.

Caveat, measured not hidden: these "boards" share this machine's CPU cores. With 4 or 8 boards
on 2 cores, the agents' benchmark loops compete with each other, so the wall ratio also contains
board-side contention that real separate boards would not have. The plan is fixed in iterations
(not seconds), so the boards' work is the same whichever way they run.

    sudo python benchmarks/ssh_parallel.py [--boards 1,4,8] [--iterations 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ssh_push import MODEL, client_home, target_toml  # noqa: E402
from tests.boardenv import board_venv  # noqa: E402
from tests.sshd import Lab  # noqa: E402


def run(names: list[str], targets: Path, home: Path, iterations: int, results: Path) -> tuple[float, float]:
    """(wall seconds, harness CPU seconds) of one `harness run` over ``names``."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    argv = [sys.executable, "-m", "harness", "run", "--targets", str(targets), "--model", str(MODEL),
            "--json", "--results", str(results), "--iterations", str(iterations), "--blocks", "2",
            "--warmup", "2", "--warmup-time", "0"]
    for name in names:
        argv += ["--target", name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="1,4,8")
    ap.add_argument("--iterations", type=int, default=200, help="iterations per mode on each board")
    args = ap.parse_args()
    counts = [int(x) for x in args.boards.split(",")]
    python = board_venv("litert", ("numpy", "ai-edge-litert"))
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(counts)):
            lab.add_board()
        home = client_home(lab)
        targets = Path(tmp) / "targets.toml"
        targets.write_text("".join(target_toml(b.name, b.name, python, lab.workdir(b.name))
                                   for b in lab.boards))
        names = [b.name for b in lab.boards]
        run(names, targets, home, args.iterations, Path(tmp) / "warm")  # fill every board's cache
        single = {n: run([n], targets, home, args.iterations, Path(tmp) / f"single-{n}") for n in names}
        print("boards  wall (s)  slowest single (s)  ratio  harness CPU (s)  CPU per board (s)")
        for n in counts:
            wall, cpu = run(names[:n], targets, home, args.iterations, Path(tmp) / f"par-{n}")
            slowest = max(single[x][0] for x in names[:n])
            print(f"{n:>6}  {wall:>8.2f}  {slowest:>18.2f}  {wall / slowest:>5.2f}  {cpu:>15.2f}  "
                  f"{cpu / n:>17.2f}")
        print(f"(single-board harness CPU: median {sorted(c for _, c in single.values())[len(single) // 2]:.2f} s"
              f"; this machine has {os.cpu_count()} cores shared by all boards)")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
