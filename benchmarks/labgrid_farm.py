"""16 boards through labgrid against the same 16 boards as direct SSH targets.

The boards are real sshd servers, each in its own network namespace (tests/sshd.py), all running
the same board venv. A real labgrid coordinator and exporter (tests/labgridkit.py) publish each as
a NetworkService of a place tagged board=bench. Each round runs `harness run` three ways, all 16
boards in parallel each time, in an order that rotates from round to round: the 16 direct ssh
targets, the 16 places as labgrid targets, and the pool (`--pool board=bench`, given 16 copies of
the model, so that it too has 16 jobs, which its boards share). For each run:
the wall time and harness's own CPU (user + sys of the harness process, RUSAGE_CHILDREN). For
the labgrid runs, a watcher also times, per board, from the moment the coordinator recorded the
place as acquired (the place's ``changed`` time) to the moment the first samples line of that
board's record reached the disk, and from harness's start to the acquire.

Caveat, measured not hidden: the 16 "boards" share this machine's 2 cores, so the wall times
contain the boards' contention with each other, the same for every variant (the plan is fixed in
iterations); harness's CPU is what labgrid adds on the host. Run it in the venv with the lab
extra (tests/lab_venv.sh), as root:

    PYTHONPATH=. .venv-lab/bin/python benchmarks/labgrid_farm.py [--boards 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ssh_push import MODEL, client_home, target_toml  # noqa: E402
from tests.boardenv import board_venv  # noqa: E402
from tests.labgridkit import Farm, farm  # noqa: E402
from tests.sshd import Lab  # noqa: E402


def harness_run(args: list[str], home: Path, results: Path, iterations: int, coordinator: str,
                models: list[Path]) -> tuple[float, float]:
    """(wall seconds, harness CPU seconds) of one `harness run`."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(home), LG_COORDINATOR=coordinator)
    argv = [sys.executable, "-m", "harness", "run", *args, *(a for m in models for a in ("--model", str(m))),
            "--json", "--results",
            str(results), "--iterations", str(iterations), "--blocks", "2", "--warmup", "2", "--warmup-time", "0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    objs = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert all(o["complete"] for o in objs), "a benchmark did not complete"
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class Watcher:
    """Per place: when the coordinator says it was acquired, and when its first samples landed."""

    def __init__(self, f: Farm, places: list[str], results: Path) -> None:
        self.f, self.places, self.results = f, places, results
        self.acquired: dict[str, float] = {}
        self.first_sample: dict[str, float] = {}
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for name, state in self.f.session.places().items():
                if name in self.places and state.acquired and name not in self.acquired:
                    self.acquired[name] = state.changed  # the coordinator's clock: this machine's
            for record in self.results.rglob("benchmarks/*.jsonl"):
                place = _place_of(record)
                if place and place not in self.first_sample and '"type":"samples"' in record.read_text():
                    self.first_sample[place] = time.time()
            time.sleep(0.005)

    def stop(self) -> dict[str, tuple[float, float]]:
        """Per place: (start -> acquired, acquired -> first sample), in seconds."""
        self._stop.set()
        self._thread.join()
        return {p: (self.acquired[p] - self.started, self.first_sample[p] - self.acquired[p])
                for p in self.places if p in self.acquired and p in self.first_sample}


def _place_of(record: Path) -> str | None:
    for line in record.read_text().splitlines():
        if '"type":"place"' in line:
            return str(json.loads(line)["place"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=200, help="iterations per mode on each board")
    args = ap.parse_args()
    python = board_venv("litert", ("numpy", "ai-edge-litert"))
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp, farm(Path(tmp) / "farm") as f:
        for _ in range(args.boards):
            lab.add_board()
        home = client_home(lab)
        places = [f"bench-{i}" for i in range(1, args.boards + 1)]
        f.exporter("rack", {p: {"NetworkService": {"address": b.host, "port": b.port, "username": lab.user.pw_name}}
                            for p, b in zip(places, lab.boards, strict=True)})
        for p in places:
            f.add_place(p, f"rack/{p}/*", board="bench")
        targets = Path(tmp) / "targets.toml"
        work = {b.name: lab.workdir(b.name) for b in lab.boards}  # one cache per board, for every variant
        text = "".join(target_toml(b.name, b.name, python, work[b.name]) for b in lab.boards)
        text += "".join(f'[targets.lg-{p}]\nkind = "labgrid"\nplace = "{p}"\npython = "{python}"\n'
                        f'workdir = "{work[b.name]}"\n' for p, b in zip(places, lab.boards, strict=True))
        text += f'[targets.bench]\nkind = "labgrid"\npool = "board=bench"\npython = "{python}"\n'
        targets.write_text(text)
        variants = {
            "direct ssh": [arg for b in lab.boards for arg in ("--target", b.name)],
            "labgrid places": [arg for p in places for arg in ("--target", f"lg-{p}")],
            "labgrid pool": ["--pool", "board=bench"],
        }
        copies = []
        for i in range(args.boards):  # the pool's 16 jobs: one model, 16 files (cached by content)
            copies.append(Path(tmp) / f"copy{i:02d}-{MODEL.name}")
            copies[-1].write_bytes(MODEL.read_bytes())
        models = {"direct ssh": [MODEL], "labgrid places": [MODEL], "labgrid pool": copies}
        warm = ["--targets", str(targets)]
        for name, extra in variants.items():  # every board's cache filled, for every workdir
            harness_run([*warm, *extra], home, Path(tmp) / f"warm-{name}", args.iterations, f.address, models[name])
        walls: dict[str, list[float]] = {v: [] for v in variants}
        cpus: dict[str, list[float]] = {v: [] for v in variants}
        timings: list[tuple[float, float]] = []
        order = list(variants)
        for r in range(args.rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                results = Path(tmp) / f"r{r}-{name.replace(' ', '-')}"
                watcher = Watcher(f, places, results) if name == "labgrid places" else None
                wall, cpu = harness_run([*warm, *variants[name]], home, results, args.iterations, f.address,
                                        models[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
                if watcher:
                    timings += watcher.stop().values()
        print(f"{args.boards} boards in parallel, {args.rounds} rounds (medians; {os.cpu_count()} cores shared)")
        print(f"{'variant':<16} {'wall (s)':>9} {'harness CPU (s)':>16} {'wall / direct':>14} {'CPU / direct':>13}")
        base_wall, base_cpu = statistics.median(walls["direct ssh"]), statistics.median(cpus["direct ssh"])
        for name in variants:
            w, c = statistics.median(walls[name]), statistics.median(cpus[name])
            print(f"{name:<16} {w:>9.2f} {c:>16.2f} {w / base_wall:>14.2f} {c / base_cpu:>13.2f}")
        if timings:
            to_acquire = sorted(t[0] for t in timings)
            to_sample = sorted(t[1] for t in timings)
            print(f"labgrid places, per board ({len(timings)}): harness start -> place acquired median "
                  f"{statistics.median(to_acquire):.2f} s (max {to_acquire[-1]:.2f}); acquired -> first sample "
                  f"median {statistics.median(to_sample):.2f} s (min {to_sample[0]:.2f}, max {to_sample[-1]:.2f})")


if __name__ == "__main__":
    main()
